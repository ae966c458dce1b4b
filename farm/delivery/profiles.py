"""Delivery profiles (`configs/delivery/<name>.yaml`, or a folder in `$SAKUGA_DELIVERY`): what a
deliverable is (size, rate, picture and sound treatment, files), and whether a render can become one.

`load_profile(name)` reads and checks a profile on its own (schema, even sizes, a rate as a fraction,
an EDL only at a SMPTE rate, a known upscaler); `plan_delivery(profile, ...)` checks it against a
render (its size and rate) and an upscaler, and says what the stages do: the crop, whether the net
runs, the retime. Every problem is an `InputError` at the profile's line (exit 2 at the CLI).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from pydantic import Field, field_validator

from engine.upscale.framing import Fit, crop_box, fit
from engine.upscale.presets import UPSCALERS, UpscalerPreset, load_upscaler
from farm.delivery.timeline import EDL_RATES
from farm.media.retime import METHODS, Method, retimed_frames
from storyboard.configs import ConfigFolder, option_problem
from storyboard.errors import InputError, Problem
from storyboard.model import PresetName, Strict

Master = Literal["mp4", "prores", "png"]
_RATE = re.compile(r"^\s*([0-9]+)\s*(?:/\s*([0-9]+)\s*)?$")


def parse_rate(value: int | str | float) -> Fraction:
    """`24`, `"24000/1001"` → a Fraction; a decimal like 23.976 is refused (it is not the NTSC rate)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"write the rate as a whole number or a fraction, e.g. 24000/1001 for 23.976 (got {value})")
    m = _RATE.match(str(value))
    if not m or int(m.group(2) or 1) == 0:
        raise ValueError(f"a rate is a whole number or N/D, e.g. 24 or 24000/1001 (got {value!r})")
    rate = Fraction(int(m.group(1)), int(m.group(2) or 1))
    if not 1 <= rate <= 120:
        raise ValueError(f"a rate must be between 1 and 120 fps (got {value})")
    return rate


class Size(Strict):
    width: int = Field(ge=16, le=7680)
    height: int = Field(ge=16, le=7680)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even: H.264 4:2:0 halves the colour resolution (got {v})")
        return v


class Loudness(Strict):
    integrated: float = Field(ge=-70, le=-5, description="target LUFS (EBU R128 broadcast: -23)")
    true_peak: float = Field(-1.0, ge=-20, le=0, description="ceiling, dBTP")
    tolerance: float = Field(0.5, gt=0, le=3, description="LU either side of `integrated` that is on target")


class Video(Strict):
    codec: Literal["h264"] = "h264"
    profile: Literal["high", "main", "baseline"] = "high"
    pix_fmt: Literal["yuv420p"] = "yuv420p"
    crf: int = Field(18, ge=0, le=51)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                    "veryslow"] = "medium"


class Timeline(Strict):
    otio: bool = True
    edl: bool = Field(False, description="a CMX3600 EDL too (SMPTE rates only)")


class DeliveryProfile(Strict):
    name: PresetName
    description: str = ""
    size: Size
    rate: int | str | float = Field(description="frames per second, a whole number or N/D (24000/1001)")
    upscaler: PresetName | None = Field(None, description="upscaler preset when the render is smaller (--upscaler overrides)")
    retime: Method = Field("hold", description="how the render's rate becomes `rate`: " + ", ".join(METHODS))
    max_crop: float = Field(0.05, ge=0, le=0.9, description="share of the picture the centre crop may cut")
    loudness: Loudness | None = Field(None, description="normalise the sound to this (none: as it came)")
    video: Video = Field(default_factory=Video)
    masters: list[Master] = Field(default_factory=lambda: ["mp4"], min_length=1)
    timeline: Timeline = Field(default_factory=Timeline)

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: int | str | float) -> int | str | float:
        parse_rate(v)
        return v

    @field_validator("masters")
    @classmethod
    def _masters(cls, v: list[str]) -> list[str]:
        if "mp4" not in v:
            raise ValueError("must include mp4: every delivery has its episode.mp4")
        if len(set(v)) != len(v):
            raise ValueError("lists a master twice")
        return v

    @property
    def fps(self) -> Fraction:
        return parse_rate(self.rate)


