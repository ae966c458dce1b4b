"""Draw every picture (and the one soundtrack) the shipped examples use.

    python examples/draw.py

Everything is flat-colour vector drawing with Pillow, so the files stay small, and everything is
deterministic: the only randomness (building heights, lit windows, stars) comes from `random.Random`
with fixed seeds, the only font is Pillow's built-in one, and PNGs carry no timestamps. Running the
script again rewrites byte-identical files (with the same Pillow and zlib).

    examples/pilot/    characters/{hana,ren}.png, boards/*.png         (storyboard.yaml)
    examples/pv/       characters/{mika,sora}.png, boards/*.png,
                       music/theme.wav                                 (starlight.pv)
    examples/anisora/  images/*.png                                    (prompts.txt)
"""
from __future__ import annotations

import math
import random
import struct
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
W, H = 832, 480            # board size: the examples' output size
SHEET = 512                # character reference sheets are square

RGB = tuple[int, int, int]
Point = tuple[float, float]

SKIN, SKIN_SHADE, BLUSH = (252, 226, 206), (238, 200, 180), (246, 180, 176)
INK = (44, 34, 52)         # line and text colour
WHITE = (250, 250, 252)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# ---------------------------------------------------------------- characters


@dataclass(frozen=True)
class Look:
    """A character's design: colours and the shapes that tell them apart."""

    name: str
    hair: RGB
    hair_shade: RGB
    eyes: RGB
    top: RGB               # blazer, jacket or hoodie
    top_shade: RGB
    inner: RGB             # shirt showing at the collar
    bottom: RGB            # skirt or trousers
    socks: RGB
    shoes: RGB
    accent: RGB            # scarf, headphones, hair ties
    hair_style: str        # bob | spiky | twintails | short
    outfit: str            # skirt | trousers
    extra: str             # scarf | open-jacket | idol | headphones
    sheet: RGB             # reference sheet background: each character's dominant colour
    notes: str


HANA = Look("Hana", hair=(214, 218, 230), hair_shade=(170, 176, 198), eyes=(150, 52, 70),
            top=(42, 52, 96), top_shade=(30, 38, 72), inner=WHITE, bottom=(70, 74, 96),
            socks=(34, 34, 44), shoes=(92, 54, 40), accent=(212, 36, 48), hair_style="bob",
            outfit="skirt", extra="scarf", sheet=(236, 186, 186),
            notes="short silver hair / red scarf / navy school uniform")
REN = Look("Ren", hair=(38, 38, 54), hair_shade=(70, 72, 96), eyes=(70, 110, 160),
           top=(36, 98, 196), top_shade=(26, 70, 150), inner=WHITE, bottom=(48, 50, 62),
           socks=(48, 50, 62), shoes=(236, 236, 236), accent=(250, 250, 252), hair_style="spiky",
           outfit="trousers", extra="open-jacket", sheet=(176, 200, 240),
           notes="messy dark hair / blue jacket / white shirt")
MIKA = Look("Mika", hair=(246, 142, 184), hair_shade=(214, 100, 150), eyes=(120, 70, 170),
            top=(250, 204, 60), top_shade=(222, 168, 30), inner=WHITE, bottom=(250, 250, 252),
            socks=(250, 250, 252), shoes=(230, 90, 130), accent=(120, 200, 250), hair_style="twintails",
            outfit="skirt", extra="idol", sheet=(250, 222, 150),
            notes="pink twin tails / yellow idol jacket / star hair clip")
SORA = Look("Sora", hair=(56, 176, 166), hair_shade=(36, 130, 124), eyes=(40, 120, 90),
            top=(238, 240, 244), top_shade=(196, 200, 212), inner=(238, 240, 244), bottom=(52, 56, 72),
            socks=(52, 56, 72), shoes=(250, 120, 60), accent=(36, 36, 44), hair_style="short",
            outfit="trousers", extra="headphones", sheet=(170, 226, 208),
            notes="short teal hair / white hoodie / headphones")


