"""Tiled inference: a net applied to overlapping tiles of a batch, so any frame size fits.

Tiles of `tile` x `tile` input pixels step by `tile - overlap`; the last one on each axis is moved back
to end at the edge, so every tile is full-size. Each output pixel is taken from exactly one tile: the
seam between two neighbours is the middle of their shared strip, so each keeps at least `overlap / 2`
pixels of context on a side it shares. A net whose reach (receptive radius) is at most `overlap / 2`
therefore gives the same picture tiled as whole, up to float rounding; nets that reach further (RRDB)
differ by what lies beyond `overlap / 2`, which is why their presets use generous overlaps.
"""
from __future__ import annotations

from collections.abc import Callable


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (tile start, tile end, kept start, kept end) per tile, in input pixels.
    The kept ranges tile [0, length) exactly; `tile <= 0` or `tile >= length` gives one tile."""
    if tile <= 0 or tile >= length:
        return [(0, length, 0, length)]
    if not 0 <= 2 * overlap < tile:
        raise ValueError(f"overlap {overlap} must be less than half the tile {tile}")
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    out = []
    for i, start in enumerate(starts):
        keep_from = 0 if i == 0 else (start + starts[i - 1] + tile) // 2
        keep_to = length if i + 1 == len(starts) else (starts[i + 1] + start + tile) // 2
        out.append((start, start + tile, keep_from, keep_to))
    return out


def run_tiled(net: Callable, x, scale: int, tile: int, overlap: int):
    """`net` (N, C, H, W) -> (N, C, H*scale, W*scale) applied tile by tile to `x`; returns the whole output."""
    import torch

    n, c, h, w = x.shape
    rows, cols = spans(h, tile, overlap), spans(w, tile, overlap)
    if len(rows) == len(cols) == 1:
        return net(x)
    out = torch.empty((n, c, h * scale, w * scale), dtype=x.dtype, device=x.device)
    for y0, y1, ky0, ky1 in rows:
        for x0, x1, kx0, kx1 in cols:
            piece = net(x[:, :, y0:y1, x0:x1])
            out[:, :, ky0 * scale:ky1 * scale, kx0 * scale:kx1 * scale] = \
                piece[:, :, (ky0 - y0) * scale:(ky1 - y0) * scale, (kx0 - x0) * scale:(kx1 - x0) * scale]
    return out
