"""The bad-input corpus: every file here is wrong in a way an artist (or an attacker) could write.

Each case runs `sakuga validate FILE` and checks the contract of DESIGN.md: exit code 2, nothing on
stdout, no traceback, and on stderr exactly one `FILE:LINE:COL: error: message` line per problem, sorted
by line, pointing at the right line (and column, where the input has one) with a message that says what
is wrong.
"""
from __future__ import annotations

import io
import os
import random
import re
import textwrap
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

# one line per problem, nothing else
PROBLEM_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>\S.*)$")


def write_png(path: Path, colour: tuple[int, int, int] = (220, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), colour).save(path)


# ---------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Expect:
    line: int
    message: str            # a substring of the message
    at: str | None = None   # text on that line where the problem points: its first occurrence gives the column
    col: int | None = None  # or the column itself; neither: the column is not checked (line-based formats)


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes                   # the input file; "{root}" in text becomes the test's folder
    expect: tuple[Expect, ...]
    name: str = "storyboard.yaml"
    setup: Callable[[Path], None] = lambda root: None   # other files the input refers to
    args: tuple[str, ...] = ()
    needs: str | None = None            # adapter module the case needs (importorskip)


def _png(root: Path, name: str = "hana.png") -> None:
    write_png(root / name)


def _noise_png_bytes(side: int = 64) -> bytes:
    rnd = random.Random(7)
    im = Image.frombytes("RGB", (side, side), bytes(rnd.getrandbits(8) for _ in range(side * side * 3)))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _truncated_png(root: Path) -> None:
    data = _noise_png_bytes()
    (root / "cut.png").write_bytes(data[: len(data) * 6 // 10])


def _garbage_png(root: Path) -> None:
    (root / "garbage.png").write_bytes(b"this is not a picture, just text named .png\n" * 10)


def _outside_image(root: Path) -> None:
    write_png(root / "x.png")             # exists, but outside the storyboard's folder (root/board)


def _escaping_link(root: Path) -> None:
    write_png(root / "secret.png")
    (root / "board").mkdir(exist_ok=True)
    os.symlink(root / "secret.png", root / "board" / "link.png")


def _absolute_asset(root: Path) -> None:
    write_png(root / "library" / "hana.png")


def _alias_bomb() -> str:
    lines = ["sakuga: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines.append("scenes: *a9")
    return "\n".join(lines) + "\n"


def _too_large() -> str:
    head = "sakuga: 1\nscenes:\n  - id: roof\n    shots:\n      - {id: a, frames: 17, prompt: x}\n"
    return head + ("# padding " + "x" * 69 + "\n") * (2 * 1024 * 1024 // 80 + 10)


def sb(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


ONE_SHOT = "sakuga: 1\nscenes:\n  - id: roof\n    shots:\n      - {id: a, frames: 17, prompt: x}\n"

CASES = [
    # --- meaning: characters, ids, paths, images ---------------------------------------------------
    Case("unknown-character", sb("""
        sakuga: 1
        characters:
          hana: {name: Hana}
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: waves
                characters: [hanna]
        """), (Expect(10, "unknown character `hanna` (did you mean `hana`?)", at="hanna"),)),
    Case("unknown-character-and-none-defined", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: waves, characters: [hana]}
        """), (Expect(5, "unknown character `hana`", at="hana"),)),
    Case("unknown-mention-in-prompt", sb("""
        sakuga: 1
        characters:
          hana: {name: Hana}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: "@hanna waves"}
        """), (Expect(7, "`@hanna`, which is not a defined character (did you mean `@hana`?)", at='"@hanna'),)),
    Case("duplicate-shot-id", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: one}
              - {id: a, frames: 17, prompt: two}
        """), (Expect(6, "duplicate id `a` (first used on line 5)", at="a,"),)),
    Case("duplicate-scene-id", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: one}
          - id: roof
            shots:
              - {id: b, frames: 17, prompt: two}
        """), (Expect(6, "duplicate id `roof` (first used on line 3)", at="roof"),)),
    Case("invalid-id", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: Rooftop 010, frames: 17, prompt: one}
        """), (Expect(5, "'Rooftop 010' is not a valid id (ids use lowercase letters", at="Rooftop"),)),
    Case("invalid-character-id", sb("""
        sakuga: 1
        characters:
          Hana: {name: Hana}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: one}
        """), (Expect(3, "'Hana' is not a valid id", col=3),)),
    Case("path-leaves-folder", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: ../x.png}
        """), (Expect(5, "path '../x.png' leaves the storyboard's folder", at="../x.png"),),
         name="board/storyboard.yaml", setup=_outside_image),
    Case("symlink-leaves-folder", sb("""
        sakuga: 1
        characters:
          hana: {name: Hana, refs: [link.png]}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(3, "'link.png' is a link that leads out of the storyboard's folder", at="link.png"),),
         name="board/storyboard.yaml", setup=_escaping_link),
    Case("absolute-path-without-asset-root", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                start: {root}/library/hana.png
        """), (Expect(8, "absolute path '{root}/library/hana.png': write it relative to the storyboard's folder, "
                         "or allow its folder with --asset-root", col=16),),
         setup=_absolute_asset),
    Case("absolute-path-outside-asset-root", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: "{root}/library/hana.png"}
        """), (Expect(5, "is outside every --asset-root", at='"{root}'),),
         setup=_absolute_asset, args=("--asset-root", "elsewhere")),
    Case("nul-in-a-path", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: "hana\\0.png"}
        """), (Expect(5, "path 'hana\\x00.png' contains a NUL character", at='"hana'),), setup=_png),
    Case("missing-image", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                keyframes:
                  - {image: nothere.png, at: 1.0}
        """), (Expect(9, "image 'nothere.png' does not exist", at="nothere.png"),)),
    Case("image-is-a-folder", sb("""
        sakuga: 1
        audio: music
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "audio 'music' is not a file", at="music"),), setup=lambda root: (root / "music").mkdir()),
    Case("undecodable-image", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: garbage.png}
        """), (Expect(5, "image 'garbage.png' cannot be decoded: not an image", at="garbage.png"),),
         setup=_garbage_png),
    Case("truncated-png", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: cut.png}
        """), (Expect(5, "image 'cut.png' cannot be decoded: image file is truncated", at="cut.png"),),
         setup=_truncated_png),
    Case("previous-on-first-shot", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: previous}
              - {id: b, frames: 17, prompt: y, start: previous}
        """), (Expect(5, "`start: previous` on the first shot: there is no previous shot", at="previous"),)),
    # --- numbers out of range -----------------------------------------------------------------------
    Case("negative-duration", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, duration: -1.5, prompt: x}
        """), (Expect(5, "`duration`: must be greater than 0 (got -1.5)", at="-1.5"),)),
    Case("steps-zero", sb("""
        sakuga: 1
        defaults: {steps: 0}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "`steps`: must be greater than or equal to 1 (got 0)", at="0"),)),
    Case("width-not-multiple-of-16", sb("""
        sakuga: 1
        output: {width: 830, height: 480}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "`width`: must be a multiple of 16 (got 830)", at="830"),)),
    Case("width-too-large", sb("""
        sakuga: 1
        output:
          width: 7680
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(3, "`width`: must be less than or equal to 3840 (got 7680)", at="7680"),)),
    Case("seed-too-large", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, seed: 4294967296}
        """), (Expect(5, "`seed`: must be less than or equal to 4294967295 (got 4294967296)", at="4294967296"),)),
    Case("keyframe-past-the-end", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                keyframes: [{image: hana.png, at: 1.5}]
        """), (Expect(8, "`at`: must be less than or equal to 1 (got 1.5)", at="1.5"),), setup=_png),
    Case("not-a-number", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: seventeen, prompt: x}
        """), (Expect(5, "`frames`: expected a whole number, got text 'seventeen'", at="seventeen"),)),
    Case("number-where-text-belongs", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: 1984}
        """), (Expect(5, "`prompt`: expected text, got the number 1984 (put it in quotes", at="1984"),)),
    # --- shot length ---------------------------------------------------------------------------------
    Case("both-duration-and-frames", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                duration: 3.0
                frames: 49
                prompt: x
        """), (Expect(7, "a shot takes `duration` or `frames`, not both", at="frames"),)),
    Case("neither-duration-nor-frames", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                prompt: x
        """), (Expect(5, "a shot needs a length: add `duration: SECONDS` or `frames: COUNT`", at="id"),)),
    Case("shot-too-short-for-the-model", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 1, prompt: x}
              - {id: b, duration: 0.1, prompt: y}
        """), (Expect(5, "shot is too short: 1 frame; model `animatic` needs at least 5 frames", at="1,"),
               Expect(6, "shot is too short: 0.1 s is 1 frames at 16 fps", at="0.1"))),
    # --- keys and structure --------------------------------------------------------------------------
    Case("typo-in-a-key", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                promt: Hana waves
        """), (Expect(7, "unknown field `promt` (did you mean `prompt`?)", at="promt"),)),
    Case("unknown-top-level-key", sb("""
        sakuga: 1
        director: Sato
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "unknown field `director` (known: sakuga, title, model, output", col=1),)),
    Case("misspelt-top-level-key", sb("""
        sakuga: 1
        scene:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "unknown field `scene` (did you mean `scenes`?)", col=1),)),
    Case("missing-schema-version", sb("""
        title: no version
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(1, "missing required field `sakuga` (the schema version: add `sakuga: 1` at the top)", col=1),)),
    Case("wrong-schema-version", sb("""
        sakuga: 2
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(1, "unsupported schema version 2: this sakuga reads `sakuga: 1`", at="2"),)),
    Case("top-level-list", sb("""
        - sakuga: 1
        - scenes: []
        """), (Expect(1, "a storyboard must be a mapping of fields (`sakuga: 1`, `title: ...`, `scenes: ...`), "
                         "not a list", col=1),)),
    Case("list-where-a-mapping-belongs", sb("""
        sakuga: 1
        output: [832, 480]
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "`output`: expected a mapping (`key: value` lines), got a list", at="["),)),
    Case("text-where-a-list-belongs", sb("""
        sakuga: 1
        characters:
          hana: {name: Hana}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, characters: hana}
        """), (Expect(7, "`characters`: expected a list (`[a, b]` or `- ` lines), got text 'hana'", at="hana}"),)),
    Case("shot-is-not-a-mapping", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - Hana waves at the camera
        """), (Expect(5, "each entry of `shots`: expected a mapping (`key: value` lines), got text", at="Hana"),)),
    Case("no-scenes", sb("""
        sakuga: 1
        scenes: []
        """), (Expect(2, "`scenes`: needs at least 1 entry (got 0)", at="["),)),
    Case("bad-transition", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, transition: dissolve}
              - {id: b, frames: 17, prompt: y}
        """), (Expect(5, "`transition`: expected `cut` or `{crossfade: SECONDS}`, got text 'dissolve'", at="dissolve"),)),
    # --- YAML itself ---------------------------------------------------------------------------------
    Case("yaml-syntax-error", sb("""
        sakuga: 1
        title: Rooftop: the pilot
        scenes: []
        """), (Expect(2, "YAML syntax: mapping values are not allowed here", at=": the"),)),
    Case("yaml-unclosed-quote", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: "Hana waves}
        """), (Expect(6, "YAML syntax: found unexpected end of stream (scanning a quoted scalar that starts on line 5)",
                      col=1),)),
    Case("yaml-tab-indent", "sakuga: 1\nscenes:\n\t- id: roof\n",
         (Expect(3, "YAML syntax:", col=1),)),
    Case("python-tag", sb("""
        sakuga: 1
        title: !!python/object/apply:os.system ["touch pwned"]
        scenes: []
        """), (Expect(2, "tag '!!python/object/apply:os.system' is not allowed", at="!!python"),)),
    Case("python-tag-on-a-key", sb("""
        sakuga: 1
        !!python/name:os.system title: x
        """), (Expect(2, "tag '!!python/name:os.system' is not allowed", col=1),)),
    Case("custom-tag", sb("""
        sakuga: 1
        title: !shout rooftop
        scenes: []
        """), (Expect(2, "tag '!shout' is not allowed", at="!shout"),)),
    Case("bad-core-tag-value", sb("""
        sakuga: 1
        title: x
        output: {fps: !!int sixteen}
        scenes: []
        """), (Expect(3, "'sixteen' is not a valid '!!int' value", at="!!int"),)),
    Case("bad-bool-tag-value", "sakuga: 1\ntitle: !!bool maybe\n",
         (Expect(2, "'maybe' is not a valid '!!bool' value", at="!!bool"),)),
    Case("alias-bomb", _alias_bomb(), (Expect(2, "document expands to more than 100000 values (alias bomb?)", at='"lol"'),)),
    Case("recursive-alias", sb("""
        sakuga: 1
        scenes: &loop
          - id: roof
            shots: *loop
        """), (Expect(2, "an alias refers to the node that contains it (recursive alias)", at="&loop"),)),
    Case("deep-nesting", "sakuga: 1\nscenes: " + "[" * 5000 + "]" * 5000 + "\n",
         (Expect(2, "nesting is deeper than 64 levels", col=72),)),
    Case("duplicate-key", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: first
                prompt: second
        """), (Expect(8, "duplicate key 'prompt' (first on line 7)", at="prompt"),)),
    Case("merge-key", sb("""
        sakuga: 1
        base: &base {frames: 17, prompt: x}
        scenes:
          - id: roof
            shots:
              - <<: *base
                id: a
        """), (Expect(6, "merge keys (<<) are not supported", at="<<"),)),
    Case("two-documents", "sakuga: 1\n---\nsakuga: 1\n", (Expect(2, "expected a single document", col=1),)),
    Case("empty-file", "", (Expect(1, "the file is empty", col=1),)),
    Case("only-comments", "# nothing here yet\n\n", (Expect(1, "the file is empty", col=1),)),
    Case("file-too-large", _too_large(), (Expect(1, "input files are limited to 2,097,152 bytes (2 MiB)", col=1),)),
    Case("not-utf8", b"sakuga: 1\ntitle: Caf\xe9 on the roof\n",
         (Expect(2, "file is not valid utf-8 text (byte 20: 0xe9); save it as UTF-8", col=11),)),
    Case("nul-character", "sakuga: 1\ntitle: a\x00b\n", (Expect(2, "character U+0000 is not allowed", col=9),)),
    Case("unknown-file-type", ONE_SHOT, (Expect(1, "unknown file type '.json'", col=1),), name="storyboard.json"),
    # --- model and timing ----------------------------------------------------------------------------
    Case("unknown-model-preset", sb("""
        sakuga: 1
        model: anisora-v4
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "unknown model preset 'anisora-v4' (known: animatic, anisora-v2, anisora-v3,", at="anisora"),)),
    Case("fps-mismatch-with-model", sb("""
        sakuga: 1
        output: {fps: 24}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
        """), (Expect(2, "model `animatic` renders at 16 fps, not 24", at="24"),)),
    Case("crossfade-on-last-shot", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x}
              - {id: b, frames: 17, prompt: y, transition: {crossfade: 0.5}}
        """), (Expect(6, "the last shot cannot crossfade: there is no next shot", at="{crossfade"),)),
    Case("crossfade-longer-than-shot", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                transition: {crossfade: 2.0}
              - {id: b, frames: 81, prompt: y}
        """), (Expect(8, "crossfade of 32 frames must be shorter than both shots it joins (this one has 17 frames, "
                         "the next 81)", at="2.0"),)),
    Case("crossfade-under-a-frame", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, transition: {crossfade: 0.01}}
              - {id: b, frames: 17, prompt: y}
        """), (Expect(5, "crossfade of 0.01 s is less than one frame at 16 fps", at="0.01"),)),
    Case("two-keyframes-at-one-position", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                keyframes:
                  - {image: hana.png, at: 0.5}
                  - {image: hana.png, at: 0.5}
        """), (Expect(10, "two keyframes at 0.5 land on the same frame (8 of 17); the other is on line 9", at="0.5"),),
         setup=_png),
    Case("two-keyframes-on-one-frame", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                keyframes: [{image: hana.png, at: 0.5}, {image: hana.png, at: 0.51}]
        """), (Expect(8, "keyframes at 0.5 and 0.51 land on the same frame (8 of 17)", at="0.51"),), setup=_png),
    Case("keyframe-at-0-with-start", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - id: a
                frames: 17
                prompt: x
                start: hana.png
                keyframes: [{image: hana.png, at: 0}]
        """), (Expect(9, "keyframe at 0.0 conflicts with `start`: both set the first frame", at="0}"),), setup=_png),
    Case("keyframe-near-0-with-start", sb("""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: hana.png, keyframes: [{image: hana.png, at: 0.02}]}
        """), (Expect(5, "keyframe at 0.02 conflicts with `start`: both set the first frame", at="0.02"),), setup=_png),
    # --- many problems at once -----------------------------------------------------------------------
    Case("several-errors-at-once", sb("""
        sakuga: 1
        model: animatic
        characters:
          hana: {name: Hana}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: previous}
              - {id: b, frames: 17, promt: y}
              - {id: a, frames: 17, prompt: z, characters: [sora]}
              - {id: c, duration: -2, prompt: w}
              - {id: d, frames: 17, prompt: v, start: gone.png, transition: {crossfade: 1}}
        """), (Expect(8, "`start: previous` on the first shot", at="previous"),
               Expect(9, "unknown field `promt` (did you mean `prompt`?)", at="promt"),
               Expect(10, "duplicate id `a` (first used on line 8)", at="a,"),
               Expect(10, "unknown character `sora`", at="sora"),
               Expect(11, "`duration`: must be greater than 0 (got -2)", at="-2"),
               Expect(12, "image 'gone.png' does not exist", at="gone.png"),
               Expect(12, "the last shot cannot crossfade", at="{crossfade"))),
    # --- PV scripts (storyboard/pvscript.py) ---------------------------------------------------------
    Case("pv-unknown-character", sb("""
        # Starlight Run
        @hana: hana.png | short silver hair
        ## city rooftop at night
        - [3s] wide shot, @hanna stands at the rail
        """), (Expect(4, "`hanna`"),), name="script.pv", setup=_png, needs="storyboard.adapters.pvscript"),
    Case("pv-bad-duration", sb("""
        # Starlight Run
        ## city rooftop at night
        - [3x] wide shot of the city
        """), (Expect(3, "3x"),), name="script.pv", needs="storyboard.adapters.pvscript"),
    Case("pv-previous-on-first-shot", sb("""
        # Starlight Run
        ## city rooftop at night
        - [3s] wide shot of the city << previous
        """), (Expect(3, "previous"),), name="script.pv", needs="storyboard.adapters.pvscript"),
    Case("pv-missing-image", sb("""
        # Starlight Run
        // the board for this shot is not drawn yet
        ## city rooftop at night
        - [2s] wide shot of the city
        - [49f] the skyline, slow pan right >> boards/nothere.png
        """), (Expect(5, "nothere.png"),), name="script.md", needs="storyboard.adapters.pvscript"),
    Case("pv-not-utf8", b"# Starlight Run\n## rooftop\n- [3s] caf\xe9 on the roof\n",
         (Expect(3, "not valid utf-8 text", col=11),), name="script.pv", needs="storyboard.adapters.pvscript"),
    # --- AniSora prompt files (storyboard/anisora.py) ------------------------------------------------
    Case("anisora-position-out-of-range", sb("""
        Hana turns around. aesthetic score: 5.5. motion score: 1.3. There is no text in the video.@@hana.png
        Hana waves. aesthetic score: 5.5. motion score: 1.3.@@hana.png,hana.png&&0,1.5
        """), (Expect(2, "1.5"),), name="prompts.txt", setup=_png, needs="storyboard.adapters.anisora"),
    Case("anisora-missing-image", sb("""
        Hana turns around.@@nothere.png
        """), (Expect(1, "nothere.png"),), name="prompts.txt", needs="storyboard.adapters.anisora"),
    Case("anisora-leaving-path", sb("""
        Hana turns around.@@hana.png
        Hana waves.@@../escape.png
        """), (Expect(2, "../escape.png"),), name="prompts.txt", setup=_png, needs="storyboard.adapters.anisora"),
    Case("anisora-not-utf8-nor-gbk", b"Hana turns around.@@hana.png\nHana \xff\xff waves.@@hana.png\n",
         (Expect(2, "not valid utf-8 or gbk text", col=6),), name="prompts.txt", setup=_png),
]