class Figure:
    """One character drawn standing, front view. `r` is the head's half-width in pixels; the figure
    is about 7.3 r tall, its head top at `top`, centred on `cx`. `wind` > 0 blows hair and scarf to
    the right."""

    def __init__(self, draw: ImageDraw.ImageDraw, look: Look, cx: float, top: float, r: float, wind: float = 0.0):
        self.d, self.look, self.cx, self.top, self.r, self.wind = draw, look, cx, top, r, wind

    def p(self, x: float, y: float) -> Point:
        return self.cx + x * self.r, self.top + y * self.r

    def poly(self, points: Sequence[Point], fill: RGB, mirror: bool = False) -> None:
        pts = [(-x, y) for x, y in points] if mirror else points
        self.d.polygon([self.p(x, y) for x, y in pts], fill=fill)

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, fill: RGB) -> None:
        (a, b), (c, e) = self.p(x0, y0), self.p(x1, y1)
        self.d.ellipse((min(a, c), min(b, e), max(a, c), max(b, e)), fill=fill)

    def line(self, points: Sequence[Point], fill: RGB, width: float) -> None:
        self.d.line([self.p(x, y) for x, y in points], fill=fill, width=max(1, round(width * self.r)))

    def draw(self) -> None:
        self.back_hair()
        self.legs()
        self.bottom()
        self.torso()
        self.arms()
        self.ellipse(-0.24, 1.7, 0.24, 2.7, SKIN_SHADE)            # neck
        self.face()
        self.front_hair()
        self.extras()

    # -- parts, back to front

    def back_hair(self) -> None:
        lk, s = self.look, self.wind
        if lk.hair_style in ("bob", "twintails"):
            self.ellipse(-1.28, -0.08, 1.28, 2.4, lk.hair)
            self.poly([(-1.26, 1.1), (1.26, 1.1), (1.22 + 0.3 * s, 2.75), (0.8, 2.5), (0.4, 2.8), (0, 2.55),
                       (-0.4, 2.8), (-0.8, 2.5), (-1.22, 2.75)], lk.hair)
        else:
            self.ellipse(-1.14, -0.12, 1.14, 2.05, lk.hair)
        if lk.hair_style == "twintails":
            for side in (-1, 1):
                sway = 0.5 * s
                tail = [(1.0, 0.5), (1.75, 1.0), (2.05 + sway, 2.6), (1.85 + sway, 4.3), (1.45 + sway, 5.4),
                        (1.5 + sway, 4.2), (1.3, 2.6), (1.0, 1.4)]
                self.poly([(side * x, y) for x, y in tail], lk.hair)
                self.poly([(side * x, y) for x, y in [(1.35, 1.6), (1.6 + sway / 2, 3.0), (1.45 + sway, 4.4),
                                                       (1.5, 3.0)]], lk.hair_shade)
                self.ellipse(side * 0.92, 0.42, side * 1.22, 0.78, lk.accent)       # hair tie

    def legs(self) -> None:
        lk = self.look
        for side in (-1, 1):
            if lk.outfit == "skirt":
                self.poly([(side * 0.14, 5.0), (side * 0.52, 5.0), (side * 0.48, 6.35), (side * 0.18, 6.35)], SKIN)
                self.poly([(side * 0.17, 6.3), (side * 0.49, 6.3), (side * 0.47, 7.0), (side * 0.2, 7.0)], lk.socks)
            else:
                self.poly([(side * 0.06, 4.3), (side * 0.62, 4.3), (side * 0.55, 7.0), (side * 0.14, 7.0)], lk.bottom)
            self.ellipse(side * 0.08, 6.85, side * 0.66, 7.3, lk.shoes)

    def bottom(self) -> None:
        lk = self.look
        if lk.outfit == "skirt":
            self.poly([(-0.9, 4.05), (0.9, 4.05), (1.28, 5.3), (-1.28, 5.3)], lk.bottom)
            for x in (-0.7, -0.25, 0.25, 0.7):                             # pleats
                self.line([(x * 0.85, 4.2), (x * 1.2, 5.25)], mix(lk.bottom, INK, 0.3), 0.05)

    def torso(self) -> None:
        lk = self.look
        self.poly([(-1.02, 2.55), (1.02, 2.55), (0.88, 4.35), (-0.88, 4.35)], lk.top)
        self.poly([(0.55, 2.7), (0.95, 2.7), (0.85, 4.3), (0.6, 4.3)], lk.top_shade)
        if lk.extra == "open-jacket":
            self.poly([(-0.3, 2.55), (0.3, 2.55), (0.26, 4.35), (-0.26, 4.35)], lk.inner)
            self.line([(-0.3, 2.6), (-0.26, 4.3)], lk.top_shade, 0.06)
            self.line([(0.3, 2.6), (0.26, 4.3)], lk.top_shade, 0.06)
        elif lk.extra == "headphones":                                     # hoodie: hood and pocket
            self.poly([(-0.9, 2.5), (0.9, 2.5), (0.5, 2.95), (-0.5, 2.95)], lk.top_shade)
            self.line([(-0.15, 2.9), (-0.18, 3.6)], lk.accent, 0.05)
            self.line([(0.15, 2.9), (0.18, 3.6)], lk.accent, 0.05)
            self.poly([(-0.6, 3.6), (0.6, 3.6), (0.7, 4.2), (-0.7, 4.2)], lk.top_shade)
        else:                                                              # V collar
            self.poly([(-0.38, 2.55), (0.38, 2.55), (0, 3.35)], lk.inner)
        if lk.extra == "idol":
            for y in (3.0, 3.5, 4.0):                                      # buttons
                self.ellipse(-0.1, y - 0.1, 0.1, y + 0.1, lk.accent)

    def arms(self) -> None:
        lk = self.look
        arm = [(1.0, 2.58), (1.38, 2.8), (1.5, 4.4), (1.14, 4.45), (0.98, 3.2)]
        for side in (False, True):
            self.poly(arm, lk.top, mirror=side)
            self.poly([(1.14, 4.3), (1.5, 4.3), (1.5, 4.45), (1.14, 4.45)], lk.top_shade, mirror=side)
            x = -1.32 if side else 1.32
            self.ellipse(x - 0.2, 4.4, x + 0.2, 4.8, SKIN)

    def face(self) -> None:
        lk = self.look
        self.ellipse(-0.96, 0.1, 0.96, 2.05, SKIN)
        self.poly([(-0.86, 1.35), (0.86, 1.35), (0.22, 2.25), (-0.22, 2.25)], SKIN)
        for side in (-1, 1):
            x = side * 0.42
            self.ellipse(x - 0.2, 0.98, x + 0.2, 1.58, lk.eyes)                         # iris
            self.ellipse(x - 0.11, 1.12, x + 0.11, 1.5, mix(lk.eyes, INK, 0.6))           # pupil
            self.ellipse(x - 0.16, 1.04, x - 0.02, 1.2, WHITE)                            # highlight
            self.line([(x - side * 0.25, 0.98), (x + side * 0.27, 0.92)], INK, 0.09)        # lashes
            self.ellipse(x + side * 0.05 - 0.16, 1.66, x + side * 0.05 + 0.16, 1.78, BLUSH)
        self.line([(-0.12, 1.88), (0, 1.93), (0.12, 1.88)], mix(SKIN_SHADE, INK, 0.4), 0.05)

    def front_hair(self) -> None:
        lk, s = self.look, self.wind
        if lk.hair_style in ("bob", "twintails"):
            bangs = [(-1.12, 1.5), (-1.08, 0.45), (-0.62, -0.06), (0, -0.14), (0.62, -0.06), (1.08, 0.45),
                     (1.12 + 0.15 * s, 1.5), (0.92, 0.9), (0.7, 0.98), (0.5, 0.66), (0.24, 0.94), (0, 0.68),
                     (-0.26, 0.94), (-0.5, 0.66), (-0.72, 0.98), (-0.94, 0.9)]
            self.poly(bangs, lk.hair)
            for side in (-1, 1):                                           # side locks
                lock = [(1.0, 0.6), (1.14, 0.7), (1.2 + 0.25 * s, 2.05), (0.98, 1.7)]
                self.poly([(side * x, y) for x, y in lock], lk.hair)
        elif lk.hair_style == "spiky":
            spikes = [(-1.14, 1.3), (-1.35, 0.55), (-1.0, 0.35), (-1.1, -0.2), (-0.55, 0.0), (-0.45, -0.45),
                      (0.0, -0.12), (0.35, -0.5), (0.6, -0.02), (1.15, -0.25), (1.05, 0.35), (1.4, 0.5),
                      (1.14, 1.3), (0.95, 0.85), (0.75, 1.0), (0.55, 0.7), (0.3, 1.02), (0.05, 0.72),
                      (-0.2, 1.0), (-0.45, 0.72), (-0.7, 1.0), (-0.92, 0.82)]
            self.poly(spikes, lk.hair)
        else:
            cap = [(-1.12, 1.2), (-1.1, 0.4), (-0.6, -0.1), (0.0, -0.16), (0.6, -0.1), (1.1, 0.4), (1.12, 1.2),
                   (0.9, 0.8), (0.55, 0.85), (0.3, 0.62), (-0.05, 0.85), (-0.4, 0.6), (-0.7, 0.85), (-0.95, 0.78)]
            self.poly(cap, lk.hair)
        self.line([(-0.55, 0.12), (-0.25, 0.05)], mix(lk.hair, WHITE, 0.5), 0.07)        # shine
        self.line([(0.3, 0.05), (0.6, 0.14)], lk.hair_shade, 0.07)

    def extras(self) -> None:
        lk, s = self.look, self.wind
        if lk.extra == "scarf":
            tail_x = 0.4 + 1.9 * s
            self.poly([(0.25, 2.5), (0.62, 2.55), (tail_x + 0.5, 2.85 + 0.9 * (1 - s)),
                       (tail_x + 0.35, 3.35 + 0.9 * (1 - s)), (tail_x, 3.1 + 0.9 * (1 - s)), (0.3, 2.9)],
                      lk.accent)
            self.ellipse(-0.72, 2.18, 0.72, 2.85, lk.accent)
            self.line([(-0.6, 2.52), (0.6, 2.52)], mix(lk.accent, INK, 0.35), 0.05)
        elif lk.extra == "headphones":
            (x0, y0), (x1, y1) = self.p(-1.22, -0.35), self.p(1.22, 2.2)
            self.d.arc((x0, y0, x1, y1), 180, 360, fill=lk.accent, width=max(2, round(0.16 * self.r)))
            for side in (-1, 1):
                self.ellipse(side * 0.98, 0.85, side * 1.32, 1.55, lk.accent)
                self.ellipse(side * 1.06, 1.0, side * 1.24, 1.4, lk.hair)
        elif lk.extra == "idol":
            x, y, k = 0.72, 0.3, 0.28                                       # star hair clip
            star = [(x + k * (1 if i % 2 == 0 else 0.45) * math.sin(i * math.pi / 5),
                     y - k * (1 if i % 2 == 0 else 0.45) * math.cos(i * math.pi / 5)) for i in range(10)]
            self.poly(star, lk.accent)


