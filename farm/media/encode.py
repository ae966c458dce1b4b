"""Writing video through PyAV: H.264 yuv420p MP4 (or ProRes 422 HQ MOV for editors), lossless PNG
stills and PNG sequences.

Pictures are RGB uint8 arrays of shape (height, width, 3). Files are written BT.709 limited range and
tagged so; frame i has pts i in a 1/fps time base, so every decoder counts exactly the frames written
at exactly `fps`. The `moov` atom goes first (faststart). `Encoder` streams: it holds one picture.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import (
    ColorPrimaries,
    ColorRange,
    Colorspace,
    ColorTrc,
    VideoReformatter,
)
from PIL import Image

from .sound import AUDIO_BIT_RATE, AUDIO_LAYOUT

Target = str | os.PathLike | BinaryIO

@dataclass(frozen=True)
class Codec:
    container: str
    video: str
    pix_fmt: str
    audio: str
    options: dict


CODECS = {
    "h264": Codec("mp4", "libx264", "yuv420p", "aac", {"crf": "{crf}", "preset": "{preset}"}),
    # ProRes 422 HQ with PCM sound: what editing suites take without transcoding
    "prores": Codec("mov", "prores_ks", "yuv422p10le", "pcm_s16le", {"profile": "3"}),
}
# AVColorSpace's AVCOL_SPC_BT709; PyAV only names the swscale matrices, whose ITU709 has the same value
_AVCOL_SPC_BT709 = 1


class Encoder:
    """Streaming video writer: `with Encoder(path, fps, w, h) as enc: enc.write(frame)`.

    `codec` is a key of CODECS (H.264 in MP4 by default). `target` is a path (written directly) or a
    binary file object (filled on close: faststart has to rewrite the file, which FFmpeg does by
    reopening it by name, so the file is built in a temporary one first). With `audio_rate`, a sound
    track is added (AAC, or PCM with ProRes): feed it with `write_audio`. `fps` may be a fraction
    (24000/1001): the stream's time base is its inverse, so every frame lasts exactly 1/fps.
    """

    def __init__(self, target: Target, fps: int | Fraction, width: int, height: int, *, crf: int = 16,
                 preset: str = "medium", audio_rate: int | None = None, audio_layout: str = AUDIO_LAYOUT,
                 codec: str = "h264", profile: str | None = None):
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"yuv420p needs a positive even width and height, got {width}x{height}")
        spec = CODECS[codec]
        self.fps, self.width, self.height, self.pix_fmt = fps, width, height, spec.pix_fmt
        self.frames = 0             # pictures written so far
        self.audio_samples = 0      # audio samples handed to `write_audio` so far
        self._audio_pts = 0         # audio samples encoded so far
        self._sink: BinaryIO | None = None
        self._tmpdir: str | None = None
        self.container = None
        if isinstance(target, str | os.PathLike):
            path = Path(target)
        else:
            self._sink = target
            self._tmpdir = tempfile.mkdtemp(prefix="sakuga-encode-")
            path = Path(self._tmpdir) / "out.mp4"
        try:
            self.container = av.open(str(path), "w", format=spec.container,
                                     container_options={"movflags": "+faststart"})
            options = {k: v.format(crf=crf, preset=preset) for k, v in spec.options.items()}
            if profile is not None and codec == "h264":   # x264's profile (High is its default for 4:2:0)
                options["profile"] = profile
            self.video = self.container.add_stream(spec.video, rate=fps, options=options)
            ctx = self.video.codec_context
            ctx.width, ctx.height, ctx.pix_fmt = width, height, spec.pix_fmt
            ctx.time_base = Fraction(1, fps)
            ctx.color_range = ColorRange.MPEG
            ctx.colorspace = _AVCOL_SPC_BT709
            ctx.color_primaries = ColorPrimaries.BT709
            ctx.color_trc = ColorTrc.BT709
            self.audio = None
            if audio_rate is not None:
                self.audio = self.container.add_stream(spec.audio, rate=audio_rate, layout=audio_layout)
                if spec.audio == "aac":
                    self.audio.codec_context.bit_rate = AUDIO_BIT_RATE
                self.audio.codec_context.open()   # to learn its frame size before the first packet
                self._audio_frame = self.audio.codec_context.frame_size or 1024   # PCM takes any size
                self._audio_format = self.audio.codec_context.format.name
                self._audio_pending: list[np.ndarray] = []
                self._audio_pending_n = 0
        except BaseException:
            self._abandon()
            raise
        self._reformatter = VideoReformatter()

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape {(self.height, self.width, 3)}, "
                             f"got {frame.dtype} {frame.shape}")
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        yuv = self._reformatter.reformat(rgb, format=self.pix_fmt, dst_colorspace=Colorspace.ITU709,
                                         dst_color_range=ColorRange.MPEG)
        yuv.pts = self.frames
        yuv.time_base = self.video.codec_context.time_base
        self.container.mux(self.video.encode(yuv))
        self.frames += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """Append planar float32 samples of shape (channels, n), any n; encoded in whole AAC frames."""
        if self.audio is None:
            raise RuntimeError("this encoder has no audio track (pass audio_rate)")
        channels = self.audio.codec_context.layout.nb_channels
        if samples.ndim != 2 or samples.shape[0] != channels:
            raise ValueError(f"expected samples of shape ({channels}, n), got {samples.shape}")
        self._audio_pending.append(samples.astype(np.float32, copy=False))
        self._audio_pending_n += samples.shape[1]
        self.audio_samples += samples.shape[1]
        whole = self._audio_pending_n // self._audio_frame * self._audio_frame
        if whole:
            block = self._take_audio(whole)
            for start in range(0, whole, self._audio_frame):
                self._encode_audio(np.ascontiguousarray(block[:, start:start + self._audio_frame]))

    def close(self) -> None:
        """Flush both encoders, finish the file (moving `moov` to the front), fill a file target."""
        if self.container is None:
            return
        try:
            if not self.frames:
                raise ValueError("no frames were written: an MP4 needs at least one")
            self.container.mux(self.video.encode(None))
            if self.audio is not None:
                if self._audio_pending_n:
                    last = self._take_audio(self._audio_pending_n)   # a short last frame
                    self._encode_audio(np.ascontiguousarray(last))
                self.container.mux(self.audio.encode(None))
            self.container.close()
            self.container = None
            if self._sink is not None:
                with open(Path(self._tmpdir) / "out.mp4", "rb") as f:
                    shutil.copyfileobj(f, self._sink)
        finally:
            self._abandon()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()

    def _take_audio(self, n: int) -> np.ndarray:
        block = np.concatenate(self._audio_pending, axis=1)
        self._audio_pending = [block[:, n:]]
        self._audio_pending_n -= n
        return block[:, :n]

    def _encode_audio(self, samples: np.ndarray) -> None:
        ctx = self.audio.codec_context
        if self._audio_format == "s16":   # PCM: interleaved 16-bit
            samples = (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=self._audio_format,
                                           layout=ctx.layout.name)
        frame.sample_rate = ctx.sample_rate
        frame.pts = self._audio_pts
        frame.time_base = Fraction(1, ctx.sample_rate)
        self.container.mux(self.audio.encode(frame))
        self._audio_pts += frame.samples

    def _abandon(self) -> None:
        """Release everything without finishing the file (after an error, or after close)."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass  # the file is being thrown away; the original error matters more
            self.container = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


