"""Fitting input pictures to a segment's frame size: `cover` (scale to cover, centre-crop) or `stretch`.

Every engine puts a storyboard picture (a board, keyframe or an earlier segment's last frame) into a
`width` x `height` frame by the segment's `fit` policy, the same way, so an animatic and a model
render frame a board identically. `cover`, the default:

- **scale to cover**: the picture is scaled by `max(width / w, height / h)`, so it fills the frame with
  no letterbox bars and keeps its aspect ratio;
- **centre-crop**: what overhangs is cut equally from both sides of the longer axis. The crop is taken
  at sub-pixel precision in the source and resampled once (Lanczos), so the centre stays exactly in the
  centre and no pixel is resampled twice;
- a picture already at the frame size is returned unchanged (byte for byte), which keeps a chained
  segment's start frame identical to its parent's last frame;
- greyscale and palette pictures become RGB; an alpha channel is dropped (not composited).

`stretch` is AniSora's own resize (`anisoraV3/wan/image2video_any.py`): the whole picture resampled to
exactly `width` x `height` with torch's bicubic interpolation (`align_corners=False`, no antialiasing),
no crop, so a picture of another aspect ratio is distorted, not cut. AniSora resizes float pixels
and feeds them to the VAE unrounded; here they are rounded to uint8 (at most half a level, 1/255 on
AniSora's [-1, 1] scale) and bicubic overshoot past 0 or 255 is clipped. A picture already at the frame
size is returned unchanged, as with `cover`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]   # left, top, right, bottom in source pixels


def cover_box(src_width: int, src_height: int, width: int, height: int) -> Box:
    """The region of a `src_width` x `src_height` picture that fills a `width` x `height` frame:
    the largest centred region with the frame's aspect ratio."""
    if min(src_width, src_height, width, height) <= 0:
        raise ValueError(f"cannot fit a {src_width}x{src_height} picture into {width}x{height}")
    scale = max(width / src_width, height / src_height)
    crop_w, crop_h = width / scale, height / scale
    # clamped: the float division can land a hair outside the picture (832x480 into 480x272 gave
    # left = -5.7e-14), which PIL refuses as a negative box offset
    left, top = max(0.0, (src_width - crop_w) / 2), max(0.0, (src_height - crop_h) / 2)
    return left, top, min(float(src_width), left + crop_w), min(float(src_height), top + crop_h)


def as_rgb_image(img: np.ndarray | Image.Image) -> Image.Image:
    """A PIL RGB image from an RGB(A)/greyscale uint8 array or any PIL image."""
    if isinstance(img, Image.Image):
        return img if img.mode == "RGB" else img.convert("RGB")
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        raise ValueError(f"expected an H x W (x 1|3|4) uint8 picture, got {arr.dtype} of shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")


def fit_cover(img: np.ndarray | Image.Image, width: int, height: int,
              resample: Image.Resampling = Image.Resampling.LANCZOS) -> np.ndarray:
    """`img` scaled to cover `width` x `height` and centre-cropped: an (height, width, 3) uint8 array."""
    if isinstance(img, np.ndarray) and img.shape[:2] == (height, width) and img.ndim == 3 \
            and img.shape[2] == 3 and img.dtype == np.uint8:
        return np.ascontiguousarray(img).copy()
    picture = as_rgb_image(img)
    if picture.size == (width, height):
        return np.array(picture)
    box = cover_box(picture.width, picture.height, width, height)
    return np.array(picture.resize((width, height), resample, box=box))


def fit_stretch(img: np.ndarray | Image.Image, width: int, height: int) -> np.ndarray:
    """`img` resized to exactly `width` x `height` as AniSora does it (torch bicubic, no crop): an
    (height, width, 3) uint8 array."""
    picture = np.array(as_rgb_image(img))
    if picture.shape[:2] == (height, width):
        return picture
    import torch  # only here: the option modules around this one load without torch

    pixels = torch.from_numpy(picture).permute(2, 0, 1)[None].to(torch.float32)
    resized = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bicubic", align_corners=False)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


POLICIES = {"cover": fit_cover, "stretch": fit_stretch}


def fit_picture(img: np.ndarray | Image.Image, width: int, height: int, policy: str = "cover") -> np.ndarray:
    """`img` fitted to `width` x `height` by `policy` ("cover" or "stretch", a segment's `fit`)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown picture fit {policy!r} (known: {', '.join(POLICIES)})")
    return POLICIES[policy](img, width, height)
