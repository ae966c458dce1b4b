"""The no-op engine: flat grey frames after an optional sleep, with no model.

It stands in for GPU work where only the farm is under test: the orchestration-overhead benchmark
(`bench/overhead.py`) and the chaos tests, whose `sleep_s` option keeps a segment busy long enough to
kill its worker mid-render.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .animatic import option
from .base import NoBank, Progress, Rendered


class NoopEngine(NoBank):
    def __init__(self, preset: Preset):
        self.preset = preset

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None) -> Rendered:
        time.sleep(float(option(segment, "sleep_s", 0.0)))
        grey = segment.seed % 200 + 28      # differs per segment, so a mixed-up file is visible
        return Rendered(np.full((segment.frames, segment.height, segment.width, 3), grey, np.uint8))
