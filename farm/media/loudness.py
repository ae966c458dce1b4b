"""Loudness (EBU R128 / ITU-R BS.1770) measured and normalised through FFmpeg filter graphs in PyAV.

**Measuring** (`measure`): FFmpeg's `ebur128` filter (peak=true): integrated loudness I (LUFS, gated),
loudness range LRA (LU) and true peak TP (dBTP, from 4x oversampling). It agrees with `pyloudnorm`
(an independent BS.1770 meter) within a few hundredths of a LU.

**Normalising** (`normalize`, or `plan_normalization` + `apply` for streamed sound), two passes:
1. measure (`ebur128`); the gain to the target is target I − measured I.
2. FFmpeg's `loudnorm` with those measurements (measured_I/TP/LRA/thresh) and linear=true: one static
   gain for the whole soundtrack, so its dynamics and mix are kept.
loudnorm is only linear when the gain leaves the true peak under the target (measured TP + gain ≤
target TP); otherwise it silently falls back to its dynamic mode, which we measured missing −14 LUFS
by 2-6 LU and overshooting the peak limit on high-crest sound. So sakuga never lets it: when the gain
would break the peak limit, a true-peak limiter goes first (the gain through `volume`, then
`alimiter` at 4x the rate, 1 dB under the target TP), the result is measured again, and so on (at most
`MAX_LIMITER_PASSES`); the final loudnorm pass is then linear. Where even that cannot reach the target,
the gain stops at the peak limit and `on_target` says the loudness was missed.
The result has exactly as many samples as the input (the sound stays the picture's length) and is not
shifted in time. Measurements before and after are returned for the report and the manifest.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction

import av
import av.filter
import numpy as np

from .sound import Soundtrack

BLOCK = 48_000                 # samples per frame pushed into a graph
MAX_LIMITER_PASSES = 4
LIMITER_MARGIN_DB = 1.0        # the limiter's ceiling under the target TP (4x oversampling is not exact)
SILENCE_LUFS = -70.0           # BS.1770's absolute gate: quieter than this is no programme at all
Blocks = Callable[[], Iterable[np.ndarray]]      # a fresh iteration over (channels, n) float32 blocks
Chain = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Loudness:
    integrated: float      # LUFS
    range: float           # LU
    true_peak: float       # dBTP (-inf for silence)

    def as_dict(self) -> dict:
        return {k: round(v, 2) if math.isfinite(v) else None for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Target:
    integrated: float = -23.0      # LUFS
    true_peak: float = -1.0        # dBTP, a ceiling
    tolerance: float = 0.5         # LU either side of `integrated` that counts as on target


@dataclass(frozen=True)
class Normalization:
    """What the last pass does to the sound, from the passes before it."""

    target: Target
    before: Loudness       # the input
    chain: Chain           # FFmpeg filters, in order
    gain_db: float         # loudnorm's static gain (after any limiting)
    limiter_passes: int    # 0: loudnorm's gain alone
    expected: float        # integrated loudness the chain should reach (LUFS)
    samples: int           # the input's length, which the output keeps


@dataclass(frozen=True)
class Normalized:
    samples: np.ndarray    # (channels, n) float32, n = the input's n
    normalization: Normalization
    after: Loudness

    @property
    def on_target(self) -> bool:
        t = self.normalization.target
        # 0.1 dB: what two measurements of the same true peak (4x oversampling) may differ by
        return abs(self.after.integrated - t.integrated) <= t.tolerance and self.after.true_peak <= t.true_peak + 0.1


def blocks_of(samples: np.ndarray) -> Blocks:
    if samples.ndim != 2 or samples.shape[0] not in (1, 2):
        raise ValueError(f"expected (channels, samples) with 1 or 2 channels, got {samples.shape}")
    return lambda: (samples[:, i:i + BLOCK] for i in range(0, samples.shape[1], BLOCK))


def file_blocks(path, samples: int, rate: int = 48_000) -> Blocks:
    """A sound file's first `samples` samples at `rate` (silence once the file runs out), in blocks."""
    def blocks() -> Iterator[np.ndarray]:
        with Soundtrack(path, rate=rate) as sound:
            left = samples
            while left > 0:
                n = min(BLOCK, left)
                yield sound.read(n)
                left -= n
    return blocks


def filtered(blocks: Iterable[np.ndarray], rate: int, chain: Chain) -> Iterator[av.AudioFrame]:
    """`blocks` through the FFmpeg filters of `chain`, ending as planar float32 at `rate`, frame by frame."""
    graph = source = sink = None
    pts = 0
    for block in blocks:
        if graph is None:
            layout = "mono" if block.shape[0] == 1 else "stereo"
            graph, source, sink = _graph(rate, layout, chain)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, np.float32), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
        pts += block.shape[1]
        source.push(frame)
        yield from _pull(sink)
    if graph is not None:
        source.push(None)
        yield from _pull(sink)


def _graph(rate: int, layout: str, chain: Chain):
    graph = av.filter.Graph()
    source = graph.add_abuffer(format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate))
    nodes = [source] + [graph.add(name, args) for name, args in chain]
    nodes.append(graph.add("aformat", f"sample_fmts=fltp:sample_rates={rate}:channel_layouts={layout}"))
    nodes.append(graph.add("abuffersink"))
    for a, b in zip(nodes, nodes[1:]):
        a.link_to(b)
    graph.configure()
    return graph, source, nodes[-1]


