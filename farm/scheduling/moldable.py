"""The default scheduling policy: moldable gangs sized by the critical path, placed by priority,
preempting lower-priority work at a step boundary when urgent work would otherwise wait.

Planning (after CPA, Radulescu & van Gemund) happens when work arrives, not every round: each priority
class is planned as if it had the cluster alone (urgent work gets the gangs it would get on an idle
farm, and takes them by preemption). Every task begins at its most efficient degree; while the class's
critical path is longer than its work spread over all GPUs, the critical-path task with the best time
saved per extra GPU-second gets the next wider degree. So chains on the critical path get wide gangs
and independent work packs onto single GPUs. The plan (degrees, bottom levels, the placement order)
is kept until a task it does not cover shows up.

Placement each round: ready tasks go by priority, then longest remaining chain. A task that does not
fit at its degree starts narrower if that finishes no later than waiting would; otherwise it reserves
the node that frees up first, and later tasks may only backfill that node if they end before. After
`LOOKAHEAD` tasks in a row that cannot start the round ends (as batch schedulers bound backfilling),
so a round costs about the tasks it starts, not the queue.
"""
from __future__ import annotations

import heapq
from collections import defaultdict

from . import lookahead
from .packing import multifit
from .preemption import choose_stops, growth, soonest
from .tasks import Running, Start, Stop, Task, View, best_fit, topological

LOOKAHEAD = 64


