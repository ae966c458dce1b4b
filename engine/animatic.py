"""The animatic engine: the plan a model would render, drawn on the CPU from the boards themselves.

It is the default engine, so an artist can check timing on a laptop before the overnight GPU render.
It renders the same segments as a model (same frame counts, sizes, anchors, camera text) and is
deterministic: the same segment and pictures give byte-identical frames (nothing reads the clock; the
only "random" choice, the title card colour, derives from `segment.seed`).

How a segment becomes frames, top to bottom:

1. **Anchors.** Each `segment.conditions` entry (frame, picture) is fitted to the frame size by the
   segment's `fit` (`engine.fit`: scale to cover and centre-crop, or AniSora's stretch). Without a start picture at
   frame 0 (no conditions at all, or only later keyframes) the anchor at frame 0 is a **title card**:
   a background colour derived from the seed, the wrapped prompt (without the preset's prompt
   suffix), and for each character with a supplied reference picture, its first one as a thumbnail
   with the character's name under it.
2. **Crossfade.** Between two anchors the picture blends linearly from one to the next; the frame at
   an anchor's index shows exactly that anchor. After the last anchor the picture holds.
3. **Camera.** `segment.camera` is free text, read by keywords: "push in" / "zoom in" / "dolly in"
   scale up, "pull out" / "pull back" / "zoom out" / "dolly out" scale down, "pan left|right" and
   "tilt up|down" move the view (pan left: the view moves left, so the picture slides right), "slow"
   halves and "fast" / "quick" doubles the speed; several moves combine; "static", no text or nothing
   recognised means no move. A move is a crop rectangle on the anchor pictures, padded for the move
   (mirrored picture edges; the title card's plain edge colour), resampled to the frame size.
   - The move is the **identity at frame 0** and grows with time, so frame 0 is exactly the fitted
     start picture. A chained segment starts from its parent's last frame, which already shows the
     parent's move, so the move carries on across segments without a jump.
   - Moves run at a **constant rate per second** (options `zoom_per_s`, default 0.05: about 1.0 → 1.16
     over 3 s; `pan_per_s`, default 0.05 of the frame width/height a second), not per segment, so a
     shot moves the same however the planner splits it into segments.
4. **Caption.** With the option `caption` true, `<shot id> f<N>` (N = frame number within the shot)
   is burnt into the top-left corner of each output frame, on an opaque dark box. It is drawn on the
   output only: crossfades and camera moves use the clean pictures, and the frame a chained segment
   continues from (`Rendered.last_frame`) is the clean last frame, so captions never pile up or
   travel with the camera in the next segment. The captioned frames[-1] and the next segment's
   captioned frame 0 are identical, as both carry the same shot frame number.

Metrics: `flicker`, the mean absolute difference of consecutive output frames on a 0..1 scale (as
`engine.qc.flicker`, the figure every engine's segments carry).
"""
from __future__ import annotations

import colorsys
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .base import NoBank, Progress, Rendered
from .fit import fit_cover, fit_picture
from .options import option

ZOOM_PER_S = 0.05      # scale factor growth a second: (1 + 0.05) ** seconds
PAN_PER_S = 0.05       # fraction of the frame width (pan) or height (tilt) a second
RESAMPLE = Image.Resampling.BILINEAR


# ---------------------------------------------------------------- the engine


@dataclass
class AnimaticRendered(Rendered):
    """Frames plus the uncaptioned last frame, which is what a chained segment continues from."""

    clean_last: np.ndarray | None = None

    @property
    def last_frame(self) -> np.ndarray:
        return self.frames[-1] if self.clean_last is None else self.clean_last