def test_the_corpus_is_large_and_its_ids_are_unique():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_reported_on_its_line(case: Case, tmp_path: Path, monkeypatch, sakuga):
    if case.needs:
        pytest.importorskip(case.needs)
    case.setup(tmp_path)
    path = tmp_path / case.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text.replace("{root}", str(tmp_path)), encoding="utf-8")
    lines = path.read_bytes().split(b"\n")
    monkeypatch.chdir(tmp_path)

    result = sakuga("validate", case.name, *case.args)   # how fast: bench/inputs.py, not a timed test

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    reported = result.stderr.splitlines()
    parsed = [PROBLEM_LINE.match(line) for line in reported]
    assert all(parsed), f"not FILE:LINE:COL: error: message lines:\n{result.stderr}"
    assert [m["file"] for m in parsed] == [case.name] * len(parsed)
    positions = [(int(m["line"]), int(m["col"])) for m in parsed]
    assert positions == sorted(positions), "problems are sorted by line"
    if case.needs:
        # another adapter's wording and extra findings are its own: each expected problem is somewhere
        for want in case.expect:
            assert any(int(m["line"]) == want.line and want.message.lower() in m["message"].lower() for m in parsed), \
                f"no problem on line {want.line} mentioning {want.message!r}:\n{result.stderr}"
        return
    assert len(parsed) == len(case.expect), f"expected {len(case.expect)} problem(s), got:\n{result.stderr}"
    for want, got in zip(case.expect, parsed):
        message = want.message.replace("{root}", str(tmp_path))
        assert int(got["line"]) == want.line, result.stderr
        assert message in got["message"], result.stderr
        col = want.col
        if want.at is not None:
            at = want.at.replace("{root}", str(tmp_path))
            text = lines[want.line - 1].decode()
            assert at in text, f"test bug: {at!r} is not on line {want.line}"
            col = text.index(at) + 1
        if col is not None:
            assert int(got["col"]) == col, result.stderr