def figure(img: Image.Image, look: Look, cx: float, top: float, r: float, wind: float = 0.0) -> None:
    Figure(ImageDraw.Draw(img), look, cx, top, r, wind).draw()


def reference_sheet(look: Look) -> Image.Image:
    """A model sheet: the character full length on their colour, a palette strip, name and notes."""
    img = Image.new("RGB", (SHEET, SHEET), look.sheet)
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((20, 64, 336, 492), 18, fill=mix(look.sheet, WHITE, 0.45))
    d.ellipse((80, 452, 276, 480), fill=mix(look.sheet, INK, 0.18))          # floor shadow
    figure(img, look, 178, 86, 52)
    d.text((24, 18), look.name.upper(), font=font(34), fill=INK)
    d.text((176, 30), "character sheet", font=font(16), fill=mix(INK, look.sheet, 0.35))
    swatches = [("hair", look.hair), ("eyes", look.eyes), ("top", look.top), ("bottom", look.bottom),
                ("accent", look.accent)]
    for i, (label, colour) in enumerate(swatches):
        y = 80 + i * 62
        d.rounded_rectangle((360, y, 410, y + 46), 8, fill=colour, outline=INK, width=2)
        d.text((420, y + 14), label, font=font(16), fill=INK)
    for i, note in enumerate(look.notes.split(" / ")):
        d.text((356, 400 + i * 24), note, font=font(14), fill=INK)
    return img


