"""Packing independent one-GPU tasks: MULTIFIT (Coffman, Garey & Johnson), the order that realises it.

Longest-first list scheduling leaves a ragged end (pv1080-a: 794.8 s against an area bound of 704 s);
MULTIFIT finds the smallest per-GPU capacity into which first-fit decreasing packs every task
(742.1 s there) by bisection; where longest-first happens to pack tighter, that is kept. The policy does not pin tasks to GPUs: it starts them in the order of
their start times in the packing, and list scheduling in that order on identical GPUs gives the
packing back whenever the runtimes are as estimated.
"""
from __future__ import annotations

import heapq

ROUNDS = 16        # bisection steps: the capacity to within 2^-16 of the initial gap


def multifit(sizes: list[float], bins: int) -> list[float]:
    """Each task's start time in the tightest first-fit-decreasing packing of `sizes` onto `bins`
    GPUs (each GPU runs its tasks back to back, longest first), or longest-first's if tighter."""
    if not sizes:
        return []
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    lpt = _longest_first(sizes, order, bins)
    low = max(sum(sizes) / bins, max(sizes))
    high = max(low, sum(sizes) / bins + max(sizes))      # first fit always packs into this
    best = _first_fit(sizes, order, bins, high)
    for _ in range(ROUNDS):
        middle = (low + high) / 2
        packed = _first_fit(sizes, order, bins, middle)
        if packed is None:
            low = middle
        else:
            high, best = middle, packed
    # neither heuristic always wins: keep longest-first where it packs tighter
    def end(starts: list[float]) -> float:
        return max(s + size for s, size in zip(starts, sizes))
    return best if end(best) <= end(lpt) else lpt


def _longest_first(sizes: list[float], order: list[int], bins: int) -> list[float]:
    """Start times of longest-first list scheduling (each task on the GPU that frees first)."""
    free = [(0.0, b) for b in range(bins)]
    starts = [0.0] * len(sizes)
    for i in order:
        at, b = heapq.heappop(free)
        starts[i] = at
        heapq.heappush(free, (at + sizes[i], b))
    return starts


def _first_fit(sizes: list[float], order: list[int], bins: int, capacity: float) -> list[float] | None:
    """Start times of first-fit decreasing at `capacity`, or None when some task fits no GPU. A
    segment tree over the GPUs' room finds the first that fits in log(bins) steps."""
    width = 1
    while width < bins:
        width *= 2
    room = [0.0] * (2 * width)
    for b in range(bins):
        room[width + b] = capacity
    for i in range(width - 1, 0, -1):
        room[i] = max(room[2 * i], room[2 * i + 1])
    starts = [0.0] * len(sizes)
    for i in order:
        need = sizes[i] - 1e-9
        if room[1] < need:
            return None
        node = 1
        while node < width:
            node = 2 * node if room[2 * node] >= need else 2 * node + 1
        starts[i] = capacity - room[node]
        room[node] -= sizes[i]
        node //= 2
        while node:
            room[node] = max(room[2 * node], room[2 * node + 1])
            node //= 2
    return starts
