"""AniSora prompt-file adapter: one clip per line → `Document` in the storyboard's shape.

    PROMPT@@IMG1,IMG2,...&&POS1,POS2,...

Each POS is a relative position in [0, 1]; position 0 becomes the shot's `start`, the others its
keyframes. Without `&&` the single image is the first frame; without `@@` the clip is text-to-video.
AniSora's score suffix ("aesthetic score: X. motion score: Y. There is no text in the video.") is
taken off the prompt into the shot's `aesthetic`/`motion`, since the model preset appends it again.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..document import Document, PathKey
from ..errors import MAX_PROBLEMS, InputError, Problem
from ..model import MAX_SHOTS_PER_SCENE
from ..text import split_lines
from .textfile import check_characters

CLIP_FRAMES = 81          # AniSora's default clip length (5 s at 16 fps)
# The score suffix's parts, each with the spaces and full stop after it. No pattern starts with `\s*`:
# one that did would rescan a run of spaces from each of its positions (quadratic in a long line);
# the spaces before a part are stripped off the text before it instead.
_SUFFIX = re.compile(r"(?:(aesthetic|motion)\s+score\s*:\s*([0-9]+(?:\.[0-9]+)?)|there is no text in the video)\s*\.?",
                     re.IGNORECASE)


def parse(path: Path, text: str) -> Document:
    check_characters(path, text, "an AniSora prompt file")
    doc = Document(file=path, data={"sakuga": 1, "title": path.stem, "scenes": [{"id": "clips", "shots": []}]})
    doc.locations[("scenes", 0)] = (1, 1)
    problems: list[Problem] = []
    omitted = 0   # problems past MAX_PROBLEMS: counted, not kept
    shots = doc.data["scenes"][0]["shots"]

    def fail(line: int, col: int, message: str) -> None:
        nonlocal omitted
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(str(path), line, col, message))
        else:
            omitted += 1

    for n, raw in enumerate(split_lines(text), 1):
        if not raw.strip():
            continue
        if len(shots) == MAX_SHOTS_PER_SCENE:   # every clip is a shot of one scene
            fail(n, 1, f"more than {MAX_SHOTS_PER_SCENE:,} clips: a storyboard scene holds at most "
                       f"{MAX_SHOTS_PER_SCENE:,} shots; split the file")
            break
        if (shot := _clip(doc, ("scenes", 0, "shots", len(shots)), n, raw, fail)) is not None:
            shots.append(shot)
    if not shots and not problems:
        fail(1, 1, "the file has no clips (lines like `prompt@@image.png`)")
    if problems:
        raise InputError(problems, omitted)
    return doc


Fail = Callable[[int, int, str], None]


def _clip(doc: Document, at: PathKey, n: int, raw: str, fail: Fail) -> dict | None:
    """The shot of line `n` (to go at `at`), or None when the line is wrong (reported through `fail`)."""
    prompt_text, sep, media = raw.partition("@@")
    if "@@" in media:
        fail(n, len(prompt_text) + len(sep) + media.index("@@") + 1, "a line has one `@@` (prompt@@images)")
        return None
    shot: dict = {"id": f"clip-{at[-1] + 1:03d}", "frames": CLIP_FRAMES}
    prompt, scores = _split_scores(prompt_text)
    if not prompt:
        fail(n, 1, "empty prompt before `@@`" if sep else "empty prompt")
        return None
    shot["prompt"] = prompt
    shot.update(scores)
    for key in ("id", "frames", "prompt", "aesthetic", "motion"):
        doc.locations[at + (key,)] = (n, 1)
    doc.locations[at] = (n, 1)
    if sep and not _media(doc, at, n, shot, media, len(prompt_text) + 3, fail):
        return None
    return shot


def _media(doc: Document, at: PathKey, n: int, shot: dict, media: str, media_col: int, fail: Fail) -> bool:
    """`IMG1,IMG2,...&&POS1,POS2,...` (at column `media_col`) into the shot's `start` and `keyframes`;
    False when it is wrong (reported through `fail`)."""
    images_text, amp, positions_text = media.partition("&&")
    images, cols = [], []
    col = media_col
    for part in images_text.split(","):
        images.append(part.strip())
        cols.append(col + len(part) - len(part.lstrip()))
        col += len(part) + 1
    if any(not i for i in images):
        fail(n, cols[images.index("")], "empty image name")
        return False
    if not amp:
        if len(images) > 1:
            fail(n, media_col, f"{len(images)} images need positions: add `&&` and one position each, "
                               f"e.g. `&&0,1`")
            return False
        positions = [0.0]
    else:
        positions = _positions(n, positions_text, media_col + len(images_text) + 2, fail)
        if positions is None:
            return False
        if len(positions) != len(images):
            fail(n, media_col + len(images_text), f"{len(images)} images but {len(positions)} positions after `&&`")
            return False
    keyframes = []
    for image, pos, col in zip(images, positions, cols):
        if pos == 0.0:
            shot["start"] = image
            doc.locations[at + ("start",)] = (n, col)
        else:
            doc.locations[at + ("keyframes", len(keyframes))] = (n, col)
            doc.locations[at + ("keyframes", len(keyframes), "image")] = (n, col)
            keyframes.append({"image": image, "at": pos})
    if keyframes:
        shot["keyframes"] = keyframes
    return True


def _positions(n: int, text: str, col: int, fail: Fail) -> list[float] | None:
    """The relative positions after `&&` (starting at column `col`), or None at the first bad one."""
    positions: list[float] = []
    seen: set[float] = set()
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            fail(n, col, f"position {part.strip()!r} is not a number between 0 and 1")
            return None
        if not 0.0 <= value <= 1.0:
            fail(n, col, f"position {value} is outside [0, 1]")
            return None
        if value in seen:
            fail(n, col, f"position {value} is given twice")
            return None
        positions.append(value)
        seen.add(value)
        col += len(part) + 1
    return positions


def _split_scores(prompt: str) -> tuple[str, dict[str, float]]:
    """The prompt without AniSora's score suffix, and the scores it gave (in one pass over the text)."""
    scores: dict[str, float] = {}
    kept: list[str] = []
    end = 0
    for m in _SUFFIX.finditer(prompt):
        kept.append(prompt[end:m.start()].rstrip())
        if m.group(1):
            scores[m.group(1).lower()] = float(m.group(2))
        end = m.end()
    kept.append(prompt[end:])
    return "".join(kept).strip(), scores
