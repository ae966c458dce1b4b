"""Storyboard YAML out of any `Document` (what `sakuga import` writes)."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

from ..document import Document
from ..model import PREVIOUS

SCHEMA_URL = "https://raw.githubusercontent.com/sakuga/sakuga/main/docs/storyboard.schema.json"


def to_yaml(doc: Document, out_dir: Path) -> tuple[str, list[str]]:
    """YAML for `doc`, with asset paths rewritten relative to `out_dir` (where the YAML will live).

    A path that would have to leave `out_dir` is written absolute (render with `--asset-root`); those
    are returned with the text."""
    data = copy.deepcopy(doc.data)
    base = doc.base_dir
    out_dir = Path(os.path.realpath(out_dir))

    absolute: list[str] = []

    def move(written: str) -> str:
        real = Path(os.path.realpath(base / written))
        rel = os.path.relpath(real, out_dir)
        if rel.startswith(".."):
            absolute.append(str(real))
            return str(real)
        return Path(rel).as_posix()

    if data.get("audio"):
        data["audio"] = move(data["audio"])
    for character in data.get("characters", {}).values():
        character["refs"] = [move(r) for r in character.get("refs", [])]
    for scene in data.get("scenes", []):
        for shot in scene.get("shots", []):
            if shot.get("start") and shot["start"] != PREVIOUS:
                shot["start"] = move(shot["start"])
            for keyframe in shot.get("keyframes", []):
                keyframe["image"] = move(keyframe["image"])
    order = ("sakuga", "title", "model", "output", "audio", "defaults", "characters", "scenes")
    data = {k: data[k] for k in sorted(data, key=lambda k: order.index(k) if k in order else len(order))}
    # the name as a JSON string: a newline (or any character YAML reads as one) in it cannot end the comment
    header = f"# yaml-language-server: $schema={SCHEMA_URL}\n# imported from {json.dumps(doc.file.name)}\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110), absolute
