"""The soundtrack through PyAV: any sound file decoded and resampled for muxing into the cut."""
from __future__ import annotations

import av
import numpy as np

from .decode import Source, open_source

AUDIO_RATE = 48_000
AUDIO_LAYOUT = "stereo"
AUDIO_BIT_RATE = 192_000


class Soundtrack:
    """A sound file decoded and resampled to planar float32 at `rate`; `read(n)` always returns n
    samples, silence once the file has run out, so a picture of any length gets audio of its length."""

    def __init__(self, source: Source, *, rate: int = AUDIO_RATE, layout: str = AUDIO_LAYOUT):
        self.rate = rate
        self._container = open_source(source)
        if not self._container.streams.audio:
            self._container.close()
            raise ValueError(f"{source!r} has no audio stream")
        self.channels = av.AudioLayout(layout).nb_channels
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._decoded = self._container.decode(self._container.streams.audio[0])
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._exhausted = False

    def read(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError(f"cannot read {n} samples")
        while self._pending_n < n and not self._exhausted:
            frame = next(self._decoded, None)
            for out in self._resampler.resample(frame):   # None flushes the resampler
                self._pending.append(out.to_ndarray())
                self._pending_n += out.samples
            self._exhausted = frame is None
        if self._pending_n < n:
            self._pending.append(np.zeros((self.channels, n - self._pending_n), np.float32))
            self._pending_n = n
        block = np.concatenate(self._pending, axis=1) if self._pending else np.zeros((self.channels, 0), np.float32)
        self._pending, self._pending_n = [block[:, n:]], self._pending_n - n
        return block[:, :n]

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Soundtrack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
