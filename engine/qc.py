"""Per-segment quality figures that need no model (those that do live with the engine's encoder)."""
from __future__ import annotations

import numpy as np


def flicker(frames: np.ndarray) -> float:
    """Temporal flicker: mean absolute difference of consecutive frames, on a 0..1 scale.

    0 is a still picture; camera moves and action raise it too, so compare shots of a kind, and watch
    for segments far above their neighbours.
    """
    if len(frames) < 2:
        return 0.0
    # frame pairs: no (F, H, W, 3) int16 copy of a long clip
    return sum(change(a, b) for a, b in zip(frames[:-1], frames[1:])) / (len(frames) - 1)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames, on a 0..1 scale."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) / 255.0


def sample_indices(frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly from the first to the last frame."""
    if frames <= count:
        return list(range(frames))
    return sorted({round(i * (frames - 1) / (count - 1)) for i in range(count)}) if count > 1 else [frames // 2]
