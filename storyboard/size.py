"""The output size a storyboard renders at, and whether its model takes it.

The size comes from, in order: the command line (`--size WxH`), the storyboard's `output` (when it
sets `width` or `height`), the preset's `native_size` (AniSora: 1280x720, what its scripts render a
prompt file at; turned to 720x1280 when the storyboard's first picture is portrait, as AniSora takes
the orientation from the first picture), else the schema's default 832x480. A preset with `sizes`
takes only those (AniSora V3.2: 1280x720, 720x1280, 832x480, 480x832).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from .model import Output
from .presets import Preset

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x*×]\s*(\d{1,5})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class OutputSize:
    width: int
    height: int
    source: Literal["command line", "output", "native", "default"]

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def parse_size(text: str) -> tuple[int, int]:
    """`1280x720` (or AniSora's `1280*720`) as (width, height); ValueError saying what is expected."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    width, height = int(m.group(1)), int(m.group(2))
    try:   # the limits of a storyboard's `output`
        Output(width=width, height=height)
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"--size {text!r}: {first['loc'][0]} {first['msg'].lower()}") from None
    return width, height


def choose(output: Output | None, preset: Preset, first_picture: tuple[int, int] | None,
           override: tuple[int, int] | None) -> OutputSize:
    """The size a storyboard renders at (see the module's docstring for the order)."""
    if override is not None:
        return OutputSize(*override, "command line")
    if output is not None and output.model_fields_set & {"width", "height"}:
        return OutputSize(output.width, output.height, "output")
    if preset.native_size is not None:
        width, height = preset.native_size
        if first_picture is not None and first_picture[1] > first_picture[0] and width > height:
            width, height = height, width   # a portrait first picture: the portrait size
        return OutputSize(width, height, "native")
    default = output or Output()
    return OutputSize(default.width, default.height, "default")


def size_problems(size: OutputSize, preset: Preset) -> list[tuple[str | None, str]]:
    """What is wrong with rendering `size` on `preset`: (the `output` field it is about, or None for the
    size as a whole; the message), none when nothing is."""
    if preset.sizes is not None and (size.width, size.height) not in {tuple(s) for s in preset.sizes}:
        allowed = ", ".join(f"{w}x{h}" for w, h in preset.sizes)
        return [(None, f"model `{preset.name}` renders only these sizes: {allowed}; not {size}")]
    return [(axis, f"`{axis}` must be a multiple of {preset.resolution_multiple} for `{preset.name}`")
            for axis, value in (("width", size.width), ("height", size.height)) if value % preset.resolution_multiple]