# ---------------------------------------------------------------- scenery


def sky(img: Image.Image, colours: Sequence[RGB], bottom: int, bands: int = 12) -> None:
    """A banded gradient (flat steps compress far better than a smooth ramp) from the top to `bottom`."""
    d = ImageDraw.Draw(img)
    for i in range(bands):
        t = i / (bands - 1)
        seg = min(int(t * (len(colours) - 1)), len(colours) - 2)
        local = t * (len(colours) - 1) - seg
        y0, y1 = round(i * bottom / bands), round((i + 1) * bottom / bands)
        d.rectangle((0, y0, img.width, y1), fill=mix(colours[seg], colours[seg + 1], local))


def stars(img: Image.Image, rng: random.Random, count: int, bottom: int) -> None:
    d = ImageDraw.Draw(img)
    for _ in range(count):
        x, y = rng.randrange(img.width), rng.randrange(bottom)
        k = rng.choice((1, 1, 1, 2))
        d.rectangle((x, y, x + k - 1, y + k - 1), fill=rng.choice(((250, 250, 230), (200, 210, 250))))


def skyline(img: Image.Image, rng: random.Random, base: int, lo: int, hi: int, colour: RGB,
            window: RGB | None = None, lit: float = 0.0, x_range: tuple[int, int] | None = None) -> None:
    """A row of buildings standing on `base`, heights in [lo, hi]; with `window`, some windows lit."""
    d = ImageDraw.Draw(img)
    x, end = x_range or (-20, img.width)
    while x < end:
        w, h = rng.randint(36, 96), rng.randint(lo, hi)
        d.rectangle((x, base - h, x + w, base), fill=colour)
        if rng.random() < 0.25:                                             # antenna
            d.rectangle((x + w // 2, base - h - 18, x + w // 2 + 1, base - h), fill=colour)
        if window is not None:
            for wy in range(base - h + 10, base - 10, 14):
                for wx in range(x + 6, x + w - 8, 12):
                    if rng.random() < lit:
                        d.rectangle((wx, wy, wx + 5, wy + 6), fill=window)
        x += w + rng.randint(0, 8)


def rooftop(img: Image.Image, floor: RGB, fence: RGB, rail: int = 250, floor_top: int = 340) -> None:
    """A school rooftop: floor, a water tank on the left, a fence with posts and chain-link mesh."""
    d = ImageDraw.Draw(img)
    d.rectangle((0, floor_top, W, H), fill=floor)
    for y in range(floor_top + 24, H, 34):                                 # floor joints
        d.line((0, y, W, y), fill=mix(floor, INK, 0.15), width=2)
    mesh = mix(fence, floor, 0.35)
    for x in range(-200, W + 200, 22):
        d.line((x, rail, x + (floor_top - rail), floor_top), fill=mesh, width=1)
        d.line((x, floor_top, x + (floor_top - rail), rail), fill=mesh, width=1)
    d.rectangle((0, rail - 6, W, rail), fill=fence)
    d.rectangle((0, floor_top - 8, W, floor_top), fill=fence)
    for x in range(30, W, 110):
        d.rectangle((x, rail - 10, x + 7, floor_top), fill=fence)
    tank = mix(floor, WHITE, 0.35)
    d.rectangle((36, 180, 176, 300), fill=tank)
    d.ellipse((36, 160, 176, 200), fill=mix(tank, WHITE, 0.3))
    d.rectangle((50, 300, 60, floor_top), fill=fence)
    d.rectangle((152, 300, 162, floor_top), fill=fence)


def dusk_rooftop() -> Image.Image:
    img = Image.new("RGB", (W, H))
    sky(img, [(70, 52, 124), (184, 96, 130), (250, 156, 86), (252, 204, 120)], 340)
    ImageDraw.Draw(img).ellipse((540, 232, 660, 352), fill=(255, 226, 150))   # sun
    skyline(img, random.Random(11), 330, 24, 120, (112, 70, 110))
    rooftop(img, floor=(134, 118, 128), fence=(70, 54, 78))
    return img


def night_rooftop() -> Image.Image:
    img = Image.new("RGB", (W, H))
    sky(img, [(10, 12, 38), (26, 30, 78), (60, 46, 110)], 340)
    stars(img, random.Random(21), 90, 230)
    ImageDraw.Draw(img).ellipse((640, 40, 700, 100), fill=(250, 244, 210))      # moon
    skyline(img, random.Random(22), 330, 30, 140, (30, 30, 62), window=(250, 214, 120), lit=0.35)
    rooftop(img, floor=(60, 60, 84), fence=(24, 24, 40))
    return img


def street(people: Sequence[tuple[Look, float, float, float]] = ()) -> Image.Image:
    """A shopping street at night, looking down its length; `people` as (look, cx, top, r)."""
    img = Image.new("RGB", (W, H))
    d = ImageDraw.Draw(img)
    sky(img, [(14, 14, 40), (40, 30, 84)], 220, bands=6)
    stars(img, random.Random(31), 30, 120)
    skyline(img, random.Random(32), 330, 120, 260, (34, 32, 58), window=(255, 220, 130), lit=0.3)
    for x, y, h, colour in ((120, 120, 150, (255, 84, 170)), (300, 160, 110, (70, 230, 240)),
                            (560, 110, 170, (255, 150, 60)), (720, 150, 120, (150, 255, 120))):
        d.rectangle((x - 6, y - 6, x + 42, y + h + 6), fill=mix(colour, (34, 32, 58), 0.65))  # glow
        d.rectangle((x, y, x + 36, y + h), fill=colour)                                       # neon sign
        d.rectangle((x + 6, y + 8, x + 30, y + h - 8), fill=mix(colour, WHITE, 0.55))
    d.rectangle((0, 330, W, 380), fill=(62, 60, 82))                                           # pavement
    d.rectangle((0, 380, W, H), fill=(30, 30, 46))                                             # road
    for x in range(-40, W, 120):
        d.rectangle((x, 426, x + 60, 432), fill=(200, 200, 180))                               # lane marks
    for x, colour in ((138, (255, 84, 170)), (318, (70, 230, 240)), (578, (255, 150, 60)), (738, (150, 255, 120))):
        d.rectangle((x, 384, x + 10, H), fill=mix(colour, (30, 30, 46), 0.7))                  # reflections
    for x in (60, 400, 760):                                                                   # street lamps
        d.ellipse((x - 40, 190, x + 40, 250), fill=(112, 96, 88))   # glow
        d.rectangle((x - 3, 214, x + 3, 372), fill=(20, 20, 30))
        d.rectangle((x - 14, 206, x + 14, 218), fill=(255, 236, 170))
    for look, cx, top, r in people:
        figure(img, look, cx, top, r)
    return img


def platform(train_x: float | None = None, people: Sequence[tuple[Look, float, float, float]] = ()) -> Image.Image:
    """A station platform at night; with `train_x`, a train whose cab is at that x, running off to the
    right (it arrives from the right)."""
    img = Image.new("RGB", (W, H))
    d = ImageDraw.Draw(img)
    sky(img, [(16, 20, 52), (44, 48, 100)], 300, bands=6)
    skyline(img, random.Random(41), 250, 20, 110, (30, 34, 66), window=(240, 220, 150), lit=0.3)
    d.rectangle((0, 250, W, 330), fill=(70, 64, 62))                                           # track bed
    for y in (282, 310):
        d.rectangle((0, y, W, y + 4), fill=(150, 150, 160))                                    # rails
    if train_x is not None:
        x0 = round(train_x)
        body, stripe = (206, 210, 218), (36, 150, 96)
        d.rounded_rectangle((x0, 150, x0 + 1400, 318), 26, fill=body)
        d.rectangle((x0, 258, x0 + 1400, 272), fill=stripe)
        d.polygon([(x0, 180), (x0 + 60, 164), (x0 + 60, 230), (x0, 236)], fill=(40, 52, 80))  # cab window
        d.ellipse((x0 + 10, 284, x0 + 30, 300), fill=(255, 240, 170))                          # headlight
        for wx in range(x0 + 110, x0 + 1400, 150):
            d.rectangle((wx, 176, wx + 86, 232), fill=(52, 70, 110))                           # windows
            d.line((wx + 10, 226, wx + 40, 182), fill=(110, 130, 170), width=3)
            d.rectangle((wx + 96, 170, wx + 136, 300), fill=(176, 180, 190))                   # doors
    d.rectangle((0, 0, W, 54), fill=(58, 58, 70))                                              # roof
    for x in range(40, W, 160):
        d.rectangle((x, 54, x + 90, 62), fill=(250, 250, 236))                                 # lights
    for x in (110, 420, 730):
        d.rectangle((x, 54, x + 22, 340), fill=(150, 150, 164))                                # pillars
    d.rectangle((0, 330, W, H), fill=(176, 170, 164))                                          # platform
    d.rectangle((0, 330, W, 338), fill=(120, 116, 112))
    d.rectangle((0, 350, W, 358), fill=(244, 204, 40))                                         # safety line
    for x in range(0, W, 16):
        d.rectangle((x + 2, 362, x + 10, 370), fill=(230, 190, 36))                            # tactile strip
    for look, cx, top, r in people:
        figure(img, look, cx, top, r)
    return img


def stage(people: Sequence[tuple[Look, float, float, float]] = ()) -> Image.Image:
    """A concert stage: spotlight cones, a light truss, the crowd's heads and light sticks in front."""
    img = Image.new("RGB", (W, H))
    d = ImageDraw.Draw(img)
    sky(img, [(16, 8, 40), (50, 20, 84)], 340, bands=6)
    cones = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    c = ImageDraw.Draw(cones)
    for x, colour in ((160, (120, 180, 255)), (416, (255, 240, 200)), (672, (255, 120, 200))):
        c.polygon([(x - 10, 40), (x + 10, 40), (x + 150, 360), (x - 150, 360)], fill=colour + (70,))
    img.paste(Image.alpha_composite(img.convert("RGBA"), cones).convert("RGB"))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 30, W, 44), fill=(90, 90, 110))                                            # truss
    for x in range(0, W, 24):
        d.line((x, 30, x + 12, 44), fill=(60, 60, 76), width=2)
    d.polygon([(40, 330), (792, 330), (832, 372), (0, 372)], fill=(40, 30, 56))                # stage
    d.rectangle((0, 372, W, 384), fill=(250, 200, 80))
    for look, cx, top, r in people:
        figure(img, look, cx, top, r)
    d.rectangle((0, 384, W, H), fill=(12, 8, 24))
    rng = random.Random(51)
    for x in range(-10, W + 20, 34):                                                           # crowd
        y = 420 + rng.randint(-8, 8)
        d.ellipse((x, y, x + 30, y + 34), fill=(26, 20, 44))
        d.rectangle((x - 2, y + 26, x + 32, H), fill=(26, 20, 44))
        if rng.random() < 0.5:
            colour = rng.choice(((120, 200, 250), (250, 120, 200), (250, 230, 120)))
            d.line((x + 24, y + 20, x + 34, y - 26), fill=colour, width=4)                     # light stick
    return img