def _pull(sink) -> Iterator[av.AudioFrame]:
    while True:
        try:
            yield sink.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def measure(source: Blocks | np.ndarray, rate: int, chain: Chain = ()) -> Loudness:
    """I, LRA and TP of the sound (after `chain`, when given), through `ebur128`."""
    blocks = blocks_of(source) if isinstance(source, np.ndarray) else source
    last = None
    for frame in filtered(blocks(), rate, chain + (("ebur128", "metadata=1:peak=true"),)):
        last = frame.metadata or last
    if last is None:
        return Loudness(SILENCE_LUFS, 0.0, -math.inf)
    peak = float(last["lavfi.r128.true_peak"])
    return Loudness(float(last["lavfi.r128.I"]), float(last["lavfi.r128.LRA"]),
                    20 * math.log10(peak) if peak > 0 else -math.inf)


def plan_normalization(source: Blocks | np.ndarray, rate: int, target: Target) -> Normalization:
    """The measuring passes: what the final pass must do to bring the sound to `target`."""
    blocks = blocks_of(source) if isinstance(source, np.ndarray) else source
    seen = [0]

    def counted():      # the first pass also counts the samples the output must keep
        for block in blocks():
            seen[0] += block.shape[1]
            yield block

    before = now = measure(counted, rate)
    samples = seen[0]
    chain: Chain = ()
    if before.integrated <= SILENCE_LUFS:           # nothing to normalise: leave silence silent
        return Normalization(target, before, (), 0.0, 0, before.integrated, samples)
    passes = 0
    while _peak_after_gain(now, target.integrated) > target.true_peak and passes < MAX_LIMITER_PASSES:
        chain += _limiter(target.integrated - now.integrated, target.true_peak - LIMITER_MARGIN_DB, rate)
        now = measure(blocks, rate, chain)
        passes += 1
    # the final gain: to the target, or to the peak limit when limiting could not make room
    # (0.01 dB under the limit, so loudnorm's own "peak + gain <= TP" test cannot round the other way)
    goal = min(target.integrated, now.integrated + target.true_peak - now.true_peak - 0.01)
    chain += (("loudnorm", _loudnorm_args(now, goal, target.true_peak)),)
    return Normalization(target, before, chain, goal - now.integrated, passes, goal, samples)


def apply(normalization: Normalization, source: Blocks | np.ndarray, rate: int) -> Iterator[np.ndarray]:
    """The final pass, streamed: exactly `normalization.samples` samples, cut or padded with silence."""
    blocks = blocks_of(source) if isinstance(source, np.ndarray) else source
    left = normalization.samples
    channels = None
    for frame in filtered(blocks(), rate, normalization.chain):
        block = frame.to_ndarray()[:, :left]
        channels = block.shape[0]
        left -= block.shape[1]
        if block.shape[1]:
            yield block
    if left > 0 and channels is not None:        # a filter kept its last few samples: silence, not drift
        yield np.zeros((channels, left), np.float32)


def normalize(samples: np.ndarray, rate: int, target: Target) -> Normalized:
    """`samples` (channels, n) float32 brought to `target`; measured again after."""
    plan = plan_normalization(samples, rate, target)
    parts = list(apply(plan, samples, rate))
    out = np.concatenate(parts, axis=1) if parts else samples[:, :0].copy()
    return Normalized(out, plan, measure(out, rate))


def _peak_after_gain(now: Loudness, integrated: float) -> float:
    """loudnorm's own test for linear mode: the measured true peak plus the gain."""
    return now.true_peak + integrated - now.integrated


def _limiter(gain_db: float, ceiling_dbtp: float, rate: int) -> Chain:
    """The gain, then a peak limiter at 4x the rate (so it sees inter-sample peaks) with its latency
    compensated (no shift in time) and no automatic make-up level."""
    ceiling = min(1.0, max(0.0625, 10 ** (ceiling_dbtp / 20)))      # alimiter's range for `limit`
    return (("volume", f"{gain_db:.6f}dB"), ("aresample", str(4 * rate)),
            ("alimiter", f"limit={ceiling:.6f}:level=false:latency=true:attack=2:release=40"),
            ("aresample", str(rate)))


def _loudnorm_args(now: Loudness, goal: float, true_peak: float) -> str:
    # In linear mode loudnorm applies goal − measured_I and uses measured_thresh and measured_LRA only
    # as "was it measured" checks (they must not be −70 and 0): the BS.1770 relative gate (I − 10) and
    # the measured LRA (at least 0.1) are given; lra=50 (its maximum) keeps the LRA test from ever
    # forcing the dynamic mode: sakuga does not compress the soundtrack's dynamics.
    measured_lra = min(50.0, max(0.1, now.range))
    return (f"i={max(-70.0, goal):.6f}:tp={true_peak:.6f}:lra=50:measured_i={now.integrated:.6f}"
            f":measured_tp={now.true_peak:.6f}:measured_lra={measured_lra:.6f}"
            f":measured_thresh={now.integrated - 10:.6f}:linear=true")


class NormalizedSoundtrack:
    """A sound file cut or padded to exactly `samples` samples and brought to `target`, read like a
    `Soundtrack` (`read(n)`, `close()`): the measuring passes run over the file when it is made, the
    final pass streams as the encoder asks for sound, so no soundtrack is ever held whole."""

    def __init__(self, path, samples: int, target: Target, *, rate: int = 48_000):
        blocks = file_blocks(path, samples, rate)
        self.rate, self.channels = rate, 2
        self.normalization = plan_normalization(blocks, rate, target)
        self._out = apply(self.normalization, blocks, rate)
        self._pending = np.zeros((self.channels, 0), np.float32)

    def read(self, n: int) -> np.ndarray:
        while self._pending.shape[1] < n:
            block = next(self._out, None)
            if block is None:      # asked past the length it was made for: silence
                block = np.zeros((self.channels, n - self._pending.shape[1]), np.float32)
            self._pending = np.concatenate([self._pending, block], axis=1)
        out, self._pending = self._pending[:, :n], self._pending[:, n:]
        return out

    def close(self) -> None:
        self._out.close()
