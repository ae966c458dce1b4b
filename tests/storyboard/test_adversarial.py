"""The adversarial corpus: inputs built to hurt (slow parsers, huge requests, invisible line breaks,
terminal escapes, mojibake, links out of the folder), each generated here, big ones included.

Every case runs the CLI in-process and checks the contract: exit code 2, no traceback, only
`FILE:LINE:COL: error: message` lines on stderr, a problem at the exact line and column where the input
is at fault with a message saying what is wrong, and nothing written anywhere in the folder. Speed is
not asserted here: `bench/inputs.py` times the big cases at growing sizes.
"""
from __future__ import annotations

import os
import re
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from storyboard.model import MAX_EPISODE_FRAMES, MAX_SEGMENTS, MAX_SHOTS_PER_SCENE
from tests.conftest import write_png

PROBLEM_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>\S.*)$")
SECRET = "root:x:0:0:root:/root:/bin/bash"
MB = 1_000_000
SHOT = "{id: a, frames: 17, prompt: x}"


@dataclass(frozen=True)
class At:
    """Where the problem must be reported, and words its message must hold."""

    name: str       # the file given to the command, relative to the test's folder
    line: int
    col: int
    words: str


@dataclass(frozen=True)
class Attack:
    id: str
    kind: str                           # what the corpus covers: see KINDS
    build: Callable[[Path], At]         # writes the input (and what it refers to) into a folder
    command: str = "validate"
    args: tuple[str, ...] = ()          # after the file


