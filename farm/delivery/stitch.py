"""Stitching: segments into shots and into the episode in one streaming pass.

A shot is a chain of segments overlapping by one frame (the last frame of one segment is the first of
the next), so every segment after the first loses its first frame. Each frame is decoded once, from
the segments, and written both to its shot's file and to the episode, so the cut is one encoding away
from the renders, not two. The episode joins shots with cuts or dissolves: a dissolve of k frames
blends the last k frames of a shot with the first k of the next, frame j of the overlap being
(1 - w)·a + w·b with w = (j + 1) / (k + 1), so the cut has sum(frames) - sum(dissolves) frames. Only
the k frames of a dissolve are ever held in memory, whatever the episode's length.

Masters for editors (`prores`: ProRes 422 HQ `.mov` with PCM sound; `png`: a numbered PNG sequence)
are written in the same pass. Every output is published atomically, each shot as soon as it is whole.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from farm.job.publish import atomic_dir, atomic_path
from farm.media.decode import probe, read_frames
from farm.media.encode import Encoder, PngSequence
from farm.media.sound import AUDIO_RATE, Soundtrack

SHOT_CRF = 16      # editors take shots/ as sources, so they stay near the segments' quality
EPISODE_CRF = 18
MASTERS = ("prores", "png")


@dataclass(frozen=True)
class ShotFiles:
    segments: Sequence[Path]      # the shot's segment videos, in order, overlapping by one frame
    out: Path | None              # where the shot's own video goes (None: it has one already)
    dissolve: int = 0             # frames of this shot dissolving into the next (0: a straight cut)


def master_paths(episode: Path) -> dict[str, Path]:
    """Where each master goes, beside the episode."""
    return {"prores": episode.with_suffix(".mov"), "png": episode.with_name(f"{episode.stem}_png")}


def stitch(shots: Sequence[ShotFiles], episode: str | os.PathLike | None, fps: int | Fraction, *,
           audio: str | os.PathLike | Soundtrack | None = None, masters: Sequence[str] = (), crf: int = EPISODE_CRF,
           shot_crf: int = SHOT_CRF, preset: str = "medium", audio_rate: int = AUDIO_RATE,
           profile: str | None = None) -> list[int]:
    """Write every shot's file and (unless `episode` is None) the cut; return each shot's frame count.

    With `audio` (a file, or an open `Soundtrack`-like reader: a normalised one), the soundtrack goes
    into the episode and the ProRes master, cut or padded with silence to the picture's exact
    duration. Nothing is written if the shots cannot make a cut.
    """
    if not shots:
        raise ValueError("no shots to stitch")
    unknown = sorted(set(masters) - set(MASTERS))
    if unknown:
        raise ValueError(f"unknown master {', '.join(unknown)}: expected {' or '.join(MASTERS)}")
    lengths, (width, height) = _check(shots)
    soundtrack = None
    if audio is not None and episode is not None:
        soundtrack = audio if hasattr(audio, "read") else Soundtrack(audio, rate=audio_rate)
    with ExitStack() as stack:
        if soundtrack is not None:
            stack.callback(soundtrack.close)
        sinks: list[Encoder | PngSequence] = []
        if episode is not None:
            episode = Path(episode)
            rate = audio_rate if soundtrack else None
            sinks.append(stack.enter_context(Encoder(
                stack.enter_context(atomic_path(episode)), fps, width, height, crf=crf, preset=preset,
                audio_rate=rate, profile=profile)))
            paths = master_paths(episode)
            if "prores" in masters:
                sinks.append(stack.enter_context(Encoder(
                    stack.enter_context(atomic_path(paths["prores"])), fps, width, height, audio_rate=rate,
                    codec="prores")))
            if "png" in masters:
                sinks.append(PngSequence(stack.enter_context(atomic_dir(paths["png"])), episode.stem))
        cut = _Cut(sinks, soundtrack, fps, audio_rate)
        for i, shot in enumerate(shots):
            k_in = shots[i - 1].dissolve if i else 0
            with ExitStack() as shot_stack:
                enc = _Counter() if shot.out is None else shot_stack.enter_context(Encoder(
                    shot_stack.enter_context(atomic_path(shot.out)), fps, width, height, crf=shot_crf, preset=preset))
                for frame in _shot_frames(shot.segments):
                    enc.write(frame)
                    cut.push(frame, k_in, shot.dissolve)
                if enc.frames != lengths[i]:
                    raise ValueError(f"shot {i + 1}: its files decode to {enc.frames} frames, "
                                     f"their headers say {lengths[i]}")
            cut.end_shot()
        cut.finish()
    return lengths


class _Counter:
    """Stands in for a shot's encoder when the shot has its file already: counts its frames."""

    frames = 0

    def write(self, frame: np.ndarray) -> None:
        self.frames += 1


