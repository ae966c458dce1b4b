"""Running one stage on a worker: the input clips' bytes in, the stage's clip (a `SegmentResult`) out.

Workers never touch the job's folder (as with segments): the driver sends the inputs and publishes
what comes back. Everything streams, a frame (or the upscaler's batch, or the retimer's window) at a
time, so memory does not grow with the shot's length. Flicker (engine/qc.py) is measured on the way
in and on the way out, for the report's before/after.
"""
from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from engine.qc import change
from farm.job.results import SegmentResult
from farm.media.decode import read_frames
from farm.media.encode import Encoder
from farm.media.retime import retime

from .stage import STAGE_CRF, STAGE_PRESET, Stage

logger = logging.getLogger(__name__)


class Upscalers:
    """The nets a worker has loaded, by preset name (kept across stages, like the engines)."""

    def __init__(self):
        self.loaded: dict[str, object] = {}

    def get(self, preset):
        if preset.name not in self.loaded:
            from engine.upscale.upscaler import Upscaler

            self.loaded[preset.name] = Upscaler(preset)
        return self.loaded[preset.name]

    def resident(self) -> tuple[str, ...]:
        return tuple(self.loaded)


class Flicker:
    """Temporal flicker of a stream of frames, measured as they pass (engine.qc.flicker, streamed)."""

    def __init__(self):
        self.total, self.pairs, self.last = 0.0, 0, None

    def watch(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            if self.last is not None:
                self.total += change(self.last, frame)
                self.pairs += 1
            self.last = frame
            yield frame

    @property
    def value(self) -> float:
        return self.total / self.pairs if self.pairs else 0.0


def joined(clips: Sequence[bytes]) -> Iterator[np.ndarray]:
    """A shot's chained segments as one clip: each after the first loses the frame it shares."""
    for i, data in enumerate(clips):
        frames = read_frames(data)
        if i and next(frames, None) is None:
            raise ValueError(f"input {i} of the shot has no frames")
        yield from frames


def resized(frames: Iterable[np.ndarray], stage: Stage) -> Iterator[np.ndarray]:
    """The crop and an antialiased resize to the stage's size, without a net (the upscaler's own steps)."""
    import torch

    from engine.upscale.upscaler import cropped, frames_of
    from engine.upscale.upscaler import resized as to_size

    for frame in frames:
        with torch.inference_mode():     # per frame: a generator must not leave the mode on while suspended
            out = frames_of(to_size(cropped(frame[None], stage.crop), stage.width, stage.height))
        yield from out


def run_stage(stage: Stage, inputs: Sequence[bytes], upscalers: Upscalers, worker: str = "",
              node: str = "") -> SegmentResult:
    started = time.time()
    before, after = Flicker(), Flicker()
    frames = before.watch(joined(inputs))
    if stage.kind == "upscale":
        out = upscalers.get(stage.upscaler).stream(frames, stage.width, stage.height) if stage.upscaler \
            else resized(frames, stage)
    elif stage.kind == "retime":
        out = retime(frames, stage.fps_in, stage.fps, stage.method)
    else:
        raise ValueError(f"unknown stage kind {stage.kind!r}")
    buf = io.BytesIO()
    with Encoder(buf, stage.fps, stage.width, stage.height, crf=STAGE_CRF, preset=STAGE_PRESET) as enc:
        for frame in after.watch(out):
            enc.write(frame)
    if enc.frames != stage.frames or before.pairs + 1 != stage.frames_in:
        raise RuntimeError(f"{stage.id}: {before.pairs + 1} frames in and {enc.frames} out; "
                           f"the plan says {stage.frames_in} and {stage.frames}")
    took = time.time() - started
    metrics = {"flicker_in": round(before.value, 6), "flicker": round(after.value, 6),
               "fps": enc.frames / took if took > 0 else 0.0}
    logger.info("%s: %d frames in %.1f s", stage.id, enc.frames, took)
    return SegmentResult(buf.getvalue(), b"", metrics, started, took, 0.0, worker, node,
                         upscalers.resident())
