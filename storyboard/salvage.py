"""The parts of a storyboard that passed the schema, at their places in the file.

A whole valid storyboard gives every part; a broken one gives what can still be checked, so that the
meaning checks (`validate.py`) report their problems together with the schema problems.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .document import PathKey
from .model import MAX_CHARACTERS, AssetPath, Character, Id, Output, Shot, Storyboard


def _valid(kind: Any, value: Any) -> Any:
    """`value` validated as `kind`, or None when it does not pass (its problems are reported already)."""
    try:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind.model_validate(value)
        return TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return None


@dataclass
class Parts:
    model: str | None
    output: Output | None
    audio: str | None
    characters: dict[str, Character | None] | None   # id → character (None: defined but broken)
    scenes: list[tuple[PathKey, str]]                  # (path, id) of each scene
    shots: list[tuple[PathKey, str | None, Shot | None]]  # every shot in cut order: path, id, shot if valid

    @classmethod
    def of(cls, sb: Storyboard) -> Parts:
        return cls(
            model=sb.model, output=sb.output, audio=sb.audio, characters=dict(sb.characters),
            scenes=[(("scenes", si), scene.id) for si, scene in enumerate(sb.scenes)],
            shots=[(("scenes", si, "shots", ti), shot.id, shot) for si, ti, _, shot in sb.shots()],
        )

    @classmethod
    def salvage(cls, data: Any) -> Parts:
        data = data if isinstance(data, dict) else {}
        chars = data.get("characters", {})
        if isinstance(chars, dict) and len(chars) > MAX_CHARACTERS:   # reported by the schema; checking
            chars = None                                              # each shot against them all costs
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
