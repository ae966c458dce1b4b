"""Geometry of the report's charts, drawn as inline SVG by its template: plain numbers here, no markup."""
from __future__ import annotations

import math
import re
from collections import defaultdict

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
           "#bab0ac", "#e15759")
WIDTH, LEFT, TOP, BOTTOM = 960, 110, 16, 28
SIMILARITY_HEIGHT = 170
_GPU = re.compile(r"n(\d+)-gpu(\d+)")


def similarity(cards, threshold: float) -> list[dict]:
    """One line chart per character: its similarity in each shot it appears in, in cut order."""
    series: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    for i, card in enumerate(cards):
        for cid, value in card.similarity.items():
            series[cid].append((i, card.id, value))
    out = []
    for cid, points in sorted(series.items()):
        low = min(0.0, min(v for *_, v in points), threshold)

        def y(v: float, low: float = low) -> float:   # 1.0 at the top, `low` at the bottom
            return TOP + (1.0 - v) / (1.0 - low) * (SIMILARITY_HEIGHT - TOP - BOTTOM)

        step = (WIDTH - LEFT - 20) / max(1, len(points) - 1)
        dots = [{"x": LEFT + k * step if len(points) > 1 else (WIDTH + LEFT) / 2, "y": y(v), "value": v, "shot": shot,
                 "flagged": v < threshold} for k, (_, shot, v) in enumerate(points)]
        out.append({"character": cid, "width": WIDTH, "height": SIMILARITY_HEIGHT, "dots": dots,
                    "line": " ".join(f"{d['x']:.1f},{d['y']:.1f}" for d in dots),
                    "threshold": {"y": y(threshold), "value": threshold},
                    "ticks": [{"y": y(v), "label": f"{v:.1f}"} for v in (low, (low + 1) / 2, 1.0)],
                    "flagged": sum(d["flagged"] for d in dots)})
    return out


def flicker(cards, threshold: float) -> dict | None:
    """A bar per shot: its flicker against the threshold."""
    values = [(c.id, c.flicker) for c in cards if c.flicker is not None]
    if not values:
        return None
    height, inner_h = 180, 180 - TOP - BOTTOM
    top = max(threshold * 1.25, max(v for _, v in values)) or 1.0
    slot = (WIDTH - LEFT - 20) / len(values)
    bars = [{"x": LEFT + k * slot + slot * 0.1, "w": max(1.0, slot * 0.8), "y": TOP + inner_h * (1 - v / top),
             "h": inner_h * v / top, "shot": shot, "value": v, "flagged": v > threshold}
            for k, (shot, v) in enumerate(values)]
    return {"width": WIDTH, "height": height, "bars": bars, "base": TOP + inner_h, "labels": slot >= 70,
            "threshold": {"y": TOP + inner_h * (1 - threshold / top), "value": threshold},
            "ticks": [{"y": TOP + inner_h * (1 - v / top), "label": f"{v:.2f}"} for v in (0.0, top / 2, top)]}


def gantt(attempts: list[dict], shot_order: list[str], shot_of: dict[str, str],
          stage_of: dict[str, str] | None = None) -> dict | None:
    """GPUs and CPU lanes (rows) × time: a bar per attempt; a gang's bar spans the rows of its GPUs;
    `stage_of` names the attempts that are delivery stages (upscale, retime), drawn dashed."""
    stage_of = stage_of or {}
    timed = [a for a in attempts if a["started"] and a["worker"]]
    if not timed:
        return None
    t0 = min(a["started"] for a in timed)
    t1 = max(a["ended"] or a["started"] for a in timed)
    span = max(t1 - t0, 1e-3)
    gpus = sorted({g for a in timed for g in _gpus(a["worker"])}, key=_gpu_key)
    row = {g: i for i, g in enumerate(gpus)}
    row_h = 20
    height = TOP + len(gpus) * row_h + BOTTOM
    x = lambda t: LEFT + (t - t0) / span * (WIDTH - LEFT - 20)   # noqa: E731
    colour = {shot: PALETTE[i % len(PALETTE)] for i, shot in enumerate(shot_order)}
    bars = []
    for a in timed:
        shot = shot_of.get(a["segment"], "")
        rows = sorted(row[g] for g in _gpus(a["worker"]))
        runs = _contiguous(rows)     # a gang on adjacent GPUs is one tall bar
        end = a["ended"] or t1
        for first, last in runs:
            bars.append({"x": x(a["started"]), "w": max(1.5, x(end) - x(a["started"])),
                         "y": TOP + first * row_h + 2, "h": (last - first + 1) * row_h - 4,
                         "colour": colour.get(shot, "#888"), "status": a["status"] or "running",
                         "label": a["segment"], "degree": a["degree"] or len(rows),
                         "stage": stage_of.get(a["segment"]),
                         "title": f"{a['segment']} attempt {a['n']} on {a['worker']}: {a['status']}, "
                                  f"{end - a['started']:.1f} s" + (f" ({a['error']})" if a["error"] else "")})
    step = _nice(span / 5)
    ticks = [{"x": x(t0 + k * step), "label": _seconds(k * step)} for k in range(int(span / step) + 1)]
    return {"width": WIDTH, "height": height, "rows": [{"name": g, "y": TOP + i * row_h + row_h / 2 + 4}
                                                       for i, g in enumerate(gpus)],
            "bars": bars, "ticks": ticks, "axis_y": height - BOTTOM + 4, "span_s": span,
            "widest": max(b["degree"] for b in bars)}


def _nice(raw: float) -> float:
    """The round step (1, 2 or 5 times a power of ten) at or above `raw`."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _seconds(t: float) -> str:
    if t >= 3600:
        return f"{t / 3600:g} h"
    return f"{t / 60:g} min" if t >= 120 else f"{t:g} s"


def _gpus(worker: str) -> list[str]:
    """`n0-gpu0+n0-gpu1` (a gang) → its GPUs; a replacement's `#2` suffix names the same GPU."""
    return [w.split("#")[0] for w in worker.split("+")]


def _gpu_key(name: str) -> tuple:
    m = _GPU.fullmatch(name)
    return (int(m[1]), int(m[2]), "") if m else (1 << 30, 0, name)


def _contiguous(rows: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and r == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], r)
        else:
            runs.append((r, r))
    return runs
