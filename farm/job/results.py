"""What crosses the worker → loop boundary: typed results instead of dicts whose keys mean things."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SegmentResult:
    """A rendered segment, from a lone worker or from rank 0 of a gang."""
    mp4: bytes
    last_png: bytes                      # the exact last frame, lossless: what a chained segment starts from
    metrics: dict[str, float]
    started: float
    render_s: float
    encode_s: float
    worker: str
    node: str
    resident: tuple[str, ...] = ()       # presets the worker holds loaded after this segment
    latents: np.ndarray | None = None    # the denoised latents, when the job asked for them


@dataclass(frozen=True)
class ShareDone:
    """A gang member other than rank 0 finished its share; rank 0 returns the segment."""
    started: float
    render_s: float
    worker: str
    node: str
    resident: tuple[str, ...] = ()


@dataclass(frozen=True)
class Published:
    """What the job records of a published segment (sidecar JSON, ledger `record`, manifest row)."""
    metrics: dict[str, float] = field(default_factory=dict)
    render_s: float = 0.0
    encode_s: float = 0.0
    started: float = 0.0
    worker: str = ""
    node: str = ""
    degree: int = 1
    png_sha256: str = ""
    origin: str = "rendered"             # rendered, cache, or resumed (kept from an earlier run)

    @staticmethod
    def of(result: SegmentResult, worker: str, degree: int, png_sha256: str) -> Published:
        return Published(dict(result.metrics), result.render_s, result.encode_s, result.started, worker,
                         result.node, degree, png_sha256)


@dataclass(frozen=True)
class Checkpointed:
    """A rendering worker checkpointed its segment's denoising state after `step` of `steps` (rank 0 of
    a gang): `blob` is `engine.steps.StepState.to_bytes()`, `key` the content key it was conditioned on.
    The attempt goes on; the job publishes the blob (farm/job/checkpoints.py)."""
    step: int
    steps: int
    blob: bytes
    key: str


@dataclass(frozen=True)
class StoppedAt:
    """A worker stopped its segment at a step boundary, as asked (`Pool.stop`): the attempt ends
    `preempted`, its GPUs are free, and the segment goes on from its last checkpoint."""
    step: int
    worker: str
    resident: tuple[str, ...] = ()
