"""Which running tasks to stop, at their next step boundary, so that urgent work does not wait.

While the policy places a round's ready tasks (`moldable.py`), an urgent task that fits nowhere looks
at the cluster as if lower-priority work that can be stopped ended at its next denoising step boundary
(`stoppable`): when that frees its planned gang sooner, by more than the restart the stopped tasks will
pay (`Task.restart_s`), than waiting, the node is reserved for it as for any gang, and the tasks there
whose boundary comes before its start are stopped (`to_stop`), soonest first. So urgent work follows
the plan it would have on an idle farm, about one step late. A stopped task loses nothing
but the restart (its steps are checkpointed) and resumes at whatever degree the policy then picks.

Aging: a task is stopped at most `MAX_PREEMPTIONS` times, so however much urgent work arrives, every
task finishes; and a stopped task keeps its place in the order (its long remaining chain), so it goes
back ahead of work of its class that has not started.
"""
from __future__ import annotations

from dataclasses import replace

from .tasks import Running, Stop, Task, View

MAX_PREEMPTIONS = 2


def stoppable(r: Running, now: float) -> float | None:
    """When `r` would stop if asked now (its next step boundary), or None: already stopping, stopped
    `MAX_PREEMPTIONS` times, or on its last step (stopping would free nothing sooner)."""
    if r.stopping or r.task.preempted >= MAX_PREEMPTIONS:
        return None
    step, boundary = r.next_boundary(now)
    return boundary if step < r.task.steps else None


def to_stop(view: View, node: int, urgent: Task, degree: int, at: float, idle: int, chosen) -> list[str]:
    """The lower-priority tasks on `node` to stop so that `degree` GPUs are idle there by `at` for
    `urgent`, soonest boundary first, counting what ends or stops by then anyway."""
    have, stop = idle, []
    frees = []
    for r in view.running:
        if r.node != node:
            continue
        boundary = stoppable(r, view.now) if r.task.priority < urgent.priority and r.task.id not in chosen else None
        frees.append((boundary if boundary is not None else r.end, boundary is not None, r))
    for when, stops, r in sorted(frees, key=lambda f: (f[0], f[1])):
        if have >= degree or when > at + 1e-9:
            break
        have += len(r.gpus)
        if stops:
            stop.append(r.task.id)
    return stop


def growth(view: View, widest: int) -> list[Stop]:
    """Elastic width at the end of the queue: with nothing waiting and GPUs idle, a running task that
    would end sooner restarted on a wider gang of its node (stopped at its next boundary, paying the
    restart) is stopped; the policy then starts it again on the idle GPUs with its own."""
    if view.ready or view.pending:
        return []
    idle = {n: len(g) for n, g in view.free.items() if g}
    stops = []
    for r in sorted(view.running, key=lambda r: -r.end):
        spare = idle.get(r.node, 0)
        if not spare or r.stopping or r.task.preempted >= MAX_PREEMPTIONS:
            continue
        step, at = r.next_boundary(view.now)
        wider = [d for d in r.task.degrees(widest) if len(r.gpus) < d <= len(r.gpus) + spare]
        if step >= r.task.steps or not wider:
            continue
        resumed = replace(r.task, done=step)
        if at + resumed.time(wider[-1]) + r.task.restart_s < r.end:
            stops.append(Stop(r.task.id))
            idle[r.node] = spare - (wider[-1] - len(r.gpus))
    return stops
