"""Time left by the cost model: what progress bars, `sakuga status` and the farm API show."""
from __future__ import annotations


def eta_s(segments: list[tuple[str, tuple[str, ...], float]], done: set[str], gpus: int, speed: float = 1.0) -> float:
    """Seconds left by the cost model for (id, deps, estimated seconds) in plan order: the longer of the
    remaining chain and the remaining work spread over the GPUs, scaled by how fast segments have
    actually run against their estimates."""
    finish: dict[str, float] = {}
    for sid, deps, estimate in segments:   # plan order puts dependencies first
        if sid not in done:
            finish[sid] = max((finish.get(d, 0.0) for d in deps), default=0.0) + estimate
    chain = max(finish.values(), default=0.0)
    return max(chain, sum(e for s, _, e in segments if s not in done) / max(gpus, 1)) * speed


def clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