def fireworks(bursts: Sequence[tuple[int, int, int, RGB]]) -> Image.Image:
    """The night sky over the city with fireworks: (x, y, radius, colour) each."""
    img = Image.new("RGB", (W, H))
    sky(img, [(8, 8, 30), (30, 24, 70)], 330, bands=6)
    stars(img, random.Random(61), 60, 300)
    d = ImageDraw.Draw(img)
    for x, y, r, colour in bursts:
        d.ellipse((x - r * 0.7, y - r * 0.7, x + r * 0.7, y + r * 0.7), fill=mix(colour, (8, 8, 30), 0.85))
        for i in range(24):
            a = 2 * math.pi * i / 24
            inner, outer = (x + 0.25 * r * math.cos(a), y + 0.25 * r * math.sin(a)), \
                           (x + r * math.cos(a), y + r * math.sin(a))
            d.line((inner, outer), fill=colour, width=3)
            d.ellipse((outer[0] - 4, outer[1] - 4, outer[0] + 4, outer[1] + 4), fill=mix(colour, WHITE, 0.5))
    skyline(img, random.Random(62), 430, 60, 200, (20, 18, 40), window=(250, 210, 120), lit=0.3)
    ImageDraw.Draw(img).rectangle((0, 430, W, H), fill=(14, 12, 28))
    return img