def encode_mp4(frames: Iterable[np.ndarray], target: Target, fps: int, width: int, height: int, *,
               crf: int = 16, preset: str = "medium") -> int:
    """Encode RGB frames into an MP4 at `target` (path or binary file); return how many were written."""
    with Encoder(target, fps, width, height, crf=crf, preset=preset) as enc:
        for frame in frames:
            enc.write(frame)
    return enc.frames


def encode_mp4_bytes(frames: Iterable[np.ndarray], fps: int, width: int, height: int, *,
                     crf: int = 16, preset: str = "medium") -> bytes:
    """The MP4 as bytes, for a worker that returns its segment through Ray's object store."""
    buf = io.BytesIO()
    encode_mp4(frames, buf, fps, width, height, crf=crf, preset=preset)
    return buf.getvalue()



class PngSequence:
    """Frames as numbered lossless PNGs in a folder (`<stem>.000000.png`, ...), for compositing and
    grading tools. Same `write`/`close` as `Encoder`, without sound."""

    def __init__(self, folder: str | os.PathLike, stem: str, *, compress_level: int = 1):
        self.folder, self.stem, self.level = Path(folder), stem, compress_level
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(np.ascontiguousarray(frame)).save(
            self.folder / f"{self.stem}.{self.frames:06d}.png", format="PNG", compress_level=self.level)
        self.frames += 1

    def close(self) -> None:
        pass


def png_bytes(frame: np.ndarray) -> bytes:
    """A lossless PNG of an RGB frame (the exact last frame a chained segment starts from)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB frame, got {frame.dtype} {frame.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