class Moldable:
    name = "moldable"

    def __init__(self, fixed: dict[str, int] | None = None) -> None:
        self.fixed = fixed                    # degrees to use as they are (the lookahead's trials)
        self.degree: dict[str, int] = {}      # the plan: task → degree
        self.level: dict[str, float] = {}     # task → its remaining chain (bottom level) at those degrees
        self.rank: dict[str, int] = {}        # task → place in the placement order
        self.intent: dict[str, int] = {}      # urgent task → the degree it waits for (what stops free)

    def decide(self, view: View) -> list[Start]:
        self.plan(view)
        now, widest = view.now, view.cluster.widest
        free = {n: list(g) for n, g in view.free.items() if g}
        if not free or not view.ready:
            return []
        idle = _NodeClock(view, free)
        reserved: dict[int, float] = {}      # node → when a reserved gang will start there
        lowest = min((r.task.priority for r in view.running), default=0)
        sooner: dict[tuple[int, int], tuple[int | None, float]] = {}   # (priority, degree) → by stopping
        starts, misses = [], 0
        for task in sorted(view.ready, key=lambda t: self.rank[t.id]):
            if not free or misses >= LOOKAHEAD:
                break
            want = self.want(task, widest)
            if len(view.ready) == 1 and not view.pending:
                # the last task of the queue: as wide as idle GPUs allow (elastic growth resumes here)
                want = max([d for d in task.degrees(widest) if any(len(g) >= d for g in free.values())] or [want])
            open_nodes = [n for n in free if n not in reserved]
            start = best_fit(task, want, free, view.resident, open_nodes)
            if start is None and view.preempt and task.priority > lowest:
                # urgent: the gang that ends soonest, counting GPUs that stopping lower-priority work frees
                want, (node, at) = self.urgent_gang(task, want, view, free, open_nodes, idle, reserved, sooner)
                self.intent[task.id] = want
                if at <= now:
                    start = best_fit(task, want, free, view.resident, open_nodes)
                else:
                    if node is not None and node not in reserved:
                        reserved[node] = at
                    misses += 1
                    continue
            if start is None:
                wait_node, ready_at = idle.first(want, reserved)
                for d in reversed([d for d in task.degrees(widest) if d < want]):
                    if now + task.time(d) <= ready_at + task.time(want):
                        start = best_fit(task, d, free, view.resident, open_nodes)
                        if start is not None:
                            break
                if start is None:
                    # backfill a reserved node only with work that is done before its gang starts
                    fits = [n for n, at in reserved.items() if n in free and now + task.time(want) <= at]
                    start = best_fit(task, want, free, view.resident, fits)
                if start is None:
                    if wait_node is not None and wait_node not in reserved:
                        reserved[wait_node] = ready_at
                    misses += 1
                    continue
            misses = 0
            starts.append(start)
            idle.started(start.node, now + task.time(start.degree), start.degree)
            if not free[start.node]:
                del free[start.node]
        return starts

    def stops(self, view: View) -> list[Stop]:
        if not view.preempt:
            return []
        self.plan(view)
        widest = view.cluster.widest
        return (choose_stops(view, lambda t: self.intent.get(t.id) or self.want(t, widest), lambda t: self.rank[t.id])
                or growth(view, widest))

    @staticmethod
    def urgent_gang(task: Task, want: int, view: View, free, open_nodes, idle: _NodeClock, reserved,
                    sooner: dict) -> tuple[int, tuple[int | None, float]]:
        """For work that may stop lower-priority tasks: the degree (up to the planned one) that ends
        soonest, and where and when its GPUs are free (now, when they free up anyway, or when stopped
        tasks reach their step boundary)."""
        now, best = view.now, None
        for d in task.degrees(view.cluster.widest):
            if d > want:
                break
            if any(len(free[n]) >= d for n in open_nodes):
                node, at = None, now
            else:
                node, at = idle.first(d, reserved)
                if (task.priority, d) not in sooner:
                    sooner[(task.priority, d)] = soonest(view, task, d)
                other, when = sooner[(task.priority, d)]
                if when < at and other not in reserved:
                    node, at = other, when
            if best is None or at + task.time(d) < best[0] - 1e-9:
                best = (at + task.time(d), d, (node, at))
        return best[1], best[2]

    def want(self, task: Task, widest: int) -> int:
        """The planned degree, or the efficient one where the plan's is no longer allowed (an OOM
        retry narrowed what the task may use)."""
        d = self.degree.get(task.id)
        return d if d in task.runtime and d <= widest else task.efficient_degree(widest)

    # -- the plan -------------------------------------------------------------------------------------

    def plan(self, view: View) -> None:
        """Plan again when a task the plan does not cover is queued; otherwise keep the plan."""
        tasks = view.ready + view.pending
        if all(t.id in self.rank for t in tasks):
            return
        classes: dict[int, list[Task]] = defaultdict(list)
        for t in tasks:
            classes[t.priority].append(t)
        running = defaultdict(list)
        for r in view.running:
            running[r.task.priority].append(r)
        self.degree, packed = {}, {}
        for priority, members in classes.items():
            self.degree.update(self.allocation(view, members, running[priority]))
            if all(not t.deps and self.degree[t.id] == 1 for t in members):
                # independent one-GPU work: in the order of its tightest packing
                starts = multifit([t.time(1) for t in members], view.cluster.total)
                packed.update((t.id, s) for t, s in zip(members, starts))
        self.level = _bottom_levels(tasks, self.degree)
        order = sorted(tasks, key=lambda t: (-t.priority, packed.get(t.id, 0.0), -self.level[t.id], t.id))
        self.rank = {t.id: i for i, t in enumerate(order)}

    def allocation(self, view: View, tasks: list[Task], running: list[Running]) -> dict[str, int]:
        """A class's degrees: given (a lookahead trial), CPA's for independent or large classes, else
        the best of a few tried in the simulator (`lookahead.py`)."""
        if self.fixed is not None:
            return {t.id: self.fixed.get(t.id) or t.efficient_degree(view.cluster.widest) for t in tasks}
        if len(tasks) > lookahead.MAX_TASKS or not any(t.deps for t in tasks):
            return self.allocate(view, tasks, running)
        options = lookahead.candidates(tasks, lambda s: self.allocate(view, tasks, running, s), view.cluster.widest)
        return lookahead.best(tasks, view.cluster, view.now, options, Moldable)

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


class _NodeClock:
    """When each node will have d idle GPUs (by the running tasks' ends), kept up to date as the round
    starts tasks: a query costs a pass over the nodes, not over everything running."""

    def __init__(self, view: View, free: dict[int, list[int]]):
        self.ends: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for r in view.running:
            self.ends[r.node].append((r.end, len(r.gpus)))
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

