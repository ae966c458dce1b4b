"""Changing a clip's frame rate (16 fps renders to 23.976, 24, 25 or 29.97 fps deliveries).

**Frame counts.** A clip of `n` frames at `src` fps lasts n/src seconds and becomes
`retimed_frames(n, src, dst)` = round-half-up(n × dst / src) frames at `dst` (at least one): 81 frames
at 16 fps become 121 at 24000/1001 (121.38), 122 at 24, 127 at 25 (126.56), 152 at 30000/1001. Every
clip is rounded on its own, so a shot's retimed length never depends on the shots before it (editing
one shot re-times that shot only); shot lengths and dissolves are rescaled with the same function, so
the cut at `dst` has Σ retimed(shot) − Σ retimed(dissolve) frames, and its sound is
`retimed_samples(frames, dst, rate)` samples long (2002 per frame at 48 kHz and 24000/1001).

**Phase.** Output frame `i` shows the source at position p = i × src / dst (in source frames), so the
first frames of both coincide and the picture never runs ahead of the sound:
- `hold`: source frame ⌊p⌋ (frame cadence: at 16 → 24 each drawing is held for 2, 1, 2, 1, ... frames,
  the uneven "on twos" look of hand-drawn animation; no new pictures are made);
- `blend`: the two neighbours mixed by phase, (1 − t) × f[⌊p⌋] + t × f[⌊p⌋ + 1] with t = p − ⌊p⌋
  (output frames at t = 0 are the source frame, byte for byte);
- `motion`: FFmpeg's motion-compensated interpolation (`minterpolate`, mi_mode=mci) through a PyAV
  filter graph, the same phase; FFmpeg ends a clip a frame or two early, so the last frames are held.
Past the last source frame every method holds it. All three stream: a window of two frames (or
FFmpeg's few) is held, whatever the clip's length.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Literal

import av
import av.filter
import numpy as np

Method = Literal["hold", "blend", "motion"]
METHODS: tuple[Method, ...] = ("hold", "blend", "motion")
Rate = Fraction | int


def retimed_frames(n: int, src: Rate, dst: Rate) -> int:
    """Frames a clip of `n` frames at `src` fps has at `dst`: round-half-up(n × dst / src), at least 1."""
    if n < 0:
        raise ValueError(f"a clip cannot have {n} frames")
    if n == 0:
        return 0
    exact = Fraction(n) * Fraction(dst) / Fraction(src)
    return max(1, math.floor(exact + Fraction(1, 2)))


def retimed_samples(frames: int, fps: Rate, rate: int) -> int:
    """Sound samples at `rate` Hz lasting exactly as long as `frames` frames at `fps` (rounded half up)."""
    return math.floor(Fraction(frames) * rate / Fraction(fps) + Fraction(1, 2))


def source_position(i: int, src: Rate, dst: Rate) -> Fraction:
    """Where output frame `i` falls in the source, in source frames (exact)."""
    return Fraction(i) * Fraction(src) / Fraction(dst)


class Retimer:
    """Streaming: `push(frame)` returns the output frames it completes, `finish()` the rest."""

    def __init__(self, src: Rate, dst: Rate):
        self.src, self.dst = Fraction(src), Fraction(dst)
        self.pushed = 0       # source frames in
        self.made = 0         # output frames out

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def finish(self) -> list[np.ndarray]:
        raise NotImplementedError


class CadenceRetimer(Retimer):
    """`hold` and `blend`: each output frame from the (at most) two source frames around its position."""

    def __init__(self, src: Rate, dst: Rate, blend: bool):
        super().__init__(src, dst)
        self.blend = blend
        self._window: dict[int, np.ndarray] = {}     # source index -> frame (the last two)

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        self._window[self.pushed] = frame
        self._window.pop(self.pushed - 2, None)
        self.pushed += 1
        out = []
        # output i needs source ⌊p⌋ and, to blend, ⌊p⌋ + 1: both are in once ⌊p⌋ + 1 < pushed
        while math.floor(source_position(self.made, self.src, self.dst)) + 1 < self.pushed:
            out.append(self._make(self.made, last=None))
        return out

    def finish(self) -> list[np.ndarray]:
        total = retimed_frames(self.pushed, self.src, self.dst)
        return [self._make(self.made, last=self.pushed - 1) for _ in range(self.made, total)]

    def _make(self, i: int, last: int | None) -> np.ndarray:
        p = source_position(i, self.src, self.dst)
        j = math.floor(p)
        t = p - j
        if last is not None:
            j = min(j, last)
            if j == last:
                t = Fraction(0)            # nothing after the last frame: hold it
        self.made += 1
        if not self.blend or t == 0:
            return self._window[j]
        a, b = self._window[j].astype(np.float32), self._window[j + 1].astype(np.float32)
        mixed = a + (b - a) * float(t)
        return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


class MotionRetimer(Retimer):
    """`motion`: FFmpeg's `minterpolate` (motion-compensated, bidirectional) in a PyAV filter graph."""

    def __init__(self, src: Rate, dst: Rate, options: str = "mi_mode=mci"):
        super().__init__(src, dst)
        self.options = options
        self._graph = None
        self._last: np.ndarray | None = None

    def _open(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        graph = av.filter.Graph()
        self._source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=1 / self.src)
        chain = [self._source,
                 graph.add("format", "pix_fmts=yuv444p"),     # what minterpolate takes: no chroma halved
                 graph.add("minterpolate", f"fps={self.dst.numerator}/{self.dst.denominator}:{self.options}"),
                 graph.add("format", "pix_fmts=rgb24")]
        self._sink = graph.add("buffersink")
        for a, b in zip(chain, chain[1:] + [self._sink]):
            a.link_to(b)
        graph.configure()
        self._graph = graph

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        if self._graph is None:
            self._open(frame)
        self._feed(frame, self.pushed)
        self.pushed += 1
        self._last = frame
        return self._drain(limit=None)

    def finish(self) -> list[np.ndarray]:
        total = retimed_frames(self.pushed, self.src, self.dst)
        out: list[np.ndarray] = []
        if self._graph is not None:
            self._feed(self._last, self.pushed)       # the last frame once more: its interval ends at n / src
            self._source.push(None)
            out = self._drain(limit=total)
        while self.made < total:                       # FFmpeg stopped early: hold the last frame
            out.append(out[-1] if out else self._last)
            self.made += 1
        self._graph = None
        return out

    def _feed(self, frame: np.ndarray, pts: int) -> None:
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        picture.pts, picture.time_base = pts, 1 / self.src
        self._source.push(picture)

    def _drain(self, limit: int | None) -> list[np.ndarray]:
        out = []
        while True:
            try:
                frame = self._sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return out
            if limit is None or self.made < limit:
                out.append(frame.to_ndarray(format="rgb24"))
                self.made += 1


def retimer(method: Method, src: Rate, dst: Rate) -> Retimer:
    if method == "motion":
        return MotionRetimer(src, dst)
    if method in ("hold", "blend"):
        return CadenceRetimer(src, dst, blend=method == "blend")
    raise ValueError(f"unknown retime method {method!r} (known: {', '.join(METHODS)})")


def retime(frames: Iterable[np.ndarray], src: Rate, dst: Rate, method: Method = "hold") -> Iterator[np.ndarray]:
    """The clip at `dst` fps, streamed: exactly `retimed_frames(n, src, dst)` frames for n frames in.
    At the same rate, the frames themselves."""
    if Fraction(src) == Fraction(dst):
        yield from frames
        return
    engine = retimer(method, src, dst)
    for frame in frames:
        yield from engine.push(frame)
    yield from engine.finish()


def retime_array(frames: np.ndarray, src: Rate, dst: Rate, method: Method = "hold") -> np.ndarray:
    """(F, H, W, 3) uint8 at `src` → (retimed_frames(F), H, W, 3) at `dst`."""
    out = list(retime(frames, src, dst, method))
    return np.stack(out) if out else frames[:0].copy()