class AnimaticEngine(NoBank):
    def __init__(self, preset: Preset):
        self.preset = preset

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None, *, ranks: int = 1,
               control=None) -> AnimaticRendered:
        if ranks != 1:
            raise ValueError("the animatic engine renders a segment on one worker (its preset's degrees: [1])")
        total, width, height = segment.frames, segment.width, segment.height
        card_text = strip_suffix(segment.prompt, self.preset.prompt_suffix)
        anchors = anchor_pictures(segment, images, card_text)
        camera = parse_camera(segment.camera, zoom_per_s=option(segment, "zoom_per_s", ZOOM_PER_S),
                              pan_per_s=option(segment, "pan_per_s", PAN_PER_S))
        stage = Stage(anchors, camera, total, segment.fps, width, height)
        caption = Caption(segment.shot, height) if option(segment, "caption", False) else None

        frames = np.empty((total, height, width, 3), np.uint8)
        clean_last = None
        flicker = 0
        for i in range(total):
            picture = stage.frame(i)
            if caption is not None:
                if i == total - 1:
                    clean_last = np.array(picture)
                caption.draw(picture, segment.first_frame + i)
            frames[i] = np.asarray(picture)
            if i:
                flicker += absolute_difference(frames[i], frames[i - 1])
            if progress is not None:
                progress(i + 1, total)
        mean_flicker = flicker / ((total - 1) * frames[0].size * 255.0) if total > 1 else 0.0
        return AnimaticRendered(frames, {"flicker": float(mean_flicker)}, clean_last=clean_last)


def absolute_difference(a: np.ndarray, b: np.ndarray) -> int:
    """Sum of |a - b| over all uint8 values."""
    return int(np.subtract(np.maximum(a, b), np.minimum(a, b)).sum(dtype=np.uint64))


# ---------------------------------------------------------------- anchors


@dataclass(frozen=True)
class Anchor:
    frame: int
    picture: np.ndarray     # (H, W, 3) uint8, fitted to the frame
    pad: str                # numpy pad mode used to extend it for camera moves


def anchor_pictures(segment: Segment, images: Mapping[ImageRef, np.ndarray],
                    card_text: str | None = None) -> list[Anchor]:
    """The fitted pictures the segment passes through, by frame; a title card (showing `card_text`,
    by default the prompt) stands in at frame 0 when there is no start picture."""
    anchors: list[Anchor] = []
    for condition in sorted(segment.conditions, key=lambda c: c.frame):
        if not 0 <= condition.frame < segment.frames:
            raise ValueError(f"segment {segment.id}: condition at frame {condition.frame} is outside "
                             f"its {segment.frames} frames")
        if condition.image not in images:
            raise KeyError(f"segment {segment.id}: no picture given for {condition.image.kind} "
                           f"{condition.image.ref!r}")
        if anchors and anchors[-1].frame == condition.frame:
            continue   # two pictures for one frame: the first one wins
        picture = fit_picture(images[condition.image], segment.width, segment.height, segment.fit)
        anchors.append(Anchor(condition.frame, picture, "symmetric"))
    if not anchors or anchors[0].frame != 0:
        card = title_card(segment, images, segment.prompt if card_text is None else card_text)
        anchors.insert(0, Anchor(0, card, "edge"))
    return anchors


# ---------------------------------------------------------------- camera


@dataclass(frozen=True)
class CameraMove:
    """A move at constant rates: zoom as log scale a second (positive: push in), pan and tilt as
    fractions of the frame a second (positive: the view moves right / down)."""

    log_zoom_per_s: float = 0.0
    x_per_s: float = 0.0
    y_per_s: float = 0.0

    @property
    def is_static(self) -> bool:
        return self.log_zoom_per_s == 0 and self.x_per_s == 0 and self.y_per_s == 0

    def rect(self, seconds: float, width: int, height: int) -> tuple[float, float, float, float]:
        """The part of the (unpadded) frame seen `seconds` into the segment: left, top, right, bottom."""
        scale = math.exp(self.log_zoom_per_s * seconds)
        cx = width / 2 + self.x_per_s * width * seconds
        cy = height / 2 + self.y_per_s * height * seconds
        half_w, half_h = width / (2 * scale), height / (2 * scale)
        return cx - half_w, cy - half_h, cx + half_w, cy + half_h

    def margins(self, seconds: float, width: int, height: int) -> tuple[int, int]:
        """How far (x, y pixels) the view leaves the frame within `seconds`: the padding it needs.
        Every edge of the rectangle moves monotonically, so its end position is the extreme."""
        if self.is_static:
            return 0, 0
        left, top, right, bottom = self.rect(seconds, width, height)
        mx = max(0.0, -left, right - width)
        my = max(0.0, -top, bottom - height)
        reach = 2   # the resampling filter reads a pixel or two past the rectangle
        return (math.ceil(mx) + reach if mx else 0), (math.ceil(my) + reach if my else 0)