# ---------------------------------------------------------------- around the corpus


def test_absolute_path_is_accepted_under_its_asset_root(tmp_path: Path, monkeypatch, sakuga):
    _absolute_asset(tmp_path)
    board = tmp_path / "board"
    board.mkdir()
    (board / "storyboard.yaml").write_text(sb(f"""
        sakuga: 1
        scenes:
          - id: roof
            shots:
              - {{id: a, frames: 17, prompt: x, start: "{tmp_path}/library/hana.png"}}
        """))
    monkeypatch.chdir(board)
    assert sakuga("validate", "storyboard.yaml").exit_code == 2
    result = sakuga("validate", "storyboard.yaml", "--asset-root", tmp_path / "library")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "storyboard.yaml: ok" in result.stdout


def test_a_link_inside_the_folder_is_fine(tmp_path: Path, monkeypatch, sakuga):
    write_png(tmp_path / "boards" / "real.png")
    os.symlink("real.png", tmp_path / "boards" / "alias.png")
    (tmp_path / "storyboard.yaml").write_text(ONE_SHOT.replace("prompt: x", "prompt: x, start: boards/alias.png"))
    monkeypatch.chdir(tmp_path)
    result = sakuga("validate", "storyboard.yaml")
    assert result.exit_code == 0, result.output


