"""What a stage costs, in seconds, for the scheduler's estimates and timeouts.

Upscaling with a net costs what its preset says (`UpscaleCost`, per input megapixel-frame). The rest
are figures fitted by `bench/stages.py` on the project's 2-core machine (bench/results/stages.json):
per *output* megapixel-frame, because decoding, the resize and the intermediate encode all work at
the output's size. They are pessimistic for bigger machines, which is the safe side for a timeout.
"""
from __future__ import annotations

from engine.upscale.presets import UpscalerPreset

# seconds per output megapixel-frame: decoding the input, encoding the output (x264 veryfast, CRF 12)
CODEC_S = 0.02
# the crop and antialiased resize alone (no net), per output megapixel-frame
RESIZE_S = 0.03
# retime methods, per output megapixel-frame (bench/stages.py: hold copies, blend mixes two frames,
# motion runs FFmpeg's motion-compensated interpolation)
RETIME_S = {"hold": 0.0, "blend": 0.023, "motion": 0.36}
OVERHEAD_S = 0.5      # opening the decoder and encoder of one clip


def upscale_s(preset: UpscalerPreset | None, frames: int, crop: tuple[int, int], size: tuple[int, int]) -> float:
    """Seconds to bring `frames` frames of a `crop` region to `size` (the net when `preset`)."""
    out = frames * size[0] * size[1] / 1e6
    work = preset.cost.runtime(frames, *crop) if preset else RESIZE_S * out
    return OVERHEAD_S + work + CODEC_S * out


def retime_s(method: str, frames_out: int, size: tuple[int, int]) -> float:
    out = frames_out * size[0] * size[1] / 1e6
    return OVERHEAD_S + (RETIME_S[method] + CODEC_S) * out


def timeout_s(estimate: float) -> float:
    """A stage that runs ten times past its estimate (and at least five minutes) is taken as hung."""
    return max(300.0, 10.0 * estimate)
