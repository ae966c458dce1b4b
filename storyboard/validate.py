"""Validation of a `Document` against the storyboard model: schema first, then meaning.

Schema problems come from pydantic and are mapped back to lines, worded for the artist who wrote the
file; semantic problems (unknown characters, duplicate ids, paths, images, timing) are checked on every
part of the storyboard that passed the schema, so one run reports every problem it can find.
"""
from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .document import Document, PathKey
from .errors import InputError, Problem
from .model import (
    MENTION,
    PREVIOUS,
    AssetPath,
    Character,
    Id,
    Output,
    Shot,
    Storyboard,
    keyframe_frame,
)

if TYPE_CHECKING:
    from .presets import Preset

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_SIDE = 8192
MAX_AUDIO_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Asset:
    path: Path      # resolved, inside the storyboard folder or an asset root
    sha256: str


@dataclass
class LoadedStoryboard:
    """A storyboard that passed validation, with its preset and every referenced file checked."""

    doc: Document
    storyboard: Storyboard
    preset: Preset
    fps: int
    assets: dict[str, Asset] = field(default_factory=dict)   # as written in the file → checked asset

    def asset(self, written: str) -> Asset:
        return self.assets[written]


# ---------------------------------------------------------------- schema problems


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model that sits at `loc` (used for 'did you mean' on unknown keys)."""
    ann: Any = model
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            f = ann.model_fields.get(part) if isinstance(part, str) else None
            if f is None:
                return []
            ann = f.annotation
        elif typing.get_origin(ann) in (list, tuple):
            ann = typing.get_args(ann)[0]
        elif typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        else:
            return []
    ann = _unwrap(ann)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _unwrap(ann: Any) -> Any:
    """Strip Annotated and Optional; a union with exactly one model in it becomes that model."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [_unwrap(a) for a in typing.get_args(ann)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            return models[0] if len(models) == 1 else ann
        else:
            return ann


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    """What a YAML value is, in an artist's words."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"the number {value}"
    if value is None:
        return "an empty value"
    return f"text {_short(value)}"


def _clean_loc(data: Any, loc: tuple, keep_last: bool) -> tuple:
    """Pydantic's error location as a path through the data: union tags and `[key]` markers dropped."""
    out: list = []
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data or isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif keep_last and i == len(loc) - 1:
            pass
        else:
            continue
        out.append(part)
    return tuple(out)


_QUOTE_HINT = " (put it in quotes if it is meant as text)"
_ID_RULE = "ids use lowercase letters, digits, `-` and `_`, and start with a letter or digit"
_EXPECTED = {
    "model_type": "a mapping (`key: value` lines)",
    "dict_type": "a mapping (`key: value` lines)",
    "model_attributes_type": "a mapping (`key: value` lines)",
    "list_type": "a list (`[a, b]` or `- ` lines)",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "`true` or `false`",
    "bool_parsing": "`true` or `false`",
}


