"""`Upscaler`: RGB frames in, frames at a delivery's exact size out, through a super-resolution net.

For one clip, in order:
1. **fit**: the largest centred region of the source with the target's aspect ratio (what overhangs is
   cut, as `engine/fit.py` fits pictures), in whole pixels;
2. **net**: when the target is larger than that region on either axis, the net upscales it by its
   scale (x4 for the Real-ESRGAN anime nets), tiled with overlap (`tiles.py`), a batch of frames at a
   time; a target it cannot reach (region x scale smaller than the target) is refused;
3. **resize** to the exact target with an antialiased filter (bicubic by default): e.g. 1280x720 x4
   = 5120x2880, then down to 1920x1080; 480x270 x4 is already 1920x1080 and is not resized.
A target no larger than the region is only resized (no net). Everything after decoding runs on the
device, cuda when there is one (like the Wan engine), in the preset's dtype there and float32 on CPUs.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np

from .framing import Fit, fit
from .loader import load_model
from .presets import UpscalerPreset
from .tiles import run_tiled

logger = logging.getLogger(__name__)


class Upscaler:
    """Loaded once per worker from a preset; `upscale(frames, w, h)` or `stream(frames, w, h)`."""

    def __init__(self, preset: UpscalerPreset, device: str | None = None):
        import torch

        self.preset = preset
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = load_model(preset, str(self.device))
        self.dtype = torch.float32
        if self.device.type == "cuda":
            wanted = getattr(torch, preset.dtype)
            supported = {torch.float16: self.model.supports_half, torch.bfloat16: self.model.supports_bfloat16}
            self.dtype = wanted if supported.get(wanted, True) else torch.float32
        self.model.to(self.dtype)

    @property
    def scale(self) -> int:
        return self.model.scale

    def fit(self, src_width: int, src_height: int, width: int, height: int) -> Fit:
        return fit(src_width, src_height, width, height, self.scale)

    def upscale(self, frames: np.ndarray, width: int, height: int) -> np.ndarray:
        """(F, H, W, 3) uint8 → (F, height, width, 3) uint8."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (frames, height, width, 3) uint8, got {frames.dtype} {frames.shape}")
        return np.stack(list(self.stream(frames, width, height))) if len(frames) else \
            np.zeros((0, height, width, 3), np.uint8)

    def stream(self, frames: Iterable[np.ndarray], width: int, height: int) -> Iterator[np.ndarray]:
        """Frames one by one in, upscaled frames one by one out; holds one batch (`preset.batch`)."""
        batch: list[np.ndarray] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.preset.batch:
                yield from self._batch(np.stack(batch), width, height)
                batch = []
        if batch:
            yield from self._batch(np.stack(batch), width, height)

    def _batch(self, frames: np.ndarray, width: int, height: int) -> list[np.ndarray]:
        import torch

        how = self.fit(frames.shape[2], frames.shape[1], width, height)
        with torch.inference_mode():
            x = cropped(frames, how.crop, self.device, self.dtype)
            if how.net:
                x = run_tiled(self.model, x, self.scale, self.preset.tile, self.preset.overlap)
            return frames_of(resized(x, width, height, self.preset.resize))


def cropped(frames: np.ndarray, crop: tuple[int, int, int, int], device=None, dtype=None):
    """(F, H, W, 3) uint8 frames' `crop` (left, top, right, bottom) as an (F, 3, h, w) tensor in 0..1."""
    import torch

    left, top, right, bottom = crop
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top:bottom, left:right])).to(device)
    return x.permute(0, 3, 1, 2).to(dtype or torch.float32) / 255.0


def resized(x, width: int, height: int, mode: str = "bicubic"):
    """(F, 3, h, w) to exactly (F, 3, height, width), antialiased (`area` is its own antialiasing)."""
    import torch.nn.functional as F

    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x.float(), size=(height, width), mode=mode,
                         **({} if mode == "area" else {"antialias": True, "align_corners": False}))


def frames_of(x) -> list[np.ndarray]:
    """(F, 3, H, W) in 0..1 back to uint8 frames: in place (the output is the largest tensor here),
    x255, clamp, round half up."""
    import torch

    x = x.float().mul_(255.0).clamp_(0.0, 255.0).add_(0.5).to(torch.uint8)
    return list(x.permute(0, 2, 3, 1).cpu().numpy())
