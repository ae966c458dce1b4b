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


def eta_of(job, gpus: int) -> float:
    """A job's seconds left (0 once it has ended), scaled by how fast the segments it rendered in this
    run went against their estimates. `job` is a `farm.job.job.Job` (read, never changed)."""
    if job.ended:
        return 0.0
    rendered = [(sid, s.published) for sid, s in job.state.items() if s.origin == "rendered" and s.published]
    estimated = sum(job.by_id[sid].runtime(p.degree) for sid, p in rendered)
    actual = sum(p.render_s + p.encode_s for _, p in rendered)
    items = [(s.id, s.deps, s.runtime(1)) for s in job.items]
    return eta_s(items, job.done | job.dead, gpus, actual / estimated if estimated else 1.0)