PROFILES = ConfigFolder("delivery profile", "delivery", "SAKUGA_DELIVERY", DeliveryProfile)


def load_profile(name: str, named_at: Problem | None = None) -> DeliveryProfile:
    """The profile called `name`, checked on its own; unknown names are blamed on `named_at`
    (default: the `--deliver` option) with the known ones listed."""
    profile = PROFILES.load(name, named_at or option_problem("--deliver", ""))
    problems = []
    if profile.timeline.edl and not any(abs(float(profile.fps) - r) < 1e-3 for r in EDL_RATES):
        problems.append(PROFILES.problem(name, ("timeline", "edl"),
                                         f"a CMX3600 EDL needs a SMPTE timecode rate ({', '.join(f'{r:g}' for r in EDL_RATES)}"
                                         f" fps), not {profile.rate}: set `edl: false` or change `rate`"))
    if profile.upscaler is not None and profile.upscaler not in UPSCALERS.available():
        problems.append(PROFILES.problem(name, ("upscaler",), f"unknown upscaler preset {profile.upscaler!r} "
                                                              f"(known: {', '.join(UPSCALERS.available())})"))
    if problems:
        raise InputError(problems)
    return profile


@dataclass(frozen=True)
class DeliveryPlan:
    """What the stages do for one profile and one render."""

    profile: DeliveryProfile
    fit: Fit                           # the crop, and whether the net runs
    upscaler: UpscalerPreset | None    # None: no net (the render is large enough)
    src_fps: Fraction
    retime: Method | None              # None: the render is already at the profile's rate

    def frames(self, n: int) -> int:
        """Frames a clip (a shot, a dissolve) of `n` render frames has in this delivery."""
        return retimed_frames(n, self.src_fps, self.profile.fps)


def plan_delivery(profile: DeliveryProfile, width: int, height: int, fps: int | Fraction,
                  upscaler: str | None = None) -> DeliveryPlan:
    """Check that a `width` x `height` render at `fps` can become `profile` (with `upscaler`, from
    --upscaler, overriding the profile's); InputError at the profile's line otherwise."""
    size = profile.size
    name = upscaler or profile.upscaler
    chosen = load_upscaler(name, option_problem("--upscaler", "") if upscaler else
                           PROFILES.problem(profile.name, ("upscaler",), "")) if name else None
    scale = chosen.scale if chosen else 1
    try:
        how = fit(width, height, size.width, size.height, scale)
    except ValueError:
        how = None
    if how is None or (how.net and chosen is None):
        left, top, right, bottom = crop_box(width, height, size.width, size.height)
        cw, ch = right - left, bottom - top
        why = (f"upscaler {chosen.name!r} is x{scale}: at most {cw * scale}x{ch * scale}" if chosen
               else "the profile names no `upscaler` (add one, or pass --upscaler)")
        raise InputError([PROFILES.problem(profile.name, ("size",), (
            f"a {width}x{height} render cannot become {size.width}x{size.height}: its {cw}x{ch} centre "
            f"needs x{max(size.width / cw, size.height / ch):.2f}, and {why}"))])
    if how.cropped_share > profile.max_crop + 1e-9:
        raise InputError([PROFILES.problem(profile.name, ("max_crop",), (
            f"a {width}x{height} render cropped to {size.width}:{size.height} loses {how.cropped_share:.1%} "
            f"of the picture; this profile allows {profile.max_crop:.0%} (`max_crop`): render at that "
            f"aspect ratio, or raise `max_crop`"))])
    src = Fraction(fps)
    return DeliveryPlan(profile, how, chosen if how.net else None, src,
                        None if src == profile.fps else profile.retime)
