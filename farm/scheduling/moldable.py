"""The default scheduling policy: moldable gangs sized by the critical path, placed by priority,
preempting lower-priority work at a step boundary when urgent work would otherwise wait.

Planning (after CPA, Radulescu & van Gemund) happens when work arrives, not every round: each priority
class is planned as if it had the cluster alone (urgent work gets the gangs it would get on an idle
farm, and takes them by preemption). Every task begins at its most efficient degree; while the class's
critical path is longer than its work spread over all GPUs, the critical-path task with the best time
saved per extra GPU-second gets the next wider degree. So chains on the critical path get wide gangs
and independent work packs onto single GPUs. The plan (degrees, bottom levels, the placement order)
is kept until a task it does not cover shows up.

Placement each round (`rounds.py`): ready tasks go by priority, then their place in the plan's order
(longest remaining chain; independent one-GPU work in the order of its tightest packing, `packing.py`).
After `LOOKAHEAD` tasks in a row that cannot start the round ends (as batch schedulers bound
backfilling), so a round costs about the tasks it starts, not the queue.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import replace

from . import lookahead
from .packing import multifit
from .preemption import growth, stoppable
from .rounds import Round
from .tasks import Running, Start, Stop, Task, View, topological

LOOKAHEAD = 64


class Moldable:
    name = "moldable"

    def __init__(self, fixed: dict[str, int] | None = None) -> None:
        self.fixed = fixed                    # degrees to use as they are (the lookahead's trials)
        self.degree: dict[str, int] = {}      # the plan: task → degree
        self.level: dict[str, float] = {}     # task → its remaining chain (bottom level) at those degrees
        self.rank: dict[str, int] = {}        # task → place in the placement order
        self.to_stop: list[str] = []          # what the last round chose to stop, for `stops`
        self.seen: set[str] = set()           # tasks that were ready when a plan was made
        self.packed: dict[str, float] = {}    # independent one-GPU task → its start in the packing

    def decide(self, view: View) -> list[Start]:
        self.plan(view)
        widest = view.cluster.widest
        placing = Round(view)
        starts, misses, waiting_urgent = [], 0, None
        for task in sorted(view.ready, key=lambda t: self.rank[t.id]):
            if misses >= LOOKAHEAD or not (placing.free or placing.may_stop_for(task)):
                break
            if waiting_urgent is not None and task.priority < waiting_urgent:
                break     # while urgent work waits for GPUs stopped for it, nothing below it starts
            want = self.want(task, widest)
            if len(view.ready) == 1 and not view.pending:
                # the last task of the queue: as wide as idle GPUs allow (elastic growth resumes here)
                want = max([d for d in task.degrees(widest) if any(len(g) >= d for g in placing.free.values())]
                           or [want])
            start = placing.place(task, want)
            if start is None:
                if placing.may_stop_for(task) and waiting_urgent is None:
                    waiting_urgent = task.priority
                misses += 1
                continue
            misses = 0
            starts.append(start)
        self.to_stop = list(placing.stopping)
        return starts

    def stops(self, view: View) -> list[Stop]:
        """What this round's `decide` chose to stop for urgent work (still running, not yet stopping);
        with nothing waiting, running tasks that would end sooner on a wider gang (elastic growth)."""
        if not view.preempt:
            return []
        running = {r.task.id for r in view.running if not r.stopping}
        chosen, self.to_stop = [Stop(t) for t in self.to_stop if t in running], []
        return chosen or growth(view, view.cluster.widest)

    def want(self, task: Task, widest: int) -> int:
        """The planned degree, or the efficient one where the plan's is no longer allowed (an OOM
        retry narrowed what the task may use)."""
        d = self.degree.get(task.id)
        return d if d in task.runtime and d <= widest else task.efficient_degree(widest)

    # -- the plan -------------------------------------------------------------------------------------

    def plan(self, view: View) -> None:
        """Plan again when a task the plan does not cover is queued, or a class's first tasks become
        ready (an urgent job released: planned for the cluster as it is then); otherwise keep the plan."""
        tasks = view.ready + view.pending
        lowest = min((r.task.priority for r in view.running), default=None)
        # urgent work newly ready: planned again for the cluster as it is now
        fresh = {t.id for t in view.ready if lowest is not None and t.priority > lowest} - self.seen
        if all(t.id in self.rank for t in tasks) and not fresh:
            return
        self.seen |= {t.id for t in view.ready}
        classes: dict[int, list[Task]] = defaultdict(list)
        for t in tasks:
            classes[t.priority].append(t)
        running = defaultdict(list)
        for r in view.running:
            running[r.task.priority].append(r)
        # only a class with new work, or urgent work newly ready, is planned again: the rest keep theirs
        changed = {t.priority for t in tasks if t.id not in self.rank or t.id in fresh}
        degree, packed = {}, {}
        for priority, members in classes.items():
            if priority not in changed:
                degree.update((t.id, self.degree[t.id]) for t in members)
                packed.update((t.id, self.packed[t.id]) for t in members if t.id in self.packed)
                continue
            degree.update(self.allocation(view, members, running[priority]))
            if all(not t.deps and degree[t.id] == 1 for t in members):
                # independent one-GPU work: in the order of its tightest packing
                starts = multifit([t.time(1) for t in members], view.cluster.total)
                packed.update((t.id, s) for t, s in zip(members, starts))
        self.degree, self.packed = degree, packed
        self.level = _bottom_levels(tasks, self.degree)
        for r in view.running:      # covered too: one stopped later comes back with its remaining time
            self.degree.setdefault(r.task.id, len(r.gpus))
            self.level.setdefault(r.task.id, max(r.end - view.now, 0.0))
        order = sorted(tasks + [r.task for r in view.running],
                       key=lambda t: (-t.priority, packed.get(t.id, 0.0), -self.level[t.id], t.id))
        self.rank = {t.id: i for i, t in enumerate(order)}

    def allocation(self, view: View, tasks: list[Task], running: list[Running]) -> dict[str, int]:
        """A class's degrees: given (a lookahead trial), CPA's for a large class, else the best of a few
        tried in the simulator (`lookahead.py`)."""
        if self.fixed is not None:
            return {t.id: self.fixed.get(t.id) or t.efficient_degree(view.cluster.widest) for t in tasks}
        independent = not any(t.deps for t in tasks)
        if len(tasks) > (lookahead.MAX_INDEPENDENT if independent else lookahead.MAX_TASKS):
            return self.allocate(view, tasks, running)
        options = lookahead.candidates(tasks, lambda s: self.allocate(view, tasks, running, s), view.cluster.widest)
        return lookahead.best(tasks, view.cluster, view.now, options, Moldable, _held(view, tasks[0].priority))

    def allocate(self, view: View, tasks: list[Task], running: list[Running], stretch: float = 1.0) -> dict[str, int]:
        widest, total = view.cluster.widest, max(view.cluster.total, 1)
        degree = {t.id: t.efficient_degree(widest) for t in tasks}
        if all(len(t.degrees(widest)) == 1 for t in tasks):
            return degree   # nothing to mould
        remaining = {r.task.id: max(r.end - view.now, 0.0) for r in running}
        # the class's clock starts when its first task is released (an urgent job arriving later)
        offset = max(0.0, min(t.release for t in tasks) - view.now)
        busy = sum(len(r.gpus) * remaining[r.task.id] for r in running)
        area = busy + sum(degree[t.id] * t.time(degree[t.id]) for t in tasks)
        if not any(t.deps for t in tasks):
            return _allocate_independent(tasks, degree, area, total, offset, widest, view.now)
        tasks = topological(tasks)   # once: widening changes times, not the order
        while True:
            finish, critical = _critical_path(tasks, degree, remaining, view.now)
            if finish - offset <= stretch * area / total:
                return degree
            best, best_gain = None, 0.0
            for t in critical:
                wider = [d for d in t.degrees(widest) if d > degree[t.id]]
                if not wider:
                    continue
                d0, d1 = degree[t.id], wider[0]
                saved = t.time(d0) - t.time(d1)
                cost = d1 * t.time(d1) - d0 * t.time(d0)
                gain = saved / cost if cost > 0 else float("inf")
                if saved > 0 and gain > best_gain:
                    best, best_gain = t, gain
            if best is None:
                return degree
            old = degree[best.id]
            degree[best.id] = next(d for d in best.degrees(widest) if d > old)
            area += degree[best.id] * best.time(degree[best.id]) - old * best.time(old)


def _allocate_independent(tasks: list[Task], degree: dict[str, int], area: float, total: int, offset: float,
                          widest: int, now: float) -> dict[str, int]:
    """CPA for tasks without dependencies: the critical path is the longest task, kept on a heap."""
    def finish(t: Task) -> float:
        return max(t.release - now, 0.0) + t.time(degree[t.id])

    heap = [(-finish(t), i) for i, t in enumerate(tasks)]
    heapq.heapify(heap)
    while heap and -heap[0][0] - offset > area / total:
        t = tasks[heap[0][1]]
        wider = [d for d in t.degrees(widest) if d > degree[t.id]]
        if not wider or t.time(wider[0]) >= t.time(degree[t.id]):
            break     # the longest task cannot get shorter: the path is as short as it gets
        old, degree[t.id] = degree[t.id], wider[0]
        area += degree[t.id] * t.time(degree[t.id]) - old * t.time(old)
        heapq.heapreplace(heap, (-finish(t), heap[0][1]))
    return degree


def _held(view: View, priority: int) -> tuple[Running, ...]:
    """What a class of `priority` cannot use now, as the simulator's `busy`: every running task of the
    other classes until its end, or (with preemption) a lower-priority one until its next step boundary."""
    held = []
    for r in view.running:
        if r.task.priority == priority:
            continue
        end = r.end
        if view.preempt and r.task.priority < priority:
            end = min(end, stoppable(r, view.now) or end)
        held.append(Running(replace(r.task, id=f"held:{r.task.id}"), r.node, r.gpus, 0.0, max(end - view.now, 0.0)))
    return tuple(held)


def _critical_path(tasks: list[Task], degree: dict[str, int], remaining: dict[str, float],
                   now: float) -> tuple[float, list[Task]]:
    """Length of the longest chain of unstarted `tasks` (in topological order; from now, counting
    releases and what is still running), and the unstarted tasks on it."""
    by_id = {t.id: t for t in tasks}
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for t in tasks:     # in topological order
        start, came = max(t.release - now, 0.0), None
        for d in t.deps:
            f = finish.get(d, remaining.get(d, 0.0))
            if f > start:
                start, came = f, d
        finish[t.id] = start + t.time(degree[t.id])
        via[t.id] = came
    if not finish:
        return 0.0, []
    last = max(finish, key=finish.get)
    chain = []
    node: str | None = last
    while node is not None and node in by_id:
        chain.append(by_id[node])
        node = via[node]
    return finish[last], chain


def _bottom_levels(tasks: list[Task], degree: dict[str, int]) -> dict[str, float]:
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.deps:
            if d in children:
                children[d].append(t.id)
    level: dict[str, float] = {}
    for t in reversed(topological(tasks)):
        level[t.id] = t.time(degree[t.id]) + max((level[c] for c in children[t.id]), default=0.0)
    return level