_ZOOM_IN = re.compile(r"\b(?:push|zoom|dolly)(?:es|s|ing)?[\s-]+in\b")
_ZOOM_OUT = re.compile(r"\b(?:pull|zoom|dolly)(?:s|ing)?[\s-]+(?:out|back)\b")
_PAN = re.compile(r"\bpan(?:s|ning)?[\s-]+(left|right)\b")
_TILT = re.compile(r"\btilt(?:s|ing)?[\s-]+(up|down)\b")
_SLOW = re.compile(r"\b(?:slow|slowly|gentle|gently)\b")
_FAST = re.compile(r"\b(?:fast|quick|quickly|rapid|rapidly)\b")


def parse_camera(text: str | None, zoom_per_s: float = ZOOM_PER_S, pan_per_s: float = PAN_PER_S) -> CameraMove:
    """The camera move a free-text camera direction asks for (see the module docstring)."""
    if not text:
        return CameraMove()
    text = text.lower()
    speed = 0.5 if _SLOW.search(text) else 2.0 if _FAST.search(text) else 1.0
    zoom = 0.0
    zoom_in, zoom_out = _ZOOM_IN.search(text), _ZOOM_OUT.search(text)
    if zoom_in or zoom_out:   # both named: the one mentioned first
        pushing = zoom_out is None or (zoom_in is not None and zoom_in.start() < zoom_out.start())
        zoom = (1 if pushing else -1) * speed * math.log1p(zoom_per_s)
    x = y = 0.0
    if pan := _PAN.search(text):
        x = (-1 if pan.group(1) == "left" else 1) * speed * pan_per_s
    if tilt := _TILT.search(text):
        y = (-1 if tilt.group(1) == "up" else 1) * speed * pan_per_s
    return CameraMove(zoom, x, y)


# ---------------------------------------------------------------- composing frames


class Stage:
    """The anchor pictures, padded for the camera move, and how frame i is drawn from them."""

    def __init__(self, anchors: list[Anchor], camera: CameraMove, frames: int, fps: int,
                 width: int, height: int):
        self.camera, self.fps, self.width, self.height = camera, fps, width, height
        self.anchor_frames = [a.frame for a in anchors]
        self.mx, self.my = camera.margins((frames - 1) / fps, width, height)
        pad = ((self.my, self.my), (self.mx, self.mx), (0, 0))
        self.canvases = [Image.fromarray(np.pad(a.picture, pad, mode=a.pad) if self.mx or self.my
                                         else a.picture) for a in anchors]

    def picture(self, i: int) -> Image.Image:
        """The crossfaded canvas at frame i (no camera move)."""
        k = max(j for j, f in enumerate(self.anchor_frames) if f <= i)
        if k == len(self.anchor_frames) - 1 or self.anchor_frames[k] == i:
            return self.canvases[k]
        start, end = self.anchor_frames[k], self.anchor_frames[k + 1]
        return Image.blend(self.canvases[k], self.canvases[k + 1], (i - start) / (end - start))

    def frame(self, i: int) -> Image.Image:
        """Frame i: the crossfaded picture seen through the camera (a new image, free to draw on)."""
        canvas = self.picture(i)
        left, top, right, bottom = self.camera.rect(i / self.fps, self.width, self.height)
        box = (left + self.mx, top + self.my, right + self.mx, bottom + self.my)
        if right - left == self.width and bottom - top == self.height \
                and float(left).is_integer() and float(top).is_integer():
            return canvas.crop(tuple(int(v) for v in box))   # whole-pixel view: no resampling
        box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], canvas.width), min(box[3], canvas.height))
        return canvas.resize((self.width, self.height), RESAMPLE, box=box)


