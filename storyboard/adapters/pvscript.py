"""PV script adapter: a plain-text shot list → `Document` in the storyboard's shape.

    # Starlight Run                                   title
    @hana: characters/hana.png | short silver hair    character: refs | description
    music: music/theme.wav                            soundtrack
    ## city rooftop at night                          a new scene and its description
    - [3s] wide shot, @hana at the rail << a.png      a shot; `<< image` start, `<< previous` continuity
    - [49f] the skyline, slow pan right >> end.png    `>> image` end keyframe
    // a comment

Every value keeps the line and column it came from, so validation errors point into the script.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..document import Document, PathKey
from ..errors import MAX_PROBLEMS, InputError, Problem
from ..model import MAX_CHARACTERS, MAX_SCENES, MAX_SEGMENTS, MAX_SHOTS_PER_SCENE, MENTION
from ..text import split_lines
from .textfile import check_characters

_CHARACTER = re.compile(r"@([a-z0-9][a-z0-9_-]*)\s*:(.*)$")
_SHOT = re.compile(r"-\s*\[([^\]]*)\](.*)$")
# at most 9 digits a side: a longer number is no length, and int() refuses one of over 4,300 digits
_SECONDS = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)\s*s")
_FRAMES = re.compile(r"(\d{1,9})\s*f")
_MARKER = re.compile(r"(<<|>>)")
_NONBLANK = re.compile(r"\S")


class _TooMany(Exception):
    """The script is past a limit of the storyboard model: reading on would only cost memory."""


class _Script:
    def __init__(self, path: Path):
        self.path = path
        self.doc = Document(file=path, data={"sakuga": 1, "characters": {}, "scenes": []})
        self.problems: list[Problem] = []
        self.omitted = 0   # problems past MAX_PROBLEMS: counted, not kept

    def fail(self, line: int, col: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(str(self.path), line, col, message))
        else:
            self.omitted += 1

    def put(self, path: PathKey, value, line: int, col: int) -> None:
        """Store `value` at `path` in the data, remembering where it was written."""
        node = self.doc.data
        for part in path[:-1]:
            node = node[part]
        if isinstance(node, list):
            node.append(value)
        else:
            node[path[-1]] = value
        self.doc.locations[path] = (line, col)
        self.doc.key_locations[path] = (line, col)

    def scene(self, line: int, description: str) -> int:
        si = len(self.doc.data["scenes"])
        self.put(("scenes", si), {"id": f"scene-{si + 1:02d}", "description": description, "shots": []}, line, 1)
        self.doc.locations[("scenes", si, "description")] = (line, 1)
        return si


def _text_col(raw: str, start: int) -> int:
    """1-based column of the first non-blank character at or after `start` (0-based), or just past the
    line. Searches from `start` rather than slicing the line, so a line's many markers cost one pass."""
    m = _NONBLANK.search(raw, start)
    return (m.start() if m else len(raw)) + 1


def parse(path: Path, text: str) -> Document:
    check_characters(path, text, "a PV script")
    script = _Script(path)
    try:
        _read_lines(script, split_lines(text))
    except _TooMany:
        pass   # reported on the line that went past the limit
    data = script.doc.data
    if not any(s["shots"] for s in data["scenes"]) and not script.problems:
        script.fail(1, 1, "the script has no shots (lines like `- [3s] what happens`)")
    if script.problems:
        raise InputError(script.problems, script.omitted)
    if "title" not in data:
        data["title"] = path.stem
    return script.doc


def _read_lines(script: _Script, lines: list[str]) -> None:
    title_line = None
    scene = None
    shots = 0
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if not line or line.startswith("//"):
            continue
        if line.startswith("## ") or line == "##":
            _limit(script, n, len(script.doc.data["scenes"]), f"more than {MAX_SCENES:,} scenes: a storyboard "
                   f"holds at most {MAX_SCENES:,}; split the script", MAX_SCENES)
            scene = script.scene(n, line[2:].strip())
        elif line.startswith("#"):
            if title_line is not None:
                script.fail(n, indent + 1, f"a second title (the title is already set on line {title_line})")
                continue
            title_line = n
            script.put(("title",), line[1:].strip(), n, _text_col(raw, indent + 1))
        elif m := _CHARACTER.match(line):
            _limit(script, n, len(script.doc.data["characters"]), f"more than {MAX_CHARACTERS} characters: a "
                   f"storyboard defines at most {MAX_CHARACTERS}", MAX_CHARACTERS)
            _character(script, n, raw, indent, m)
        elif line.lower().startswith("music:"):
            start = indent + len("music:")
            script.put(("audio",), raw[start:].strip(), n, _text_col(raw, start))
        elif line.startswith("-"):
            if scene is None:
                scene = script.scene(n, "")
            _limit(script, n, shots, f"more than {MAX_SEGMENTS:,} shots: a job renders at most {MAX_SEGMENTS:,} "
                   f"segments, one shot at least one; split the script", MAX_SEGMENTS)
            _limit(script, n, len(script.doc.data["scenes"][scene]["shots"]), f"more than {MAX_SHOTS_PER_SCENE:,} "
                   f"shots in one scene: a scene holds at most {MAX_SHOTS_PER_SCENE:,}; start a new one with `##`",
                   MAX_SHOTS_PER_SCENE)
            shots += 1
            _shot(script, n, raw, indent, scene)
        else:
            script.fail(n, indent + 1, "not a PV script line: expected `# title`, `@id: refs | description`, "
                                       "`music: file`, `## scene`, `- [3s] shot` or a `//` comment")


