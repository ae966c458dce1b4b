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
from ..errors import InputError, Problem
from ..model import MENTION

_CHARACTER = re.compile(r"@([a-z0-9][a-z0-9_-]*)\s*:(.*)$")
_SHOT = re.compile(r"-\s*\[([^\]]*)\](.*)$")
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*s")
_FRAMES = re.compile(r"(\d+)\s*f")
_MARKER = re.compile(r"(<<|>>)")


class _Script:
    def __init__(self, path: Path):
        self.path = path
        self.doc = Document(file=path, data={"sakuga": 1, "characters": {}, "scenes": []})
        self.problems: list[Problem] = []

    def fail(self, line: int, col: int, message: str) -> None:
        self.problems.append(Problem(str(self.path), line, col, message))

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
    """1-based column of the first non-blank character at or after `start` (0-based)."""
    return start + (len(raw[start:]) - len(raw[start:].lstrip())) + 1


def parse(path: Path, text: str) -> Document:
    script = _Script(path)
    data = script.doc.data
    title_line = None
    scene = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if not line or line.startswith("//"):
            continue
        if line.startswith("## ") or line == "##":
            scene = script.scene(n, line[2:].strip())
        elif line.startswith("#"):
            if title_line is not None:
                script.fail(n, indent + 1, f"a second title (the title is already set on line {title_line})")
                continue
            title_line = n
            script.put(("title",), line[1:].strip(), n, _text_col(raw, indent + 1))
        elif m := _CHARACTER.match(line):
            _character(script, n, raw, indent, m)
        elif line.lower().startswith("music:"):
            start = indent + len("music:")
            script.put(("audio",), raw[start:].strip(), n, _text_col(raw, start))
        elif line.startswith("-"):
            if scene is None:
                scene = script.scene(n, "")
            _shot(script, n, raw, indent, scene)
        else:
            script.fail(n, indent + 1, "not a PV script line: expected `# title`, `@id: refs | description`, "
                                       "`music: file`, `## scene`, `- [3s] shot` or a `//` comment")
    if not any(s["shots"] for s in data["scenes"]) and not script.problems:
        script.fail(1, 1, "the script has no shots (lines like `- [3s] what happens`)")
    if script.problems:
        raise InputError(script.problems)
    if "title" not in data:
        data["title"] = path.stem
    return script.doc


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
        script.fail(n, dur_col, f"bad duration `[{m.group(1)}]`: write seconds like `[3s]`, `[2.5s]` or frames like `[49f]`")
        return
    rest_start = indent + m.start(2)
    rest = raw[rest_start:]
    pieces = _MARKER.split(rest)
    prompt = pieces[0].strip()
    script.put(at, shot, n, indent + 1)
    script.doc.locations[at + ("id",)] = (n, indent + 1)
    script.put(at + (key,), value, n, dur_col)
    script.put(at + ("prompt",), prompt, n, _text_col(raw, rest_start))
    if not prompt:
        script.fail(n, _text_col(raw, rest_start), "the shot has no text: describe what happens")
    col = rest_start + len(pieces[0])
    for marker, target in zip(pieces[1::2], pieces[2::2]):
        image_col = _text_col(raw, col + 2)
        image = target.strip()
        if not image:
            script.fail(n, col + 1, f"`{marker}` needs an image path" + (" or `previous`" if marker == "<<" else ""))
        elif marker == "<<":
            if "start" in shot:
                script.fail(n, col + 1, "a shot has one `<<` start image")
            else:
                script.put(at + ("start",), image, n, image_col)
        else:
            if "keyframes" in shot:
                script.fail(n, col + 1, "a shot has one `>>` end image")
            else:
                script.put(at + ("keyframes",), [], n, col + 1)
                script.put(at + ("keyframes", 0), {"at": 1.0}, n, col + 1)
                script.put(at + ("keyframes", 0, "image"), image, n, image_col)
        col += len(marker) + len(target)
    mentions: list[str] = []
    for mm in MENTION.finditer(prompt):
        if mm.group(1) not in mentions:
            mentions.append(mm.group(1))
            script.doc.locations[at + ("characters", len(mentions) - 1)] = (n, _text_col(raw, rest_start) + mm.start())
    if mentions:
        shot["characters"] = mentions
        script.doc.locations.setdefault(at + ("characters",), (n, _text_col(raw, rest_start)))
