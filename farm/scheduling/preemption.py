"""Which running tasks to stop, at their next step boundary, so that urgent work does not wait.

A ready task that fits nowhere looks for a node where lower-priority running tasks, stopped at their
next denoising step boundary, would free enough GPUs for its planned gang. It asks only when that is
sooner than waiting, counting the restart the stopped tasks will pay (`Task.restart_s`) against the
time until GPUs free up anyway; of the nodes that would do, the one ready soonest (then the fewest GPUs
stopped) wins, and the tasks whose boundary comes soonest go first. A stopped task loses nothing
but the restart (its steps are checkpointed) and resumes at whatever degree the policy then picks.

Aging: a task is stopped at most `MAX_PREEMPTIONS` times, so however much urgent work arrives, every
task finishes; and a stopped task keeps its place in the order (its long remaining chain), so it goes
back ahead of work of its class that has not started.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from .tasks import Running, Stop, Task, View

MAX_PREEMPTIONS = 2


def choose_stops(view: View, want: Callable[[Task], int], rank: Callable[[Task], int]) -> list[Stop]:
    running = [r for r in view.running if not r.stopping]
    if not running or not view.ready:
        return []
    lowest = min(r.task.priority for r in running)
    urgent = sorted((t for t in view.ready if t.priority > lowest), key=rank)
    if not urgent:
        return []
    now = view.now
    free = {n: len(g) for n, g in view.free.items()}
    on_node: dict[int, list[Running]] = defaultdict(list)
    for r in view.running:
        on_node[r.node].append(r)
    stopped: set[str] = set()
    stops = []
    for task in urgent:
        degree = want(task)
        fits = [n for n, c in free.items() if c >= degree]
        if fits:      # it starts as soon as the policy places it: keep its GPUs out of the count
            free[min(fits, key=lambda n: free[n])] -= degree
            continue
        natural = min((_free_at(on_node[n], free.get(n, 0), degree, now) for n in on_node), default=float("inf"))
        best = None
        for node, tasks in on_node.items():
            plan = _victims(tasks, task, free.get(node, 0), degree, now, stopped)
            if plan is not None and (best is None or plan[:2] < best[:2]):
                best = (*plan, node)
        if best is None or natural <= best[0] + task.restart_s:
            continue      # waiting costs no more than stopping someone
        ready_at, gpus, victims, node = best
        stops += [Stop(r.task.id) for r in victims]
        stopped.update(r.task.id for r in victims)
        free[node] = free.get(node, 0) + gpus - degree
    return stops


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


def soonest(view: View, task: Task, degree: int) -> tuple[int | None, float]:
    """The node where stopping lower-priority work frees `degree` GPUs for `task` soonest, and when
    (None, inf when no stopping would)."""
    free = {n: len(g) for n, g in view.free.items()}
    on_node: dict[int, list[Running]] = defaultdict(list)
    for r in view.running:
        on_node[r.node].append(r)
    best: tuple[int | None, float] = (None, float("inf"))
    for node, tasks in on_node.items():
        plan = _victims(tasks, task, free.get(node, 0), degree, view.now, set())
        if plan is not None and plan[0] < best[1]:
            best = (node, plan[0])
    return best


def _victims(tasks: list[Running], urgent: Task, idle: int, degree: int, now: float, stopped: set[str]):
    """(when the GPUs are free, GPUs stopped, the tasks) for freeing `degree` GPUs on one node by
    stopping lower-priority tasks there; None when they would not free enough."""
    candidates = []
    for r in tasks:
        if r.stopping or r.task.id in stopped or r.task.priority >= urgent.priority \
                or r.task.preempted >= MAX_PREEMPTIONS:
            continue
        step, boundary = r.next_boundary(now)
        if step < r.task.steps:    # on its last step, stopping it would free nothing sooner
            candidates.append((boundary, r.task.priority, -(r.end - now), r))
    chosen, have, at = [], idle, now
    for boundary, _, _, r in sorted(candidates, key=lambda c: c[:3]):   # soonest free first
        if have >= degree:
            break
        chosen.append(r)
        have += len(r.gpus)
        at = max(at, boundary)
    if have < degree:
        return None
    return at, have - idle, chosen


def _free_at(tasks: list[Running], idle: int, degree: int, now: float) -> float:
    """When `degree` GPUs of a node are idle without stopping anything."""
    count, at = idle, now
    for r in sorted(tasks, key=lambda r: r.end):
        if count >= degree:
            break
        count, at = count + len(r.gpus), r.end
    return at if count >= degree else float("inf")