# ---------------------------------------------------------------- the three examples


def close_up(background: Image.Image, look: Look, wind: float = 0.0) -> Image.Image:
    """`look` from the chest up, over a background."""
    img = background.copy()
    figure(img, look, W * 0.56, 70, 118, wind)
    return img


def pilot() -> dict[str, Callable[[], Image.Image]]:
    return {
        "characters/hana.png": lambda: reference_sheet(HANA),
        "characters/ren.png": lambda: reference_sheet(REN),
        "boards/rooftop-dusk.png": dusk_rooftop,
        "boards/rooftop-hana.png": lambda: _with(dusk_rooftop(), (HANA, 560, 110, 40, 0.6)),
        "boards/rooftop-hana-close.png": lambda: close_up(dusk_rooftop(), HANA, wind=0.6),
        "boards/street-night.png": lambda: street(),
        "boards/street-ren.png": lambda: street([(REN, 430, 240, 18)]),
        "boards/street-ren-close.png": lambda: street([(REN, 400, 150, 42)]),
        "boards/platform.png": lambda: platform(),
        "boards/platform-pair.png": lambda: platform(people=[(HANA, 330, 200, 34), (REN, 470, 190, 36)]),
        "boards/platform-train.png": lambda: platform(-60, people=[(HANA, 330, 200, 34), (REN, 470, 190, 36)]),
    }


