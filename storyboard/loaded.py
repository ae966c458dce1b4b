"""What validation hands the planner: a storyboard that passed, its preset, and its checked files."""
from __future__ import annotations

from dataclasses import dataclass, field

from .assets import Asset
from .document import Document
from .model import Storyboard
from .presets import Preset


@dataclass
class LoadedStoryboard:
    """A storyboard that passed validation, with its preset and every referenced file checked."""

    doc: Document
    storyboard: Storyboard
    preset: Preset
    fps: int
    width: int     # the output size (`storyboard/size.py`: command line, `output`, the preset's native size)
    height: int
    assets: dict[str, Asset] = field(default_factory=dict)   # as written in the file → checked asset

    def asset(self, written: str) -> Asset:
        return self.assets[written]
