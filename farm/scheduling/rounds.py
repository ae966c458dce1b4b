"""One placement round of the default policy: the GPUs still free, when nodes free up, reservations.

`Round.place` tries a task at its planned degree on a node that is not reserved (best fit). If it
does not fit, it starts narrower when that ends no later than waiting for its gang would; else it
backfills a reserved node when it ends before the gang there starts; else it reserves the node that
frees up first for its gang. Urgent work (when the policy may preempt) reads the cluster's clock as
if stoppable lower-priority work ended at its next step boundary, when that frees its gang sooner by
more than the restart, and the tasks on the node it reserves are chosen to stop (`preemption.py`).
"""
from __future__ import annotations

from collections import defaultdict

from .preemption import stoppable, to_stop
from .tasks import Start, Task, View, best_fit


class Round:
    def __init__(self, view: View):
        self.view = view
        self.free = {n: list(g) for n, g in view.free.items() if g}
        self.idle = NodeClock(view, self.free)
        self.clocks: dict[int, NodeClock] = {}    # priority → its clock, counting what it may stop
        self.reserved: dict[int, float] = {}      # node → when a reserved gang will start there
        self.holder: dict[int, int] = {}          # node → the priority of the task it is reserved for
        self.stopping: dict[str, None] = {}       # tasks chosen to stop (in order)
        self.lowest = min((r.task.priority for r in view.running), default=0)

    def may_stop_for(self, task: Task) -> bool:
        """Whether `task` may stop running work (so it is placed even with no GPU free)."""
        return self.view.preempt and task.priority > self.lowest

    def place(self, task: Task, want: int) -> Start | None:
        view, now, free = self.view, self.view.now, self.free
        open_nodes = [n for n in free if n not in self.reserved]
        start = best_fit(task, want, free, view.resident, open_nodes)
        if start is None:
            clock = self.clock(task, want)
            wait_node, ready_at = clock.first(want, self.reserved)
            for d in reversed([d for d in task.degrees(view.cluster.widest) if d < want]):
                if now + task.time(d) <= ready_at + task.time(want):
                    start = best_fit(task, d, free, view.resident, open_nodes)
                    if start is not None:
                        break
            if start is None:
                # backfill a reserved node only with work that is done before its gang starts (with
                # preemption, never lower-priority work on a node held for more urgent work: it would
                # only be stopped again)
                fits = [n for n, at in self.reserved.items() if n in free and now + task.time(want) <= at
                        and not (view.preempt and task.priority < self.holder[n])]
                start = best_fit(task, want, free, view.resident, fits)
            if start is None:
                self.reserve(task, want, wait_node, ready_at, clock)
                return None
        for c in [self.idle, *self.clocks.values()]:
            c.started(start.node, now + task.time(start.degree), start.degree)
        if not free[start.node]:
            del free[start.node]
        return start

    def clock(self, task: Task, want: int) -> NodeClock:
        """The cluster's clock for `task`: urgent work may count stoppable lower-priority work as gone at
        its next step boundary, when that frees its gang sooner than waiting, by more than the restart."""
        if not self.may_stop_for(task):
            return self.idle
        if task.priority not in self.clocks:
            self.clocks[task.priority] = NodeClock(self.view, self.free, below=task.priority)
        urgent = self.clocks[task.priority]
        if urgent.first(want, self.reserved)[1] + task.restart_s < self.idle.first(want, self.reserved)[1]:
            return urgent
        return self.idle

    def reserve(self, task: Task, want: int, node: int | None, at: float, clock: NodeClock) -> None:
        if node is None or node in self.reserved:
            return
        self.reserved[node], self.holder[node] = at, task.priority
        if clock is not self.idle:
            chosen = to_stop(self.view, node, task, want, at, len(self.free.get(node, ())), self.stopping)
            self.stopping.update(dict.fromkeys(chosen))


class NodeClock:
    """When each node will have d idle GPUs (by the running tasks' ends), kept up to date as the round
    starts tasks: a query costs a pass over the nodes, not over everything running."""

    def __init__(self, view: View, free: dict[int, list[int]], below: int | None = None):
        """With `below`, running tasks of lower priority that can be stopped count as ending at their
        next step boundary (the clock of urgent work, which may stop them)."""
        self.ends: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for r in view.running:
            end = r.end
            if below is not None and r.task.priority < below:
                end = min(end, stoppable(r, view.now) or end)
            self.ends[r.node].append((end, len(r.gpus)))
        self.idle = {n: len(free.get(n, ())) for n in range(len(view.cluster.gpus))}
        self.now = view.now
        self.cache: dict[int, dict[int, float]] = {}

    def started(self, node: int, end: float, degree: int) -> None:
        self.ends[node].append((end, degree))
        self.idle[node] -= degree
        self.cache.clear()

    def at(self, node: int, degree: int) -> float:
        count, at = self.idle[node], self.now
        for end, used in sorted(self.ends[node]):
            if count >= degree:
                break
            count, at = count + used, end
        return at if count >= degree else float("inf")

    def first(self, degree: int, reserved: dict[int, float]) -> tuple[int | None, float]:
        """The unreserved node that first has `degree` idle GPUs, and when."""
        times = self.cache.setdefault(degree, {})
        best: tuple[int | None, float] = (None, float("inf"))
        for node in self.idle:
            if node in reserved:
                continue
            if node not in times:
                times[node] = self.at(node, degree)
            if times[node] < best[1]:
                best = (node, times[node])
        return best
