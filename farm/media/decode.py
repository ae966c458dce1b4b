"""Reading video through PyAV: frames (streamed, one picture at a time), a file's properties, PNG stills."""
from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def open_source(source: Source) -> av.container.InputContainer:
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    return av.open(source, "r")


def read_frames(source: Source, width: int | None = None) -> Iterator[np.ndarray]:
    """Decode the first video stream of a file (path, bytes or binary file) into RGB uint8 frames, one
    by one; with `width`, scaled down to it (the height keeps the aspect, rounded to even)."""
    with open_source(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        reformatter = VideoReformatter()
        size = {}
        if width is not None and width < stream.codec_context.width:
            ctx = stream.codec_context
            size = {"width": width, "height": max(2, round(ctx.height * width / ctx.width / 2) * 2),
                    "interpolation": "AREA"}
        for frame in container.decode(stream):
            # the source's own colour tags pick the matrix and range (ours: BT.709 limited)
            yield reformatter.reformat(frame, format="rgb24", **size).to_ndarray()


def probe(source: Source) -> dict:
    """frames, width, height, fps, pix_fmt, codec and duration_s of the video; `audio` (or None)."""
    with open_source(source) as container:
        if not container.streams.video:
            raise ValueError(f"{source!r} has no video stream")
        video = container.streams.video[0]
        frames = video.frames or sum(1 for p in container.demux(video) if p.size)
        rate = video.average_rate or video.guessed_rate
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            audio = {"codec": a.codec_context.name, "rate": a.codec_context.sample_rate,
                     "channels": a.codec_context.layout.nb_channels,
                     "duration_s": float(a.duration * a.time_base) if a.duration else None}
        return {
            "frames": frames,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": int(rate) if rate.denominator == 1 else float(rate),
            "pix_fmt": video.codec_context.pix_fmt,
            "codec": video.codec_context.name,
            "duration_s": float(video.duration * video.time_base) if video.duration else None,
            "audio": audio,
        }



def read_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))