def _schema_message(err: dict, loc: tuple, name: str) -> tuple[tuple, str]:
    """(where, message) for one pydantic error that is not about a missing or unknown field."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    field_level = bool(loc) and isinstance(loc[-1], str)
    label = f"`{name}`: " if field_level else ""
    if not loc and kind == "model_type":
        return loc, (f"a storyboard must be a mapping of fields (`sakuga: 1`, `title: ...`, `scenes: ...`), "
                     f"not {_kind(value)}")
    if kind in _EXPECTED:
        if not field_level and name != "document":
            label = f"each entry of `{name}`: "
        # YAML reads 1984, 1.5 and yes/no/on/off as numbers and booleans
        hint = _QUOTE_HINT if kind == "string_type" and isinstance(value, int | float) else ""
        return loc, f"{label}expected {_EXPECTED[kind]}, got {_kind(value)}{hint}"
    if loc[-1:] == ("sakuga",) and kind == "literal_error":
        return loc, f"unsupported schema version {_short(value)}: this sakuga reads `sakuga: 1`"
    if loc[-1:] == ("transition",):
        return loc, f"`transition`: expected `cut` or `{{crossfade: SECONDS}}`, got {_kind(value)}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == Id.__metadata__[0].pattern:
        return loc, f"{label}{_short(value)} is not a valid id ({_ID_RULE})"
    if kind == "too_short" and isinstance(value, list | dict):
        n = ctx.get("min_length")
        return loc, f"{label}needs at least {n} {'entry' if n == 1 else 'entries'} (got {len(value)})"
    if kind == "too_long" and isinstance(value, list | dict):
        return loc, f"{label}has {len(value)} entries; the limit is {ctx.get('max_length')}"
    if kind == "string_too_short":
        return loc, f"{label}must not be empty"
    if kind == "string_too_long":
        return loc, f"{label}is {len(value)} characters long; the limit is {ctx.get('max_length')}"
    if isinstance(value, float) and not math.isfinite(value):
        return loc, f"{label}must be a finite number (got {value})"
    if kind == "value_error" and isinstance(value, dict) and "duration" in str(err["msg"]):
        if "duration" in value and "frames" in value:
            return loc + ("frames",), "a shot takes `duration` or `frames`, not both"
        return loc, "a shot needs a length: add `duration: SECONDS` or `frames: COUNT`"
    msg = err["msg"].removeprefix("Value error, ")
    msg = re.sub(r"^Input should be\b", "must be", msg)
    msg = msg[0].lower() + msg[1:] if msg else msg
    got = f" (got {_short(value)})" if not isinstance(value, dict | list) else ""
    return loc, f"{label}{msg}{got}"


def problems_from_validation(doc: Document, error: ValidationError, model: type[BaseModel] | None = None) -> list[Problem]:
    errors = error.errors(include_url=False)
    suggested: set[tuple] = set()   # (parent path, field) a "did you mean" already points at
    problems = []
    for err in errors:
        if err["type"] != "extra_forbidden":
            continue
        loc = _clean_loc(doc.data, tuple(err["loc"]), keep_last=True)
        known = _fields_at(model, loc[:-1]) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            suggested.add((loc[:-1], close[0]))
        hint = f" (did you mean `{close[0]}`?)" if close else (f" (known: {', '.join(known)})" if known else "")
        problems.append(doc.problem(loc, f"unknown field {_field_name(loc[-1])}{hint}", key=True))
    for err in errors:
        raw = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            continue
        if raw[-1:] == ("[key]",):  # a mapping key that is not a valid id
            loc = _clean_loc(doc.data, raw[:-1], keep_last=True)
            problems.append(doc.problem(loc, f"{_short(loc[-1])} is not a valid id ({_ID_RULE})", key=True))
            continue
        loc = _clean_loc(doc.data, raw, keep_last=err["type"] == "missing")
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "document")
        if err["type"] == "missing":
            if (loc[:-1], loc[-1]) in suggested:
                continue
            hint = " (the schema version: add `sakuga: 1` at the top)" if loc == ("sakuga",) else ""
            problems.append(doc.problem(loc[:-1], f"missing required field `{name}`{hint}"))
            continue
        where, message = _schema_message(err, loc, name)
        problems.append(doc.problem(where, message, key=where != loc))
    return problems


def _field_name(key: Any) -> str:
    text = str(key)
    return f"`{text}`" if text.isprintable() and "`" not in text and len(text) <= 60 else _short(text)


# ---------------------------------------------------------------- what passed the schema


def _valid(kind: Any, value: Any) -> Any:
    """`value` validated as `kind`, or None when it does not pass (its problems are reported already)."""
    try:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind.model_validate(value)
        return TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return None


@dataclass
class _Parts:
    """The parts of a storyboard that passed the schema, at their places in the file.

    A whole valid storyboard gives every part; a broken one gives what can still be checked, so that
    semantic problems are reported together with the schema problems.
    """

    model: str | None
    output: Output | None
    audio: str | None
    characters: dict[str, Character | None] | None   # id → character (None: defined but broken)
    scenes: list[tuple[PathKey, str]]                  # (path, id) of each scene
    shots: list[tuple[PathKey, str | None, Shot | None]]  # every shot in cut order: path, id, shot if valid

    @classmethod
    def of(cls, sb: Storyboard) -> _Parts:
        return cls(
            model=sb.model, output=sb.output, audio=sb.audio, characters=dict(sb.characters),
            scenes=[(("scenes", si), scene.id) for si, scene in enumerate(sb.scenes)],
            shots=[(("scenes", si, "shots", ti), shot.id, shot) for si, ti, _, shot in sb.shots()],
        )

    @classmethod
    def salvage(cls, data: Any) -> _Parts:
        data = data if isinstance(data, dict) else {}
        chars = data.get("characters", {})
        scenes, shots = [], []
        raw_scenes = data.get("scenes")
        for si, scene in enumerate(raw_scenes if isinstance(raw_scenes, list) else []):
            if not isinstance(scene, dict):
                continue
            if isinstance(scene.get("id"), str):
                scenes.append((("scenes", si), scene["id"]))
            raw_shots = scene.get("shots")
            for ti, shot in enumerate(raw_shots if isinstance(raw_shots, list) else []):
                ident = shot.get("id") if isinstance(shot, dict) else None
                shots.append((("scenes", si, "shots", ti), ident if isinstance(ident, str) else None,
                              _valid(Shot, shot)))
        return cls(
            model=_valid(Id, data.get("model", "animatic")),
            output=_valid(Output, data.get("output", {})),
            audio=_valid(AssetPath, data["audio"]) if data.get("audio") is not None else None,
            characters={str(k): _valid(Character, v) for k, v in chars.items()} if isinstance(chars, dict) else None,
            scenes=scenes, shots=shots,
        )


# ---------------------------------------------------------------- semantic problems


class _Checker:
    def __init__(self, doc: Document, asset_roots: list[Path]):
        self.doc = doc
        self.base = doc.base_dir
        self.roots = [Path(os.path.realpath(r)) for r in asset_roots]
        self.problems: list[Problem] = []
        self.assets: dict[str, Asset] = {}
        self._checked: dict[str, str | None] = {}  # written path → error message or None

    def fail(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key))

    def _allowed(self, real: Path) -> bool:
        return real.is_relative_to(self.base) or any(real.is_relative_to(r) for r in self.roots)

    def resolve(self, written: str) -> tuple[Path | None, str | None]:
        if "\0" in written:
            return None, f"path {written!r} contains a NUL character"
        p = Path(written)
        if p.is_absolute():
            real = Path(os.path.realpath(p))
            if not self.roots:
                return None, (f"absolute path {written!r}: write it relative to the storyboard's folder, "
                              f"or allow its folder with --asset-root")
            if not any(real.is_relative_to(r) for r in self.roots):
                return None, f"absolute path {written!r} is outside every --asset-root"
            return real, None
        real = Path(os.path.realpath(self.base / p))
        if not self._allowed(real):
            if self._allowed(Path(os.path.normpath(self.base / p))):
                return None, f"path {written!r} is a link that leads out of the storyboard's folder"
            return None, f"path {written!r} leaves the storyboard's folder"
        return real, None

    def file(self, path: PathKey, written: str, kind: str) -> None:
        if written not in self._checked:
            self._checked[written] = self._check_file(written, kind)
        if self._checked[written]:
            self.fail(path, self._checked[written])

    def _check_file(self, written: str, kind: str) -> str | None:
        real, err = self.resolve(written)
        if err:
            return err
        try:
            if not real.exists():
                return f"{kind} {written!r} does not exist"
            if not real.is_file():
                return f"{kind} {written!r} is not a file"
            size = real.stat().st_size
            limit = MAX_IMAGE_BYTES if kind == "image" else MAX_AUDIO_BYTES
            if size > limit:
                return f"{kind} {written!r} is {size} bytes; the limit is {limit}"
            data = real.read_bytes()
        except OSError as e:
            return f"cannot read {kind} {written!r}: {e.strerror or e}"
        err = _decode_image(data) if kind == "image" else _decode_audio(real)
        if err:
            return f"{kind} {written!r} cannot be decoded: {err}"
        self.assets[written] = Asset(real, hashlib.sha256(data).hexdigest())
        return None

    def run(self, parts: _Parts, preset: Preset | None, fps: int | None) -> None:
        if parts.audio:
            self.file(("audio",), parts.audio, "audio")
        for cid, ch in (parts.characters or {}).items():
            for i, ref in enumerate(ch.refs if ch else []):
                self.file(("characters", cid, "refs", i), ref, "image")
        self.ids(parts.scenes)
        self.ids([(p, ident) for p, ident, _ in parts.shots if ident is not None])
        lengths = [preset.shot_frames(shot, fps) if shot and preset else None for _, _, shot in parts.shots]
        for n, (at, _, shot) in enumerate(parts.shots):
            if shot is None:
                continue
            self.characters(at, shot, parts.characters)
            if shot.start == PREVIOUS and n == 0:
                self.fail(at + ("start",), "`start: previous` on the first shot: there is no previous shot")
            elif shot.start and shot.start != PREVIOUS:
                self.file(at + ("start",), shot.start, "image")
            for ki, kf in enumerate(shot.keyframes):
                self.file(at + ("keyframes", ki, "image"), kf.image, "image")
            if preset is None:
                continue
            frames = lengths[n]
            if frames is None:
                self.fail(at + ("duration" if shot.duration is not None else "frames",),
                          f"shot is too short: {self._length(shot, preset, fps)}; model `{preset.name}` needs "
                          f"at least {preset.min_frames} frames")
                continue
            self.keyframes(at, shot, frames)
            if not preset.pictures:
                self.text_only(at, shot, frames, preset)
            if isinstance(shot.transition, str):
                continue
            if n == len(parts.shots) - 1:
                self.fail(at + ("transition",), "the last shot cannot crossfade: there is no next shot")
                continue
            nxt = lengths[n + 1]
            xf = shot.crossfade_frames(fps)
            limit = min(frames, nxt) if nxt else frames
            if xf < 1:
                self.fail(at + ("transition", "crossfade"),
                          f"crossfade of {shot.transition.crossfade} s is less than one frame at {fps} fps")
            elif xf >= limit:
                self.fail(at + ("transition", "crossfade"),
                          f"crossfade of {xf} frames must be shorter than both shots it joins "
                          f"(this one has {frames} frames" + (f", the next {nxt})" if nxt else ")"))
            elif (fade_in := self._fade_in(parts.shots, n, fps)) + xf > frames:
                self.fail(at + ("transition", "crossfade"),
                          f"shot has {frames} frames: too short to dissolve in over {fade_in} frames "
                          f"and out over {xf}")

    def text_only(self, at, shot: Shot, frames: int, preset: Preset) -> None:
        """A text-to-video model cannot start from a picture, so it cannot continue a shot either."""
        why = f"model `{preset.name}` renders from text only"
        if shot.start:
            self.fail(at + ("start",), f"{why}: it cannot start from a picture (drop `start` or use an image-to-video model)")
        if shot.keyframes:
            self.fail(at + ("keyframes",), f"{why}: it cannot take keyframes")
        if frames > preset.max_frames:
            self.fail(at + ("duration" if shot.duration is not None else "frames",),
                      f"{why}: a shot of {frames} frames would need continuing from a picture; "
                      f"at most {preset.max_frames} frames")

    @staticmethod
    def _fade_in(shots, n: int, fps: int) -> int:
        """Frames of the dissolve from the shot before shot `n` (0 for a cut or no valid previous shot)."""
        before = shots[n - 1][2] if n else None
        return before.crossfade_frames(fps) if before is not None else 0

    @staticmethod
    def _length(shot: Shot, preset: Preset, fps: int) -> str:
        snapped = preset.frame_grid.snap(shot.frames if shot.frames is not None else shot.duration * fps)
        if shot.frames is None:
            return f"{shot.duration} s is {snapped} frames at {fps} fps"
        plural = "frame" if shot.frames == 1 else "frames"
        return f"{shot.frames} {plural}" + (f" ({snapped} on the model's frame grid)" if snapped != shot.frames else "")

    def characters(self, at: PathKey, shot: Shot, known: dict[str, Character | None] | None) -> None:
        if known is None:  # `characters` itself is broken (reported already)
            return
        for ci, cid in enumerate(shot.characters):
            if cid not in known:
                close = difflib.get_close_matches(cid, list(known), n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                self.fail(at + ("characters", ci), f"unknown character `{cid}`{hint}")
        if not known:  # a storyboard without characters: "@" in a prompt is just text
            return
        for m in MENTION.finditer(shot.prompt):
            if m.group(1) not in known and m.group(1) not in shot.characters:  # else reported just above
                close = difflib.get_close_matches(m.group(1), list(known), n=1)
                hint = f" (did you mean `@{close[0]}`?)" if close else ""
                self.fail(at + ("prompt",), f"prompt mentions `@{m.group(1)}`, which is not a defined character{hint}")

    def keyframes(self, at: PathKey, shot: Shot, frames: int) -> None:
        taken: dict[int, tuple[int, float]] = {}   # frame → (keyframe index, at)
        for ki, kf in enumerate(shot.keyframes):
            where = at + ("keyframes", ki, "at")
            f = keyframe_frame(kf.at, frames)
            if f == 0 and shot.start:
                self.fail(where, f"keyframe at {kf.at} conflicts with `start`: both set the first frame; use one of them")
            elif f in taken:
                other_ki, other_at = taken[f]
                line, _ = self.doc.where(at + ("keyframes", other_ki, "at"))
                same = f"two keyframes at {kf.at}" if other_at == kf.at else f"keyframes at {other_at} and {kf.at}"
                self.fail(where, f"{same} land on the same frame ({f} of {frames}); the other is on line {line}")
            else:
                taken[f] = (ki, kf.at)

    def ids(self, entries) -> None:
        seen: dict[str, PathKey] = {}
        for p, ident in entries:
            if ident in seen:
                line, _ = self.doc.where(seen[ident] + ("id",))
                self.fail(p + ("id",), f"duplicate id `{ident}` (first used on line {line})")
            else:
                seen[ident] = p


def _decode_image(data: bytes) -> str | None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_IMAGE_SIDE:
                return f"{im.size[0]}x{im.size[1]} is larger than {MAX_IMAGE_SIDE} pixels on a side"
            im.load()
    except UnidentifiedImageError:
        return "not an image in a format Pillow reads (PNG, JPEG, WebP, ...)"
    except Exception as e:  # noqa: BLE001  Pillow raises many types for corrupt files; all mean "not an image"
        return " ".join(str(e).split()) or type(e).__name__
    return None


def _decode_audio(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "no audio stream"
    except Exception as e:  # noqa: BLE001  PyAV raises per-codec error types; all mean "not audio"
        return " ".join(str(e).split()) or type(e).__name__
    return None


def _unknown_preset(name: str, message: str) -> str:
    from .presets import available

    close = difflib.get_close_matches(name, list(available()), n=1)
    return message + (f"; did you mean `{close[0]}`?" if close else "")


def validate(doc: Document, *, model: str | None = None, asset_roots: list[Path] = ()) -> LoadedStoryboard:
    """Validate a document; `model` overrides the storyboard's preset. Raises InputError with every
    problem found."""
    from .presets import load_preset

    problems: list[Problem] = []
    try:
        sb: Storyboard | None = Storyboard.model_validate(doc.data)
    except ValidationError as e:
        sb = None
        problems += problems_from_validation(doc, e, Storyboard)
    parts = _Parts.of(sb) if sb else _Parts.salvage(doc.data)
    checker = _Checker(doc, list(asset_roots))
    preset = None
    if model or parts.model:
        try:
            preset = load_preset(model or parts.model)
        except KeyError as e:
            if model:
                raise InputError.single(doc.file, str(e.args[0])) from None
            checker.fail(("model",), _unknown_preset(parts.model, str(e.args[0])))
    fps = None
    if preset is not None:
        fps = preset.fps
        if parts.output is not None:
            fps = parts.output.fps or preset.fps
            if fps != preset.fps:
                checker.fail(("output", "fps"), f"model `{preset.name}` renders at {preset.fps} fps, not {fps}")
            for axis in ("width", "height"):
                if getattr(parts.output, axis) % preset.resolution_multiple:
                    checker.fail(("output", axis),
                                 f"`{axis}` must be a multiple of {preset.resolution_multiple} for `{preset.name}`")
    checker.run(parts, preset, fps)
    problems += checker.problems
    if problems or sb is None or preset is None:
        raise InputError(problems or [Problem(str(doc.file), 1, 1, "invalid storyboard")])
    return LoadedStoryboard(doc, sb, preset, fps, checker.assets)