def pv() -> dict[str, Callable[[], Image.Image]]:
    return {
        "characters/mika.png": lambda: reference_sheet(MIKA),
        "characters/sora.png": lambda: reference_sheet(SORA),
        "boards/rooftop-night.png": lambda: _with(night_rooftop(), (MIKA, 420, 120, 38, 0.3)),
        "boards/skyline-end.png": lambda: fireworks([]),
        "boards/stage.png": lambda: stage([(MIKA, 330, 80, 38), (SORA, 520, 84, 37)]),
        "boards/fireworks.png": lambda: fireworks([(260, 140, 80, (255, 120, 170))]),
        "boards/fireworks-end.png": lambda: fireworks([(260, 140, 100, (255, 120, 170)), (560, 110, 90, (120, 200, 255)),
                                                       (700, 220, 60, (255, 220, 110))]),
    }


def anisora() -> dict[str, Callable[[], Image.Image]]:
    return {
        "images/rooftop.png": lambda: _with(dusk_rooftop(), (HANA, 560, 110, 40, 0.6)),
        "images/street-start.png": lambda: street([(REN, 150, 230, 22)]),
        "images/street-end.png": lambda: street([(REN, 660, 230, 22)]),
        "images/platform-empty.png": lambda: platform(),
        "images/platform-arriving.png": lambda: platform(470),
        "images/platform-stopped.png": lambda: platform(-60),
        "images/fireworks.png": lambda: fireworks([(300, 150, 90, (255, 190, 80)), (580, 120, 70, (150, 255, 170))]),
    }