def text_file(root: Path, name: str, text: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def col_of(line: str, needle: str) -> int:
    assert needle in line, f"test bug: {needle!r} is not in the line"
    return line.index(needle) + 1


def storyboard(shots_by_scene: list[list[str]], head: str = "sakuga: 1\n") -> tuple[str, list[int]]:
    """A storyboard YAML of flow-mapping shots, and the line of every shot in cut order."""
    lines = head.splitlines()
    lines.append("scenes:")
    shot_lines = []
    for si, shots in enumerate(shots_by_scene):
        lines += [f"  - id: s{si}", "    shots:"]
        for shot in shots:
            lines.append(f"      - {shot}")
            shot_lines.append(len(lines))
    return "\n".join(lines) + "\n", shot_lines


# ---------------------------------------------------------------- quadratic parsers, huge files


def anisora_spaces(root: Path) -> At:
    """A 2 MB line of spaces in a prompt: the old score patterns rescanned it from every position."""
    line = "x" + " " * (2 * MB) + "y@@a.png&&2"
    text_file(root, "prompts.txt", line + "\n")
    write_png(root / "a.png")
    return At("prompts.txt", 1, len(line), "position 2.0 is outside [0, 1]")


def anisora_score_words(root: Path) -> At:
    """2 MB of half-written score phrases ("aesthetic score" with no number), then a broken line."""
    text_file(root, "prompts.txt", "aesthetic   motion score:  " * (2 * MB // 27) + "@@a.png\n@@a.png\n")
    write_png(root / "a.png")
    return At("prompts.txt", 2, 1, "empty prompt before `@@`")


def anisora_positions(root: Path) -> At:
    """A hundred thousand images and positions on one line, the last position given twice."""
    n = 100_000
    positions = [f"{i / n:.6f}" for i in range(n - 1)] + ["0.000000"]
    line = "x@@" + ",".join(["a.png"] * n) + "&&" + ",".join(positions)
    text_file(root, "prompts.txt", line + "\n")
    return At("prompts.txt", 1, len(line) - len("0.000000") + 1, "position 0.0 is given twice")


def anisora_too_many_clips(root: Path) -> At:
    text_file(root, "prompts.txt", "a clip@@a.png\n" * (MAX_SHOTS_PER_SCENE + 500))
    return At("prompts.txt", MAX_SHOTS_PER_SCENE + 1, 1, f"more than {MAX_SHOTS_PER_SCENE:,} clips")


def pv_markers(root: Path) -> At:
    """A shot with 200,000 `>>` end images: each used to copy the rest of the 2 MB line."""
    line = "- [1s] x" + " >> a.png" * 200_000
    text_file(root, "script.pv", "# T\n## s\n" + line + "\n")
    return At("script.pv", 3, len("- [1s] x >> a.png") + 2, "a shot has one `>>` end image")


def pv_refs_and_mentions(root: Path) -> At:
    """A character with 150,000 reference images, and a shot mentioning 80,000 characters."""
    mentions = " ".join(f"@c{i}" for i in range(80_000))
    text_file(root, "script.pv", "@hana: " + "a.png, " * 150_000 + "| hair\n## s\n- [1s] " + mentions + "\n")
    return At("script.pv", 3, 8, "the limit is 4000")


def pv_too_many_shots(root: Path) -> At:
    """More shots than a job may have segments, spread over scenes within the per-scene limit."""
    lines = ["# T"]
    for n in range(MAX_SEGMENTS + 100):
        if n % MAX_SHOTS_PER_SCENE == 0:
            lines.append("## scene")
        lines.append("- [5f] x")
        if n == MAX_SEGMENTS:
            at = len(lines)
    text_file(root, "script.pv", "\n".join(lines) + "\n")
    return At("script.pv", at, 1, f"more than {MAX_SEGMENTS:,} shots")


def pv_too_many_scenes(root: Path) -> At:
    text_file(root, "script.pv", "## s\n- [5f] x\n" * 600)
    return At("script.pv", 2 * 500 + 1, 1, "more than 500 scenes")


def pv_huge_number(root: Path) -> At:
    """A frame count of 5,000 digits (Python's int() refuses more than 4,300)."""
    text_file(root, "script.pv", "## s\n- [" + "9" * 5000 + "f] x\n")
    return At("script.pv", 2, 4, "bad duration")


# ---------------------------------------------------------------- YAML: node cap, nesting, expansion


def yaml_wide(root: Path) -> At:
    """2 MB of one flow list: the composer stops at the 100,001st value, at its column."""
    text_file(root, "storyboard.yaml", "sakuga: 1\nscenes: [" + "a, " * (2 * MB // 3 - 10) + "]\n")
    return At("storyboard.yaml", 2, len("scenes: [") + 1 + 3 * (100_000 - 3), "more than 100,000 values")


def yaml_wide_block(root: Path) -> At:
    """2 MB of block mapping entries (keys do not count; values do)."""
    text_file(root, "storyboard.yaml", "sakuga: 1\n" + "".join(f"k{i}: v\n" for i in range(180_000)))
    return At("storyboard.yaml", 100_000, len("k99998: ") + 1, "more than 100,000 values")


def yaml_deep_block(root: Path) -> At:
    text_file(root, "storyboard.yaml", "".join("  " * i + f"k{i}:\n" for i in range(300)))
    return At("storyboard.yaml", 64, 2 * 63 + 1, "nesting is deeper than 64 levels")


def yaml_deep_flow(root: Path) -> At:
    text_file(root, "storyboard.yaml", "sakuga: 1\nscenes: " + "{a: " * (2 * MB // 4 - 10) + "\n")
    # depth 65 is the key of the 63rd mapping (the document's own mapping is depth 1)
    return At("storyboard.yaml", 2, len("scenes: ") + 1 + 4 * 62 + 1, "nesting is deeper than 64 levels")


def yaml_mapping_bomb(root: Path) -> At:
    lines = ["sakuga: 1", "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    lines += [f"m{i}: &m{i} {{a: *m{i - 1}, b: *m{i - 1}, c: *m{i - 1}, d: *m{i - 1}, e: *m{i - 1}, "
              f"f: *m{i - 1}, g: *m{i - 1}, h: *m{i - 1}}}" for i in range(1, 9)]
    text_file(root, "storyboard.yaml", "\n".join(lines) + "\nscenes: *m8\n")
    return At("storyboard.yaml", 2, col_of(lines[1], "&m0"), "expands to more than 100000 values")


def yaml_million_segments(root: Path) -> At:
    """8,400 shots of 9,601 frames ask for a million segments: refused at the shot past the frame cap
    (checked here) and at the one past the segment cap (checked by `test_both_job_limits_...`)."""
    text, lines = storyboard([[f"{{id: t{s}-{i}, frames: 9601, prompt: x}}" for i in range(2000)] for s in range(4)]
                             + [[f"{{id: t4-{i}, frames: 9601, prompt: x}}" for i in range(400)]])
    text_file(root, "storyboard.yaml", text)
    shot = -(-(MAX_EPISODE_FRAMES + 1) // 9601)     # the first shot whose frames pass the cap
    return At("storyboard.yaml", lines[shot - 1], col_of(text.splitlines()[lines[shot - 1] - 1], "9601"),
              f"a job renders at most {MAX_EPISODE_FRAMES:,} frames")


def yaml_many_tiny_shots(root: Path) -> At:
    n = MAX_SEGMENTS + 1
    scenes = [[f"{{id: t{i}, frames: 5, prompt: x}}" for i in range(lo, min(n, lo + 2000))] for lo in range(0, n, 2000)]
    text, lines = storyboard(scenes)
    text_file(root, "storyboard.yaml", text)
    return At("storyboard.yaml", lines[-1], col_of(text.splitlines()[lines[-1] - 1], "5,"),
              f"at most {MAX_SEGMENTS:,} segments")


# ---------------------------------------------------------------- line breaks editors do not show


def pv_line_break(char: str, name: str = "script.pv") -> Callable[[Path], At]:
    def build(root: Path) -> At:
        text_file(root, name, f"# T\n## s\n- [1s] a{char}b\n- [3x] broken\n")
        return At(name, 3, len("- [1s] a") + 1, f"character U+{ord(char):04X} is not allowed")
    return build


def anisora_line_separator(root: Path) -> At:
    text_file(root, "prompts.txt", "one@@a.png\ntwo\u2028three@@a.png\n")
    return At("prompts.txt", 2, 4, "U+2028 is not allowed in an AniSora prompt file (LINE SEPARATOR")


def yaml_line_break(char: str) -> Callable[[Path], At]:
    def build(root: Path) -> At:
        text_file(root, "storyboard.yaml", f"sakuga: 1\n# note{char}\ntitle: a{char}b\nscenes: []\n")
        return At("storyboard.yaml", 2, len("# note") + 1, f"character U+{ord(char):04X} is not allowed in a YAML file")
    return build


def yaml_cr_line_ends(root: Path) -> At:
    """Old Mac line ends: every `\\r` ends a line, as editors show it."""
    text_file(root, "storyboard.yaml", "sakuga: 1\rscenes:\r  - id: roof\r    shots:\r      - {id: a, frames: 17, promt: x}\r")
    return At("storyboard.yaml", 5, col_of("      - {id: a, frames: 17, promt: x}", "promt"), "unknown field `promt`")


def pv_crlf_line_ends(root: Path) -> At:
    text_file(root, "script.pv", "# T\r\n## s\r\n\r\n- [3x] x\r\n")
    return At("script.pv", 4, 4, "bad duration `[3x]`")


# ---------------------------------------------------------------- control characters, terminal escapes


def yaml_escape_in_title(root: Path) -> At:
    """An OSC sequence that would retitle the terminal, written as YAML escapes."""
    text_file(root, "storyboard.yaml", f'sakuga: 1\ntitle: "\\e]0;pwned\\a"\nscenes:\n  - id: s\n    shots:\n      - {SHOT}\n')
    return At("storyboard.yaml", 2, 8, "`title`: contains U+001B (ESC, a control character) at character 1")


def yaml_escape(field: str, escape: str, words: str) -> Callable[[Path], At]:
    def build(root: Path) -> At:
        shot = SHOT.replace("prompt: x", f'prompt: x, {field}: "a{escape}b"')
        line = f"      - {shot}"
        text_file(root, "storyboard.yaml", f"sakuga: 1\nscenes:\n  - id: s\n    shots:\n{line}\n")
        return At("storyboard.yaml", 5, col_of(line, '"a'), words)
    return build


def raw_character(name: str, char: str, words: str) -> Callable[[Path], At]:
    """`char` written as itself on the second line, just after `ab`."""
    def build(root: Path) -> At:
        first, rest = {"storyboard.yaml": ("sakuga: 1", "title: ab{c}\nscenes: []"),
                       "script.pv": ("## s", "- [1s] ab{c} waves"),
                       "prompts.txt": ("one@@a.png", "ab{c} waves@@a.png")}[name]
        second = rest.format(c=char)
        text_file(root, name, first + "\n" + second + "\n")
        return At(name, 2, second.index(char) + 1, words)
    return build


def pv_title_escape(root: Path) -> At:
    text_file(root, "script.pv", "# \x1b]0;pwned\x07 Starlight\n## s\n- [1s] x\n")
    return At("script.pv", 1, 3, "character U+001B is not allowed in a PV script (ESC, a control character)")


# ---------------------------------------------------------------- encodings


def cp1252(name: str, text: str, needle: str) -> Callable[[Path], At]:
    def build(root: Path) -> At:
        text_file(root, name, text.encode("cp1252"))
        line = next(i for i, l in enumerate(text.split("\n"), 1) if needle in l)
        return At(name, line, text.split("\n")[line - 1].index(needle) + 1, "read two ways")
    return build


def utf16(root: Path) -> At:
    text_file(root, "prompts.txt", "hello@@a.png\n".encode("utf-16"))
    return At("prompts.txt", 1, 1, "UTF-16")


# ---------------------------------------------------------------- links, and files never quoted


def link_to_secret(root: Path) -> At:
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "passwd").write_text(SECRET + "\n")
    (root / "board").mkdir()
    os.symlink(root / "elsewhere" / "passwd", root / "board" / "storyboard.yaml")
    return At("board/storyboard.yaml", 1, 1, "symbolic link to a file outside its folder")


def link_keeps_its_folder(root: Path) -> At:
    """A storyboard linked from a sub-folder: its pictures are looked up from the link's folder."""
    line = f"      - {SHOT.replace('prompt: x', 'prompt: x, start: pic.png')}"
    text_file(root, "v3/storyboard.yaml", f"sakuga: 1\nscenes:\n  - id: s\n    shots:\n{line}\n")
    write_png(root / "v3" / "pic.png")
    os.symlink("v3/storyboard.yaml", root / "current.yaml")
    return At("current.yaml", 5, col_of(line, "pic.png"), "image 'pic.png' does not exist")


def garbage_asset(kind: str) -> Callable[[Path], At]:
    """A picture or soundtrack that holds someone's secrets: the message must not quote them."""
    def build(root: Path) -> At:
        (root / "secret.bin").write_text((SECRET + "\n") * 50)
        os.symlink("secret.bin", root / ("x.png" if kind == "image" else "x.wav"))
        field = "start: x.png" if kind == "image" else None
        shot = SHOT.replace("prompt: x", f"prompt: x, {field}") if field else SHOT
        head = "sakuga: 1\n" + ("audio: x.wav\n" if kind == "audio" else "")
        text, lines = storyboard([[shot]], head)
        text_file(root, "storyboard.yaml", text)
        where = lines[0] if kind == "image" else 2
        return At("storyboard.yaml", where, col_of(text.splitlines()[where - 1], "x."), "cannot be decoded")
    return build


def audio_too_large(root: Path) -> At:
    """A sparse 600 MB soundtrack: refused by its size, and not read."""
    with open(root / "long.wav", "wb") as f:
        f.truncate(600 * 2**20)
    text, _ = storyboard([[SHOT]], "sakuga: 1\naudio: long.wav\n")
    text_file(root, "storyboard.yaml", text)
    return At("storyboard.yaml", 2, 8, "the limit is 536870912")


def image_spellings(root: Path) -> At:
    """One broken picture written three ways: each use reported with its own spelling."""
    (root / "d1").mkdir()
    (root / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    shots = [SHOT.replace("id: a", f"id: a{i}").replace("prompt: x", f"prompt: x, start: {p}")
             for i, p in enumerate(["big.png", "./big.png", "d1/../big.png"])]
    text, lines = storyboard([shots])
    text_file(root, "storyboard.yaml", text)
    return At("storyboard.yaml", lines[2], col_of(text.splitlines()[lines[2] - 1], "d1/"),
              "image 'd1/../big.png' cannot be decoded")


C = "storyboard.yaml"
CASES = [
    Attack("anisora-2mb-of-spaces", "quadratic", anisora_spaces),
    Attack("anisora-2mb-of-score-words", "quadratic", anisora_score_words),
    Attack("anisora-100k-positions", "quadratic", anisora_positions),
    Attack("anisora-too-many-clips", "size", anisora_too_many_clips),
    Attack("pv-200k-end-markers", "quadratic", pv_markers),
    Attack("pv-150k-refs-80k-mentions", "quadratic", pv_refs_and_mentions),
    Attack("pv-more-shots-than-segments", "size", pv_too_many_shots),
    Attack("pv-too-many-scenes", "size", pv_too_many_scenes),
    Attack("pv-5000-digit-frame-count", "size", pv_huge_number),
    Attack("yaml-2mb-flow-list", "size", yaml_wide),
    Attack("yaml-2mb-block-mapping", "size", yaml_wide_block),
    Attack("yaml-deep-block-nesting", "size", yaml_deep_block),
    Attack("yaml-deep-flow-nesting-2mb", "size", yaml_deep_flow),
    Attack("yaml-mapping-alias-bomb", "size", yaml_mapping_bomb),
    Attack("yaml-a-million-segments", "size", yaml_million_segments),
    Attack("yaml-20001-tiny-shots", "size", yaml_many_tiny_shots, command="plan"),
    Attack("pv-form-feed-in-a-prompt", "line-breaks", pv_line_break("\f")),
    Attack("pv-line-separator-in-a-prompt", "line-breaks", pv_line_break("\u2028")),
    Attack("pv-next-line-in-a-prompt", "line-breaks", pv_line_break("\x85", "script.md")),
    Attack("txt-pv-vertical-tab-in-a-prompt", "line-breaks", pv_line_break("\v", "script.txt")),
    Attack("anisora-line-separator", "line-breaks", anisora_line_separator),
    Attack("yaml-line-separator", "line-breaks", yaml_line_break("\u2028")),
    Attack("yaml-next-line", "line-breaks", yaml_line_break("\x85")),
    Attack("yaml-paragraph-separator", "line-breaks", yaml_line_break("\u2029")),
    Attack("yaml-cr-line-ends", "line-breaks", yaml_cr_line_ends),
    Attack("pv-crlf-line-ends", "line-breaks", pv_crlf_line_ends),
    Attack("yaml-osc-escape-in-title", "control", yaml_escape_in_title, command="plan"),
    Attack("yaml-csi-escape-in-prompt", "control", yaml_escape("camera", "\\x9b31m", "`camera`: contains U+009B")),
    Attack("yaml-nul-escape-in-prompt", "control", yaml_escape("negative", "\\0", "`negative`: contains U+0000")),
    Attack("yaml-carriage-return-escape", "control", yaml_escape("camera", "\\r", "U+000D (CARRIAGE RETURN")),
    Attack("yaml-lone-surrogate-escape", "control", yaml_escape("camera", "\\ud800", "`camera`: must be a valid string")),
    Attack("yaml-esc-in-a-path", "control", yaml_escape("start", "\\e", "path 'a\\x1bb' contains U+001B")),
    Attack("yaml-raw-bidi-override", "control", raw_character(C, "\u202e", "U+202E is not allowed in a YAML file")),
    Attack("yaml-raw-esc", "control", raw_character(C, "\x1b", "U+001B is not allowed in a YAML file")),
    Attack("pv-raw-nul", "control", raw_character("script.pv", "\0", "U+0000 is not allowed in a PV script (NUL")),
    Attack("pv-raw-bidi-isolate", "control", raw_character("script.pv", "\u2067", "U+2067 is not allowed")),
    Attack("anisora-raw-del", "control", raw_character("prompts.txt", "\x7f", "U+007F is not allowed")),
    Attack("anisora-raw-c1", "control", raw_character("prompts.txt", "\x9b", "U+009B is not allowed")),
    Attack("pv-osc-in-title", "control", pv_title_escape, command="plan"),
    Attack("anisora-cp1252-pokemon", "encoding", cp1252("prompts.txt", "A wild Pokémon appears@@a.png\n", "é")),
    Attack("txt-pv-cp1252-coracao", "encoding", cp1252("script.txt", "## s\n- [1s] o coração bate\n", "çã")),
    Attack("anisora-cp1252-curly-apostrophe", "encoding", cp1252("prompts.txt", "fine@@a.png\nit’s raining@@a.png\n", "’")),
    Attack("anisora-utf16", "encoding", utf16),
    Attack("import-of-a-cp1252-prompt-file", "encoding", cp1252("prompts.txt", "Pokémon@@a.png\n", "é"),
           command="import", args=("-o", "out/storyboard.yaml")),
    Attack("import-of-a-pv-script-with-an-escape", "control", pv_title_escape, command="import",
           args=("-o", "storyboard.yaml")),
    Attack("storyboard-linked-to-a-secret", "links", link_to_secret),
    Attack("storyboard-link-keeps-its-folder", "links", link_keeps_its_folder),
    Attack("secret-behind-a-picture", "links", garbage_asset("image")),
    Attack("secret-behind-a-soundtrack", "links", garbage_asset("audio")),
    Attack("sparse-600mb-soundtrack", "assets", audio_too_large),
    Attack("one-bad-picture-three-spellings", "assets", image_spellings),
]
KINDS = {"quadratic", "size", "line-breaks", "control", "encoding", "links", "assets"}


def test_the_corpus_covers_every_kind_with_unique_ids():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} == KINDS


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` with its size and modification time (links not followed)."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_at_its_position_and_writes_nothing(case: Attack, tmp_path: Path, monkeypatch, sakuga):
    at = case.build(tmp_path)
    before = files_under(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = sakuga(case.command, at.name, *case.args)

    assert result.exit_code == 2, result.output[:2000]
    assert result.stdout == ""
    reported = result.stderr.splitlines()
    parsed = [PROBLEM_LINE.match(line) for line in reported]
    assert reported and all(parsed), f"not FILE:LINE:COL: error: lines:\n{result.stderr[:2000]}"
    assert {m["file"] for m in parsed} == {at.name}
    assert any((int(m["line"]), int(m["col"])) == (at.line, at.col) and at.words in m["message"] for m in parsed), \
        f"no problem at {at.line}:{at.col} saying {at.words!r}:\n{result.stderr[:2000]}"
    assert len(reported) <= 101, "at most MAX_PROBLEMS problems and one line counting the rest"
    assert SECRET not in result.stderr
    assert str(tmp_path) not in result.stderr, "messages name files as the user wrote them, never resolved"
    assert files_under(tmp_path) == before, "a refused input must write nothing"


# ---------------------------------------------------------------- around the corpus


def test_both_job_limits_are_reported_at_the_shots_that_cross_them(tmp_path: Path, monkeypatch, sakuga):
    yaml_million_segments(tmp_path)
    text = (tmp_path / "storyboard.yaml").read_text().splitlines()
    shots = [n for n, line in enumerate(text, 1) if line.startswith("      - ")]
    monkeypatch.chdir(tmp_path)
    result = sakuga("validate", "storyboard.yaml")
    assert result.exit_code == 2
    at_frames = shots[-(-(MAX_EPISODE_FRAMES + 1) // 9601) - 1]    # 9,601 frames are 120 segments of 81
    at_segments = shots[-(-(MAX_SEGMENTS + 1) // 120) - 1]
    col = {n: text[n - 1].index("9601") + 1 for n in (at_frames, at_segments)}
    assert result.stderr.splitlines() == [
        f"storyboard.yaml:{at_frames}:{col[at_frames]}: error: the episode reaches 172,818 frames with this shot; "
        f"a job renders at most 172,800 frames (2 hours at 24 fps): split the storyboard",
        f"storyboard.yaml:{at_segments}:{col[at_segments]}: error: the episode reaches 20,040 render segments with this shot; "
        f"a job renders at most 20,000 segments: split the storyboard",
    ]


def test_each_picture_is_decoded_once_however_it_is_spelt(tmp_path: Path, monkeypatch):
    from storyboard import assets
    from storyboard.load import load

    decoded = []
    real_decode = assets._decode_image
    monkeypatch.setattr(assets, "_decode_image", lambda data: decoded.append(len(data)) or real_decode(data))
    write_png(tmp_path / "big.png")
    (tmp_path / "d1" / "d2").mkdir(parents=True)
    os.symlink("../big.png", tmp_path / "d1" / "alias.png")
    spellings = ["big.png", "./big.png", "d1/../big.png", "d1/d2/../../big.png", "d1/alias.png", "d1//../big.png"]
    shots = [SHOT.replace("id: a", f"id: a{i}").replace("prompt: x", f"prompt: x, start: {p}")
             for i, p in enumerate(spellings)]
    text, _ = storyboard([shots])
    loaded = load(text_file(tmp_path, "storyboard.yaml", text))
    assert len(decoded) == 1
    assert set(loaded.assets) == set(spellings)
    assert len({(a.path, a.sha256) for a in loaded.assets.values()}) == 1


def _wav_header(frames: int, rate: int = 8000) -> bytes:
    import io

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.setnframes(frames)
        w.writeframes(b"")
    return buf.getvalue()


def test_a_soundtrack_is_probed_never_read_whole(tmp_path: Path):
    """A 400 MB WAV (sparse on disk) validates, with its duration, while Python allocates a few MB."""
    import tracemalloc

    from storyboard.load import load

    frames = 200 * 2**20 // 2 * 2     # 400 MiB of 16-bit mono samples
    header = _wav_header(frames)
    with open(tmp_path / "theme.wav", "wb") as f:
        f.write(header)
        f.truncate(len(header) + frames * 2)
    text, _ = storyboard([[SHOT]], "sakuga: 1\naudio: theme.wav\n")
    path = text_file(tmp_path, "storyboard.yaml", text)
    tracemalloc.start()
    try:
        loaded = load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    audio = loaded.asset("theme.wav")
    assert audio.sha256 is None and audio.duration_s == pytest.approx(frames / 8000, rel=1e-3)
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB of Python memory: the soundtrack was read"


def test_plan_prints_markup_and_emoji_codes_in_a_title_as_text(tmp_path: Path, monkeypatch, sakuga):
    title = "[/bold] [red]Rooftop :smile: \\"
    text, _ = storyboard([[SHOT.replace("prompt: x", "prompt: x, start: '[b]oard.png'")]],
                         f"sakuga: 1\ntitle: '{title}'\n")
    text_file(tmp_path, "storyboard.yaml", text)
    write_png(tmp_path / "[b]oard.png")
    monkeypatch.chdir(tmp_path)
    result = sakuga("plan", "storyboard.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(title + " — model animatic")
    assert "[b]oard.png" in result.stdout


def test_a_link_inside_the_folder_is_read_with_the_links_folder_as_base(tmp_path: Path, monkeypatch, sakuga):
    write_png(tmp_path / "pic.png")
    line = f"      - {SHOT.replace('prompt: x', 'prompt: x, start: pic.png')}"
    text_file(tmp_path, "versions/v3.yaml", f"sakuga: 1\nscenes:\n  - id: s\n    shots:\n{line}\n")
    os.symlink("versions/v3.yaml", tmp_path / "current.yaml")
    monkeypatch.chdir(tmp_path)
    result = sakuga("validate", "current.yaml")
    assert result.exit_code == 0, result.output