def _limit(script: _Script, n: int, count: int, message: str, limit: int) -> None:
    """Stop reading at line `n` when it would make `count` go past `limit`."""
    if count >= limit:
        script.fail(n, 1, message)
        raise _TooMany


def _character(script: _Script, n: int, raw: str, indent: int, m: re.Match) -> None:
    cid = m.group(1)
    characters = script.doc.data["characters"]
    if cid in characters:
        line, _ = script.doc.locations[("characters", cid)]
        script.fail(n, indent + 1, f"character `@{cid}` is defined twice (first on line {line})")
        return
    body_start = indent + m.start(2)
    body = raw[body_start:]
    refs_text, _, description = body.partition("|")
    script.put(("characters", cid), {"name": cid.replace("-", " ").replace("_", " ").title(), "refs": []},
               n, indent + 1)
    col = body_start
    for ref in refs_text.split(","):
        if ref.strip():
            script.put(("characters", cid, "refs", len(characters[cid]["refs"])), ref.strip(), n, _text_col(raw, col))
        col += len(ref) + 1
    if description.strip():
        desc_start = body_start + len(refs_text) + 1
        script.put(("characters", cid, "description"), description.strip(), n, _text_col(raw, desc_start))


def _shot(script: _Script, n: int, raw: str, indent: int, si: int) -> None:
    m = _SHOT.match(raw.strip())
    if not m:
        script.fail(n, indent + 1, "a shot line starts with a duration in brackets: `- [3s] ...` or `- [49f] ...`")
        return
    shots = script.doc.data["scenes"][si]["shots"]
    ti = len(shots)
    at: PathKey = ("scenes", si, "shots", ti)
    shot: dict = {"id": f"{script.doc.data['scenes'][si]['id']}-{(ti + 1) * 10:03d}"}
    dur_col = indent + raw.strip().index("[") + 2
    length = m.group(1).strip()
    if s := _SECONDS.fullmatch(length):
        key, value = "duration", float(s.group(1))
    elif f := _FRAMES.fullmatch(length):
        key, value = "frames", int(f.group(1))
    else:
        shown = m.group(1) if len(m.group(1)) <= 20 else m.group(1)[:17] + "..."
        script.fail(n, dur_col, f"bad duration `[{shown}]`: write seconds like `[3s]`, `[2.5s]` or frames like `[49f]`")
        return
    rest_start = indent + m.start(2)
    rest = raw[rest_start:]
    pieces = _MARKER.split(rest)
    prompt = pieces[0].strip()
    prompt_col = _text_col(raw, rest_start)
    script.put(at, shot, n, indent + 1)
    script.doc.locations[at + ("id",)] = (n, indent + 1)
    script.put(at + (key,), value, n, dur_col)
    script.put(at + ("prompt",), prompt, n, prompt_col)
    if not prompt:
        script.fail(n, prompt_col, "the shot has no text: describe what happens")
    _markers(script, n, raw, at, shot, pieces, rest_start + len(pieces[0]))
    mentions: dict[str, None] = {}
    for mm in MENTION.finditer(prompt):
        if mm.group(1) not in mentions:
            mentions[mm.group(1)] = None
            script.doc.locations[at + ("characters", len(mentions) - 1)] = (n, prompt_col + mm.start())
    if mentions:
        shot["characters"] = list(mentions)
        script.doc.locations.setdefault(at + ("characters",), (n, prompt_col))


def _markers(script: _Script, n: int, raw: str, at: PathKey, shot: dict, pieces: list[str], col: int) -> None:
    """The `<< image` / `<< previous` start and the `>> image` end of a shot; `col` (0-based) is where the
    first marker is. One problem per kind of marker given twice, however many times it is."""
    repeated: set = set()
    for marker, target in zip(pieces[1::2], pieces[2::2]):
        image = target.strip()
        if not image:
            if ("empty", marker) not in repeated:
                script.fail(n, col + 1, f"`{marker}` needs an image path" + (" or `previous`" if marker == "<<" else ""))
            repeated.add(("empty", marker))
        elif marker == "<<":
            if "start" in shot:
                if marker not in repeated:
                    script.fail(n, col + 1, "a shot has one `<<` start image")
                repeated.add(marker)
            else:
                script.put(at + ("start",), image, n, _text_col(raw, col + 2))
        elif "keyframes" in shot:
            if marker not in repeated:
                script.fail(n, col + 1, "a shot has one `>>` end image")
            repeated.add(marker)
        else:
            script.put(at + ("keyframes",), [], n, col + 1)
            script.put(at + ("keyframes", 0), {"at": 1.0}, n, col + 1)
            script.put(at + ("keyframes", 0, "image"), image, n, _text_col(raw, col + 2))
        col += len(marker) + len(target)