# ---------------------------------------------------------------- text: title card and caption


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def card_colour(seed: int) -> tuple[int, int, int]:
    """A dark, moderately saturated background colour, its hue derived from the seed."""
    hue = int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:2], "big") / 65536
    r, g, b = colorsys.hsv_to_rgb(hue, 0.5, 0.32)
    return round(r * 255), round(g * 255), round(b * 255)


TEXT = (238, 238, 238)


def wrap(text: str, face, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` pixels; words wider than a line are split; overflow ends in '…'."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if face.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while face.getlength(word) > width and len(word) > 1:   # hard-split a very long word
            cut = next((n for n in range(len(word) - 1, 0, -1) if face.getlength(word[:n]) <= width), 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and face.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last.rstrip(" .,;:") + "…"
    return lines


def strip_suffix(prompt: str, template: str) -> str:
    """`prompt` without the preset's prompt suffix (a template with {fields}), which only says
    things like "aesthetic score: 5.5." that do not belong on a title card."""
    template = template.strip().rstrip(".")
    if not template:
        return prompt
    fixed = re.split(r"\{[^{}]*\}", template)
    pattern = r"\s*" + r"[^\s]*?".join(re.escape(part) for part in fixed) + r"\.?\s*$"
    return re.sub(pattern, "", prompt) or prompt


def title_card(segment: Segment, images: Mapping[ImageRef, np.ndarray], text: str) -> np.ndarray:
    """The stand-in for a missing start picture: seed colour, wrapped `text`, character thumbnails.
    The text starts below the caption's corner, so a caption never covers it."""
    width, height = segment.width, segment.height
    card = Image.new("RGB", (width, height), card_colour(segment.seed))
    draw = ImageDraw.Draw(card)
    margin = max(4, round(0.06 * min(width, height)))
    gap = max(2, margin // 2)

    cast = [(ch.name, next(r for r in ch.refs if r in images)) for ch in segment.characters
            if any(r in images for r in ch.refs)]
    strip = 0
    if cast:
        name_face = font(max(9, round(height / 28)))
        name_h = sum(name_face.getmetrics())
        tile = min(round(height * 0.3), (width - 2 * margin - gap * (len(cast) - 1)) // len(cast))
        tile = max(tile, 1)
        strip = tile + gap + name_h
        top = height - margin - strip
        for n, (name, ref) in enumerate(cast):
            x = margin + n * (tile + gap)
            card.paste(Image.fromarray(fit_cover(images[ref], tile, tile)), (x, top))
            label = wrap(name, name_face, tile + gap, 1)[0] if name.strip() else ""
            draw.text((x + tile / 2, top + tile + gap), label, font=name_face, fill=TEXT, anchor="ma")

    face = font(max(10, round(height / 18)))
    line_h = sum(face.getmetrics())
    top = max(margin, Caption.box_height(height) + gap)
    room = height - top - margin - (strip + gap if strip else 0)
    lines = wrap(text, face, width - 2 * margin, max(1, room // line_h))
    for n, line in enumerate(lines):
        draw.text((margin, top + n * line_h), line, font=face, fill=TEXT)
    return np.array(card)


class Caption:
    """`<shot> f<N>` in the top-left corner on an opaque dark box, sized for the frame height."""

    def __init__(self, shot: str, height: int):
        self.shot = shot
        self.face = font(max(10, round(height / 24)))
        self.pad = max(2, round(self.face.size / 4))
        self.box_h = self.box_height(height)

    @staticmethod
    def box_height(height: int) -> int:
        face = font(max(10, round(height / 24)))
        return sum(face.getmetrics()) + 2 * max(2, round(face.size / 4))

    def draw(self, image: Image.Image, frame_number: int) -> None:
        text = f"{self.shot} f{frame_number}"
        box_w = math.ceil(self.face.getlength(text)) + 2 * self.pad
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, box_w - 1, self.box_h - 1), fill=(16, 16, 16))
        draw.text((self.pad, self.pad), text, font=self.face, fill=TEXT)
