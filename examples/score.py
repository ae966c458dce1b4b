"""The pilot's soundtrack, composed here so the repository ships no recording: 32 s of a slow
four-chord progression (pads, a bell melody, a soft pulse) at 48 kHz stereo, written to
`pilot/score.m4a`. Deterministic: the same file every run. Its level is deliberately not broadcast
loudness (about -16 LUFS), so `--deliver broadcast-1080p2398` has something to normalise.

    python examples/score.py
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 48_000
SECONDS = 32.0
BEAT = 60 / 90                     # 90 beats a minute, four beats a chord
CHORDS = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]   # A minor, F, C, G (MIDI notes)
MELODY = [76, 74, 72, 71, 72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 72]


def hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def tone(freq: float, seconds: float, harmonics=(1.0, 0.35, 0.12)) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(harmonics))


def envelope(n: int, attack: float, release: float) -> np.ndarray:
    e = np.ones(n)
    a, r = int(attack * RATE), int(release * RATE)
    e[:a] = np.linspace(0, 1, a)
    e[-r:] *= np.exp(-np.linspace(0, 5, r))
    return e


def compose() -> np.ndarray:
    """(2, n) float32 in -1..1."""
    n = int(SECONDS * RATE)
    left, right = np.zeros(n), np.zeros(n)
    bar = 4 * BEAT
    for i in range(int(SECONDS / bar) + 1):
        start = int(i * bar * RATE)
        for j, note in enumerate(CHORDS[i % 4]):
            pad = tone(hz(note), bar) * envelope(int(bar * RATE), 0.4, 0.8) * 0.06
            end = min(n, start + len(pad))
            pan = 0.3 + 0.2 * j
            left[start:end] += pad[:end - start] * (1 - pan)
            right[start:end] += pad[:end - start] * pan
    for i in range(int(SECONDS / BEAT)):
        start = int(i * BEAT * RATE)
        note = MELODY[i % len(MELODY)]
        bell = tone(hz(note), BEAT, (1.0, 0.2, 0.3, 0.05)) * envelope(int(BEAT * RATE), 0.005, BEAT * 0.9) * 0.09
        pulse = tone(hz(CHORDS[(i // 4) % 4][0] - 12), 0.25, (1.0, 0.5)) * envelope(int(0.25 * RATE), 0.003, 0.2) * 0.12
        for sound, pan in ((bell, 0.6 if i % 2 else 0.4), (pulse, 0.5)):
            end = min(n, start + len(sound))
            left[start:end] += sound[:end - start] * (1 - pan)
            right[start:end] += sound[:end - start] * pan
    fade = envelope(n, 0.5, 2.0)
    return (3.0 * np.stack([left, right]) * fade).astype(np.float32)


def write(samples: np.ndarray, path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=RATE, layout="stereo")
        stream.codec_context.bit_rate = 96_000
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                               format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


if __name__ == "__main__":
    write(compose(), HERE / "pilot" / "score.m4a")
