"""Validation of a `Document` against the storyboard model: schema first, then meaning.

Schema problems come from pydantic and are mapped back to lines; semantic problems (unknown
characters, duplicate ids, paths, images, timing) are checked on the validated model. Every problem
found is reported at once.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .document import Document, PathKey
from .errors import InputError, Problem
from .model import Storyboard

if TYPE_CHECKING:
    from .presets import Preset

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_SIDE = 8192
MAX_AUDIO_BYTES = 512 * 1024 * 1024
PREVIOUS = "previous"


@dataclass(frozen=True)
class Asset:
    path: Path      # resolved, inside the storyboard folder or an asset root
    sha256: str


@dataclass
class LoadedStoryboard:
    """A storyboard that passed validation, with its preset and every referenced file checked."""

    doc: Document
    storyboard: Storyboard
    preset: "Preset"
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
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = models[0] if len(models) == 1 else ann
            if not models or len(models) > 1:
                return ann
        else:
            return ann


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems_from_validation(doc: Document, error: ValidationError, model: type[BaseModel] | None = None) -> list[Problem]:
    problems = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "document")
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1]) if model else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else (f" (known: {', '.join(known)})" if known else "")
            problems.append(doc.problem(loc, f"unknown field `{loc[-1]}`{hint}", key=True))
        elif err["type"] == "missing":
            problems.append(doc.problem(loc[:-1], f"missing required field `{name}`"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            msg = msg[0].lower() + msg[1:] if msg else msg
            got = f" (got {_short(err['input'])})" if not isinstance(err.get("input"), dict | list) else ""
            problems.append(doc.problem(loc, f"`{name}`: {msg}{got}"))
    return problems


# ---------------------------------------------------------------- semantic problems


class _Checker:
    def __init__(self, doc: Document, sb: Storyboard, asset_roots: list[Path]):
        self.doc, self.sb = doc, sb
        self.base = doc.base_dir
        self.roots = [Path(os.path.realpath(r)) for r in asset_roots]
        self.problems: list[Problem] = []
        self.assets: dict[str, Asset] = {}
        self._checked: dict[str, str | None] = {}  # written path → error message or None

    def fail(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key))

    def resolve(self, written: str) -> tuple[Path | None, str | None]:
        p = Path(written)
        if p.is_absolute():
            real = Path(os.path.realpath(p))
            if not any(real.is_relative_to(r) for r in self.roots):
                return None, f"absolute path {written!r} is outside every --asset-root"
            return real, None
        real = Path(os.path.realpath(self.base / p))
        if not real.is_relative_to(self.base) and not any(real.is_relative_to(r) for r in self.roots):
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
        if not real.is_file():
            return f"{kind} {written!r} does not exist"
        size = real.stat().st_size
        limit = MAX_IMAGE_BYTES if kind == "image" else MAX_AUDIO_BYTES
        if size > limit:
            return f"{kind} {written!r} is {size} bytes; the limit is {limit}"
        data = real.read_bytes()
        err = _decode_image(data) if kind == "image" else _decode_audio(real)
        if err:
            return f"{kind} {written!r} cannot be decoded: {err}"
        self.assets[written] = Asset(real, hashlib.sha256(data).hexdigest())
        return None

    def run(self, preset: "Preset", fps: int) -> None:
        sb = self.sb
        if sb.audio:
            self.file(("audio",), sb.audio, "audio")
        for cid, ch in sb.characters.items():
            for i, ref in enumerate(ch.refs):
                self.file(("characters", cid, "refs", i), ref, "image")
        self.ids((("scenes", si), scene.id) for si, scene in enumerate(sb.scenes))
        shots = sb.shots()
        self.ids((("scenes", si, "shots", ti), shot.id) for si, ti, _, shot in shots)
        for n, (si, ti, _, shot) in enumerate(shots):
            at: PathKey = ("scenes", si, "shots", ti)
            for ci, cid in enumerate(shot.characters):
                if cid not in sb.characters:
                    close = difflib.get_close_matches(cid, list(sb.characters), n=1)
                    hint = f" (did you mean `{close[0]}`?)" if close else ""
                    self.fail(at + ("characters", ci), f"unknown character `{cid}`{hint}")
            if shot.start == PREVIOUS and n == 0:
                self.fail(at + ("start",), "`start: previous` on the first shot: there is no previous shot")
            elif shot.start and shot.start != PREVIOUS:
                self.file(at + ("start",), shot.start, "image")
            seen: dict[float, int] = {}
            for ki, kf in enumerate(shot.keyframes):
                self.file(at + ("keyframes", ki, "image"), kf.image, "image")
                if kf.at in seen:
                    self.fail(at + ("keyframes", ki, "at"), f"two keyframes at {kf.at} (also keyframe {seen[kf.at]})")
                seen[kf.at] = ki
                if kf.at == 0.0 and shot.start:
                    self.fail(at + ("keyframes", ki, "at"), "keyframe at 0 conflicts with `start`; use one of them")
            frames = preset.shot_frames(shot, fps)
            if frames is None:
                self.fail(at + ("duration" if shot.duration is not None else "frames",),
                          f"shot is shorter than the model's minimum of {preset.min_frames} frames")
                continue
            if isinstance(shot.transition, str):
                continue
            if n == len(shots) - 1:
                self.fail(at + ("transition",), "the last shot cannot crossfade: there is no next shot")
                continue
            xf = round(shot.transition.crossfade * fps)
            nxt = preset.shot_frames(shots[n + 1][3], fps) or 0
            if xf < 1 or xf >= min(frames, nxt or frames):
                self.fail(at + ("transition", "crossfade"),
                          f"crossfade of {xf} frames must be at least 1 and shorter than both shots ({frames} and {nxt} frames)")

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

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_IMAGE_SIDE:
                return f"{im.size[0]}x{im.size[1]} is larger than {MAX_IMAGE_SIDE} pixels on a side"
            im.load()
    except Exception as e:  # Pillow raises many types for corrupt files; all mean "not an image"
        return str(e) or type(e).__name__
    return None


def _decode_audio(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "no audio stream"
    except Exception as e:  # PyAV raises per-codec error types; all mean "not audio"
        return str(e) or type(e).__name__
    return None


def validate(doc: Document, *, model: str | None = None, asset_roots: list[Path] = ()) -> LoadedStoryboard:
    """Validate a document; `model` overrides the storyboard's preset. Raises InputError."""
    from .presets import load_preset

    try:
        sb = Storyboard.model_validate(doc.data)
    except ValidationError as e:
        raise InputError(problems_from_validation(doc, e, Storyboard)) from None
    checker = _Checker(doc, sb, list(asset_roots))
    try:
        preset = load_preset(model or sb.model)
    except KeyError as e:
        if model:
            raise InputError.single(doc.file, str(e.args[0])) from None
        checker.fail(("model",), str(e.args[0]))
        raise InputError(checker.problems) from None
    fps = sb.output.fps or preset.fps
    if fps != preset.fps:
        checker.fail(("output", "fps"), f"model `{preset.name}` renders at {preset.fps} fps, not {fps}")
    for axis in ("width", "height"):
        if getattr(sb.output, axis) % preset.resolution_multiple:
            checker.fail(("output", axis), f"`{axis}` must be a multiple of {preset.resolution_multiple} for `{preset.name}`")
    checker.run(preset, fps)
    if checker.problems:
        raise InputError(checker.problems)
    return LoadedStoryboard(doc, sb, preset, fps, checker.assets)
