"""Scheduling policies: pure functions from (waiting work, cluster state, cost model) to starts.

The discrete-event simulator (`farm/sim.py`) and the Ray driver call the same policy objects, so what
`sakuga bench schedule` measures is what production runs. A policy never sees Ray: only tasks with
their runtime per sequence-parallel degree, the free GPUs of each node and what is running.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Task:
    id: str
    runtime: Mapping[int, float]     # degree (GPUs in one gang, on one node) → seconds; only these degrees
    deps: tuple[str, ...] = ()
    job: str = ""
    priority: int = 0                # higher is more urgent
    release: float = 0.0             # may not start before
    model: str = ""                  # workers that already hold this model are preferred
    steps: int = 8                   # denoising steps: the boundaries a running task can be stopped at
    done: int = 0                    # steps already checkpointed (a preempted or retried task resumes there)
    restart_s: float = 10.0          # what resuming from a checkpoint costs (the conditions again, warm-up)
    preempted: int = 0               # times it was stopped for more urgent work (aging: a cap, then never again)

    def time(self, degree: int) -> float:
        """Seconds to finish from where it is at `degree`: its share of the steps left, plus the restart."""
        if not self.done:
            return self.runtime[degree]
        return self.runtime[degree] * (self.steps - self.done) / self.steps + self.restart_s

    def degrees(self, limit: int) -> list[int]:
        return sorted(d for d in self.runtime if d <= limit)

    def efficient_degree(self, limit: int) -> int:
        """The degree using the fewest GPU-seconds (ties: fewer GPUs)."""
        return min(self.degrees(limit), key=lambda d: (d * self.runtime[d], d))


@dataclass(frozen=True)
class Cluster:
    gpus: tuple[int, ...]            # GPUs on each node

    @classmethod
    def uniform(cls, nodes: int, gpus_per_node: int) -> Cluster:
        return cls((gpus_per_node,) * nodes)

    @property
    def total(self) -> int:
        return sum(self.gpus)

    @property
    def widest(self) -> int:
        return max(self.gpus, default=0)


@dataclass(frozen=True)
class Running:
    task: Task
    node: int
    gpus: tuple[int, ...]
    start: float
    end: float                       # estimated (exact in the simulator)


@dataclass(frozen=True)
class Start:
    task: str
    node: int
    gpus: tuple[int, ...]

    @property
    def degree(self) -> int:
        return len(self.gpus)


@dataclass(frozen=True)
class Stop:
    task: str                        # a running task: stop it at its next step boundary (checkpoint, GPUs freed)


@dataclass
class View:
    """What a policy sees at one decision point."""
    now: float
    cluster: Cluster
    free: dict[int, list[int]]       # node → GPU indices idle now
    ready: list[Task]                # released, dependencies finished, not started (in submission order)
    pending: list[Task] = field(default_factory=list)   # not started, not ready yet
    running: list[Running] = field(default_factory=list)
    resident: Mapping[tuple[int, int], Iterable[str]] = field(default_factory=dict)   # (node, gpu) → models held
    preempt: bool = False            # running work may be stopped at a step boundary for more urgent work


class Policy(Protocol):
    name: str

    def decide(self, view: View) -> list[Start]: ...

    def stops(self, view: View) -> list[Stop]:
        """Running tasks to stop at their next step boundary (asked after `decide`'s starts are made);
        [] unless `view.preempt`."""
        ...


def _place(task: Task, degree: int, free: dict[int, list[int]], resident: Mapping[tuple[int, int], Iterable[str]],
           usable: Iterable[int] | None = None) -> Start | None:
    """Best fit: the node with the fewest free GPUs that still holds the gang (fragmenting nothing
    bigger), preferring GPUs that already hold the task's model."""
    nodes = [n for n in (usable if usable is not None else free) if len(free[n]) >= degree]
    if not nodes:
        return None

    def warm(n: int, g: int) -> bool:
        return task.model in resident.get((n, g), ())

    node = min(nodes, key=lambda n: (len(free[n]), -sum(warm(n, g) for g in free[n]), n))
    gpus = sorted(free[node], key=lambda g: (not warm(node, g), g))[:degree]
    for g in gpus:
        free[node].remove(g)
    return Start(task.id, node, tuple(sorted(gpus)))


def _in_release_order(view: View, degree) -> list[Start]:
    """Start ready tasks in release order at `degree(task)` until one does not fit (no backfilling)."""
    free = {n: list(g) for n, g in view.free.items()}
    starts = []
    for task in sorted(view.ready, key=lambda t: t.release):
        start = _place(task, degree(task), free, view.resident)
        if start is None:
            break
        starts.append(start)
    return starts


class Fifo1:
    """Baseline: one GPU per task (its narrowest degree), in release then submission order."""
    name = "fifo1"

    def decide(self, view: View) -> list[Start]:
        return _in_release_order(view, lambda t: min(t.runtime))

    def stops(self, view: View) -> list[Stop]:
        return []


class WholeNode:
    """Baseline: every task on a whole node (its widest degree that fits one), in release order."""
    name = "node"

    def decide(self, view: View) -> list[Start]:
        return _in_release_order(view, lambda t: max(t.degrees(view.cluster.widest)))

    def stops(self, view: View) -> list[Stop]:
        return []


class Moldable:
    """The default policy.

    Allocation (after CPA, Radulescu & van Gemund): every unstarted task begins at its most efficient
    degree; while the critical path of what is left is longer than its work spread over all GPUs, the
    critical-path task with the best time saved per extra GPU-second gets the next wider degree. So
    chains on the critical path get wide gangs and independent work packs onto single GPUs.

    Placement: ready tasks go by job priority, then longest remaining chain. A task that does not fit
    at its degree starts narrower if that finishes no later than waiting would; otherwise it reserves
    the node that frees up first, and later tasks may only backfill that node if they end before.
    """
    name = "moldable"

    def decide(self, view: View) -> list[Start]:
        now, widest = view.now, view.cluster.widest
        degree = self.allocate(view)
        level = _bottom_levels(view.ready + view.pending, degree)
        free = {n: list(g) for n, g in view.free.items()}
        ends = [(r.end, r.node, len(r.gpus)) for r in view.running]
        reserved: dict[int, float] = {}      # node → when a reserved gang will start there
        starts = []
        for task in sorted(view.ready, key=lambda t: (-t.priority, -level[t.id], t.id)):
            want = degree[task.id]
            open_nodes = [n for n in free if n not in reserved]
            start = _place(task, want, free, view.resident, open_nodes)
            if start is None:
                wait_node, ready_at = _first_fit_time(want, free, ends, reserved, now)
                narrower = [d for d in task.degrees(widest) if d < want]
                for d in reversed(narrower):
                    if now + task.runtime[d] <= ready_at + task.runtime[want]:
                        start = _place(task, d, free, view.resident, open_nodes)
                        if start is not None:
                            break
                if start is None:
                    # backfill a reserved node only with work that is done before its gang starts
                    fits = [n for n, at in reserved.items() if now + task.runtime[want] <= at]
                    start = _place(task, want, free, view.resident, fits)
                if start is None:
                    if wait_node is not None and wait_node not in reserved:
                        reserved[wait_node] = ready_at
                    continue
            starts.append(start)
            ends.append((now + task.runtime[start.degree], start.node, start.degree))
        return starts

    def stops(self, view: View) -> list[Stop]:
        return []

    def allocate(self, view: View) -> dict[str, int]:
        tasks = view.ready + view.pending
        widest, total = view.cluster.widest, max(view.cluster.total, 1)
        degree = {t.id: t.efficient_degree(widest) for t in tasks}
        if all(len(t.degrees(widest)) == 1 for t in tasks):
            return degree   # nothing to mould
        remaining = {r.task.id: max(r.end - view.now, 0.0) for r in view.running}
        busy = sum(len(r.gpus) * remaining[r.task.id] for r in view.running)
        area = busy + sum(degree[t.id] * t.runtime[degree[t.id]] for t in tasks)
        while True:
            finish, critical = _critical_path(tasks, degree, remaining, view.now)
            if finish <= area / total:
                return degree
            best, best_gain = None, 0.0
            for t in critical:
                wider = [d for d in t.degrees(widest) if d > degree[t.id]]
                if not wider:
                    continue
                d0, d1 = degree[t.id], wider[0]
                saved = t.runtime[d0] - t.runtime[d1]
                cost = d1 * t.runtime[d1] - d0 * t.runtime[d0]
                gain = saved / cost if cost > 0 else float("inf")
                if saved > 0 and gain > best_gain:
                    best, best_gain = t, gain
            if best is None:
                return degree
            old = degree[best.id]
            degree[best.id] = next(d for d in best.degrees(widest) if d > old)
            area += degree[best.id] * best.runtime[degree[best.id]] - old * best.runtime[old]


def _critical_path(tasks: list[Task], degree: dict[str, int], remaining: dict[str, float],
                   now: float) -> tuple[float, list[Task]]:
    """Length of the longest chain of unstarted tasks (from now, counting releases and what is still
    running), and the unstarted tasks on it."""
    by_id = {t.id: t for t in tasks}
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for t in topological(tasks):
        start, came = max(t.release - now, 0.0), None
        for d in t.deps:
            f = finish.get(d, remaining.get(d, 0.0))
            if f > start:
                start, came = f, d
        finish[t.id] = start + t.runtime[degree[t.id]]
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
        level[t.id] = t.runtime[degree[t.id]] + max((level[c] for c in children[t.id]), default=0.0)
    return level


def topological(tasks: list[Task]) -> list[Task]:
    """Dependencies before dependents (dependencies outside `tasks` are already done or running)."""
    by_id = {t.id: t for t in tasks}
    order, seen = [], set()
    for root in tasks:
        stack = [(root, False)]
        while stack:
            t, expanded = stack.pop()
            if t.id in seen:
                continue
            if expanded:
                seen.add(t.id)
                order.append(t)
                continue
            stack.append((t, True))
            stack.extend((by_id[d], False) for d in t.deps if d in by_id and d not in seen)
    return order


def _first_fit_time(degree: int, free: dict[int, list[int]], ends: list[tuple[float, int, int]],
                    reserved: dict[int, float], now: float) -> tuple[int | None, float]:
    """The node that will first have `degree` idle GPUs (not counting reserved nodes), and when."""
    best: tuple[int | None, float] = (None, float("inf"))
    ends = sorted(ends)
    for node, idle in free.items():
        if node in reserved:
            continue
        count, at = len(idle), now
        for end, n, used in ends:
            if count >= degree:
                break
            if n == node:
                count, at = count + used, end
        if count >= degree and at < best[1]:
            best = (node, at)
    return best


POLICIES: dict[str, type] = {p.name: p for p in (Moldable, Fifo1, WholeNode)}
DEFAULT = Moldable.name


def policy(name: str) -> Policy:
    return POLICIES[name]()