def _with(img: Image.Image, *people: tuple[Look, float, float, float, float]) -> Image.Image:
    for look, cx, top, r, wind in people:
        figure(img, look, cx, top, r, wind)
    return img


def theme(path: Path, seconds: float = 16.0, rate: int = 8000) -> None:
    """A 16-second loop at 120 bpm: a pentatonic melody over a bass line, 8-bit mono WAV (~128 KB)."""
    melody = [0, 2, 4, 7, 9, 7, 4, 2, 4, 7, 9, 12, 9, 7, 4, 7]      # semitones above A4, one per eighth note
    bass = [-24, -24, -19, -19, -20, -20, -17, -17]                  # one per half bar
    eighth = 0.25
    frames = bytearray()
    for n in range(round(seconds * rate)):
        t = n / rate
        step = int(t / eighth)
        local = t - step * eighth
        note = melody[step % len(melody)]
        lead = math.sin(2 * math.pi * 440 * 2 ** (note / 12) * t) * math.exp(-6 * local)
        low = bass[int(t / 1.0) % len(bass)]
        bass_v = math.sin(2 * math.pi * 440 * 2 ** (low / 12) * t)
        fade = min(1.0, t / 0.5, (seconds - t) / 1.0)
        value = 0.7 * fade * (0.6 * lead + 0.35 * bass_v)
        frames += struct.pack("B", max(0, min(255, round(128 + 127 * value))))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def save(folder: Path, pictures: dict[str, Callable[[], Image.Image]]) -> None:
    for name, make in pictures.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        make().save(path, optimize=True)


def main() -> None:
    save(HERE / "pilot", pilot())
    save(HERE / "pv", pv())
    theme(HERE / "pv" / "music" / "theme.wav")
    save(HERE / "anisora", anisora())
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.suffix in (".png", ".wav"))
    print(f"wrote the example pictures under {HERE} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
