"""One `.safetensors` file with the whole transformer in plain floating-point dtypes, Wan's names (as
AniSora V3 was first shared, and ComfyUI's repacks) or diffusers' names; a file carries no config, so the
architecture is the base's transformer config."""
from __future__ import annotations

from pathlib import Path

from . import naming
from .layout import Layout
from .stored import Stored


def layout(path: Path, tensors: dict[str, Stored], file_naming: str) -> Layout:
    renamed = naming.to_diffusers(tensors, file_naming)
    return Layout(f"{file_naming}-file", path, file_naming, {new: tensors[old] for new, old in renamed.items()},
                  files=[path])
