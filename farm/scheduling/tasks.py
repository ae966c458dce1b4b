"""What scheduling policies see and say: tasks, the cluster, what runs, starts and stops.

A task is one segment (or delivery stage) with its runtime per sequence-parallel degree; a running
task can be stopped at a denoising step boundary (its state is checkpointed) and resumed later, at any
degree, for what is left of its steps plus a restart.
"""
from __future__ import annotations

import math
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
    end: float                       # estimated (exact in the simulator); its stopping boundary once stopping
    stopping: bool = False           # asked to stop at its next step boundary (the GPUs free at `end`)

    def next_boundary(self, now: float) -> tuple[int, float]:
        """The first step boundary after `now` (steps done then, when), by the task's even split of
        its steps over its runtime at this degree (after the restart, for a resumed part)."""
        t, degree = self.task, len(self.gpus)
        per_step = t.runtime[degree] / t.steps
        begin = self.start + (t.restart_s if t.done else 0.0)
        step = t.done + max(1, math.ceil((now - begin) / per_step - 1e-9))
        return min(step, t.steps), min(begin + (step - t.done) * per_step, self.end)


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


def best_fit(task: Task, degree: int, free: dict[int, list[int]], resident: Mapping[tuple[int, int], Iterable[str]],
             usable: Iterable[int] | None = None) -> Start | None:
    """Best fit: the node with the fewest free GPUs that still holds the gang (fragmenting nothing
    bigger), preferring GPUs that already hold the task's model; takes the GPUs out of `free`."""
    nodes = [n for n in (free if usable is None else usable) if len(free.get(n, ())) >= degree]
    if not nodes:
        return None

    def warm(n: int, g: int) -> bool:
        return bool(task.model) and task.model in resident.get((n, g), ())

    if task.model:
        node = min(nodes, key=lambda n: (len(free[n]), -sum(warm(n, g) for g in free[n]), n))
    else:
        node = min(nodes, key=lambda n: (len(free[n]), n))
    gpus = sorted(free[node], key=lambda g: (not warm(node, g), g))[:degree]
    for g in gpus:
        free[node].remove(g)
    return Start(task.id, node, tuple(sorted(gpus)))