class _Cut:
    """The episode's frames, pushed shot by shot: holds back each shot's last `k_out` frames until the
    next shot's first ones arrive to blend with them."""

    def __init__(self, sinks, soundtrack: Soundtrack | None, fps: int, audio_rate: int):
        self.sinks, self.soundtrack, self.fps, self.audio_rate = sinks, soundtrack, fps, audio_rate
        self.audible = [s for s in sinks if getattr(s, "audio", None) is not None]
        self.tail: deque[np.ndarray] = deque()    # the previous shot's frames that dissolve into this one
        self.next_tail: deque[np.ndarray] = deque()
        self.j = 0                                # frame index within the current shot
        self.frames = 0

    def push(self, frame: np.ndarray, k_in: int, k_out: int) -> None:
        if self.j < k_in:
            self._emit(_blend(self.tail[self.j], frame, (self.j + 1) / (k_in + 1)))
        else:
            self.next_tail.append(frame)
            if len(self.next_tail) > k_out:
                self._emit(self.next_tail.popleft())
        self.j += 1

    def end_shot(self) -> None:
        self.tail, self.next_tail, self.j = self.next_tail, deque(), 0

    def finish(self) -> None:
        if self.soundtrack is not None:   # the rounding remainder of the last picture's audio
            self._audio(round(self.frames * self.audio_rate / self.fps))

    def _emit(self, frame: np.ndarray) -> None:
        for sink in self.sinks:
            sink.write(frame)
        self.frames += 1
        if self.soundtrack is not None:   # keep the audio interleaved with the picture
            self._audio(self.frames * self.audio_rate // self.fps)

    def _audio(self, until: int) -> None:
        due = until - self.audible[0].audio_samples
        if due > 0:
            samples = self.soundtrack.read(due)
            for sink in self.audible:
                sink.write_audio(samples)


def _shot_frames(segment_files: Sequence[Path]):
    for i, path in enumerate(segment_files):
        frames = read_frames(path)
        if i and next(frames, None) is None:
            raise ValueError(f"segment {path} has no frames")
        yield from frames


def _check(shots: Sequence[ShotFiles]) -> tuple[list[int], tuple[int, int]]:
    """Every shot's frame count and the common picture size, read from the files' headers; refuses
    pictures of different sizes and dissolves that cannot be made."""
    if any(s.dissolve < 0 for s in shots):
        raise ValueError(f"negative dissolve in {[s.dissolve for s in shots]}")
    if shots[-1].dissolve:
        raise ValueError(f"the last shot cannot dissolve ({shots[-1].dissolve} frames): there is no next shot")
    lengths, sizes = [], {}
    for i, shot in enumerate(shots):
        if not shot.segments:
            raise ValueError(f"no segments to stitch into {shot.out}")
        infos = [probe(f) for f in shot.segments]
        sizes.update({Path(f).name: (info["width"], info["height"]) for f, info in zip(shot.segments, infos)})
        n = sum(info["frames"] - (j > 0) for j, info in enumerate(infos))
        k_in = shots[i - 1].dissolve if i else 0
        if n < k_in + shot.dissolve:
            name = shot.out.stem if shot.out else Path(shot.segments[0]).stem
            raise ValueError(f"shot {name} has {n} frames: too short for a {k_in}-frame dissolve in "
                             f"and a {shot.dissolve}-frame dissolve out")
        lengths.append(n)
    if len(set(sizes.values())) > 1:
        raise ValueError("cannot stitch pictures of different sizes: "
                         + ", ".join(f"{name} {w}x{h}" for name, (w, h) in sizes.items()))
    return lengths, next(iter(sizes.values()))


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    mixed = (1.0 - w) * a.astype(np.float32) + w * b.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
