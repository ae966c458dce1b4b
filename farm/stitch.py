"""Stitching: segments into shots, shots into the episode, streaming frame by frame.

A shot is a chain of segments overlapping by one frame (the last frame of one segment is the first of
the next), so every segment after the first loses its first frame. The episode joins shots with cuts
or dissolves: a dissolve of k frames blends the last k frames of a shot with the first k of the next,
frame j of the overlap being (1 - w)·a + w·b with w = (j + 1) / (k + 1), so the cut has
sum(frames) - sum(crossfades) frames. Only the k frames of a dissolve are ever held in memory.
Both outputs are published atomically.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .publish import atomic_path
from .video import AUDIO_RATE, Encoder, Soundtrack, probe, read_frames

SHOT_CRF = 16      # shots are re-read for the episode, so they stay near the segments' quality
EPISODE_CRF = 18


def stitch_shot(segment_files: Sequence[str | os.PathLike], out: str | os.PathLike, fps: int, *,
                crf: int = SHOT_CRF, preset: str = "medium") -> int:
    """Concatenate a shot's segments, dropping each later segment's first (shared) frame.

    Returns the number of frames written.
    """
    if not segment_files:
        raise ValueError(f"no segments to stitch into {out}")
    width, height = _common_size(segment_files)
    with atomic_path(out) as tmp, Encoder(tmp, fps, width, height, crf=crf, preset=preset) as enc:
        for i, path in enumerate(segment_files):
            frames = read_frames(path)
            if i and next(frames, None) is None:
                raise ValueError(f"segment {path} has no frames")
            for frame in frames:
                enc.write(frame)
    return enc.frames


def stitch_episode(shot_files: Sequence[str | os.PathLike], crossfades: Sequence[int],
                   out: str | os.PathLike, fps: int, audio: str | os.PathLike | None = None, *,
                   crf: int = EPISODE_CRF, preset: str = "medium", audio_rate: int = AUDIO_RATE) -> int:
    """Join shots with cuts and dissolves; `crossfades[i]` frames of shot i dissolve into shot i + 1.

    With `audio`, the soundtrack is muxed as AAC, cut or padded with silence to the picture's exact
    duration. Returns the number of frames written.
    """
    if len(crossfades) != len(shot_files):
        raise ValueError(f"{len(shot_files)} shots but {len(crossfades)} crossfades")
    if not shot_files:
        raise ValueError(f"no shots to stitch into {out}")
    if any(k < 0 for k in crossfades):
        raise ValueError(f"negative crossfade in {list(crossfades)}")
    if crossfades[-1]:
        raise ValueError(f"the last shot cannot dissolve ({crossfades[-1]} frames): there is no next shot")
    width, height = _common_size(shot_files)
    soundtrack = Soundtrack(audio, rate=audio_rate) if audio is not None else None
    try:
        with atomic_path(out) as tmp, Encoder(tmp, fps, width, height, crf=crf, preset=preset,
                                              audio_rate=audio_rate if soundtrack else None) as enc:

            def write(frame: np.ndarray) -> None:
                enc.write(frame)
                if soundtrack is not None:   # keep the audio interleaved with the picture
                    due = enc.frames * audio_rate // fps - enc.audio_samples
                    enc.write_audio(soundtrack.read(due))

            tail: deque[np.ndarray] = deque()   # the previous shot's frames that dissolve into this one
            for i, path in enumerate(shot_files):
                k_in, k_out = (crossfades[i - 1] if i else 0), crossfades[i]
                frames = read_frames(path)
                for j, a in enumerate(tail):
                    b = next(frames, None)
                    if b is None:
                        raise ValueError(f"shot {path} is shorter than the {k_in}-frame dissolve into it")
                    write(_blend(a, b, (j + 1) / (k_in + 1)))
                tail = deque()
                for frame in frames:
                    tail.append(frame)
                    if len(tail) > k_out:
                        write(tail.popleft())
                if len(tail) < k_out:
                    raise ValueError(f"shot {path} is too short for a {k_in}-frame dissolve in "
                                     f"and a {k_out}-frame dissolve out")
            if soundtrack is not None:   # the rounding remainder of the last picture's audio
                due = round(enc.frames * audio_rate / fps) - enc.audio_samples
                enc.write_audio(soundtrack.read(due))
    finally:
        if soundtrack is not None:
            soundtrack.close()
    return enc.frames


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    mixed = (1.0 - w) * a.astype(np.float32) + w * b.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _common_size(files: Sequence[str | os.PathLike]) -> tuple[int, int]:
    sizes = {Path(f): (info["width"], info["height"]) for f in files for info in [probe(f)]}
    if len(set(sizes.values())) > 1:
        raise ValueError("cannot stitch pictures of different sizes: "
                         + ", ".join(f"{p.name} {w}x{h}" for p, (w, h) in sizes.items()))
    return next(iter(sizes.values()))
