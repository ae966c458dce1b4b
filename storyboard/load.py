"""An input file in, a validated storyboard out: the adapter `storyboard.adapters` picks, then validation."""
from __future__ import annotations

from pathlib import Path

from .adapters import read_document
from .loaded import LoadedStoryboard
from .validate import validate

__all__ = ["load", "read_document"]


def load(path: Path | str, *, model: str | None = None, asset_roots: list[Path] = (),
         size: tuple[int, int] | None = None) -> LoadedStoryboard:
    return validate(read_document(path), model=model, asset_roots=asset_roots, size=size)
