"""How a rendered frame becomes a delivery's frame: the centre crop to the delivery's aspect ratio,
and whether a super-resolution net has to run. No torch: delivery profiles check a render against a
profile with it before anything loads.

The crop is the largest centred region of the source with the target's aspect ratio (scale to cover,
as `engine/fit.py` fits pictures), in whole source pixels; the final resize absorbs the sub-pixel
rest (under a pixel of stretch). The net runs when the target is larger than that region on either
axis, and must then reach it: region x scale at least the target on both axes.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fit:
    """How a `src_width` x `src_height` frame becomes a `width` x `height` one: the crop (left, top,
    right, bottom) in source pixels, and whether the net runs on it."""

    src_width: int
    src_height: int
    crop: tuple[int, int, int, int]
    width: int
    height: int
    net: bool

    @property
    def crop_size(self) -> tuple[int, int]:
        left, top, right, bottom = self.crop
        return right - left, bottom - top

    @property
    def cropped_share(self) -> float:
        """How much of the source picture the crop cuts away (0: none)."""
        return 1.0 - self.crop_size[0] * self.crop_size[1] / (self.src_width * self.src_height)


def crop_box(src_width: int, src_height: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the largest centred region of the source with the target's aspect."""
    if min(src_width, src_height, width, height) <= 0:
        raise ValueError(f"cannot fit {src_width}x{src_height} into {width}x{height}")
    ratio = max(width / src_width, height / src_height)     # scale to cover, as engine/fit.py does
    crop_w = min(src_width, round(width / ratio))
    crop_h = min(src_height, round(height / ratio))
    left, top = (src_width - crop_w) // 2, (src_height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def fit(src_width: int, src_height: int, width: int, height: int, scale: int) -> Fit:
    """The crop and whether a x`scale` net is needed; ValueError when the net cannot reach the size."""
    box = crop_box(src_width, src_height, width, height)
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    net = width > crop_w or height > crop_h
    if net and (crop_w * scale < width or crop_h * scale < height):
        raise ValueError(f"a x{scale} net cannot bring {crop_w}x{crop_h} (the {src_width}x{src_height} "
                         f"source cropped to {width}:{height}) to {width}x{height}")
    return Fit(src_width, src_height, box, width, height, net)