def test_alias_bomb_fails_fast_and_small(tmp_path: Path):
    from storyboard.errors import InputError
    from storyboard.load import load

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    tracemalloc.start()   # memory, not time: a bound that holds on any machine (bench/inputs.py times it)
    try:
        with pytest.raises(InputError):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB to refuse a {path.stat().st_size} byte file"


def test_the_same_missing_image_is_reported_at_every_use(tmp_path: Path, monkeypatch, sakuga):
    (tmp_path / "storyboard.yaml").write_text(sb("""
        sakuga: 1
        characters:
          hana: {name: Hana, refs: [gone.png]}
        scenes:
          - id: roof
            shots:
              - {id: a, frames: 17, prompt: x, start: gone.png}
        """))
    monkeypatch.chdir(tmp_path)
    result = sakuga("validate", "storyboard.yaml")
    assert result.exit_code == 2
    assert [line.split(": error: ")[0] for line in result.stderr.splitlines()] == \
        ["storyboard.yaml:3:29", "storyboard.yaml:7:47"]


def test_the_real_command_prints_no_traceback(tmp_path: Path):
    """Once through a real process: what a user's terminal shows for a hostile file."""
    import subprocess
    import sys

    path = tmp_path / "storyboard.yaml"
    path.write_text("sakuga: 1\ntitle: !!python/object/apply:os.system [\"touch pwned\"]\n" + "x: " + "[" * 3000 + "\n")
    proc = subprocess.run([sys.executable, "-c", "from farm.cli import main; main()", "validate", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith(f"{path}:")
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------- nothing is written on failure


BAD = sb("""
    sakuga: 1
    scenes:
      - id: roof
        shots:
          - {id: a, frames: 17, prompt: x, start: previous}
    """)


def test_render_of_a_bad_storyboard_writes_nothing(tmp_path: Path, monkeypatch, sakuga):
    (tmp_path / "bad.yaml").write_text(BAD)
    monkeypatch.chdir(tmp_path)
    result = sakuga("render", "bad.yaml", "--out", "out", "--quiet")
    assert result.exit_code == 2, result.output
    assert "bad.yaml:5:" in result.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_import_of_a_bad_pv_script_writes_no_yaml(tmp_path: Path, monkeypatch, sakuga):
    (tmp_path / "bad.pv").write_text("# Title\n## roof\n- [3s] first shot << previous\n- [3x] broken\n")
    monkeypatch.chdir(tmp_path)
    result = sakuga("import", "bad.pv", "-o", "out.yaml")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("bad.pv:")
    assert not (tmp_path / "out.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pv"]
