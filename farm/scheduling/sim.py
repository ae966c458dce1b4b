"""Discrete-event simulator: runs a scheduling policy on a workload in virtual time.

Time jumps from event to event (a task ends, a task is released); at each one the policy is asked
what to start, exactly as the Ray driver asks it. Workloads and schedules use the JSON formats of
DESIGN.md (`sakuga bench schedule`).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from farm.scheduling.policy import Cluster, Policy, Running, Task, View, topological
from storyboard.errors import InputError

MAX_TASKS = 100_000
MAX_GPUS = 65_536
_EPS = 1e-9


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterSpec(_Strict):
    nodes: int = Field(ge=1, le=4096)
    gpus_per_node: int = Field(ge=1, le=64)


TaskId = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class TaskSpec(_Strict):
    id: TaskId
    job: str = Field("", max_length=300)
    priority: int = Field(0, ge=-1000, le=1000)
    release: float = Field(0.0, ge=0.0, le=1e9)
    deps: list[TaskId] = Field(default_factory=list, max_length=10_000)
    runtime: dict[int, Annotated[float, Field(gt=0.0, le=1e9)]] = Field(min_length=1, max_length=64)
    model: str = Field("", max_length=300)


class WorkloadSpec(_Strict):
    cluster: ClusterSpec
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)
    family: str = ""
    description: str = ""


@dataclass(frozen=True)
class Workload:
    cluster: Cluster
    tasks: list[Task]
    family: str = ""


@dataclass(frozen=True)
class Assignment:
    id: str
    node: int
    gpus: tuple[int, ...]
    start: float
    end: float

    def to_json(self) -> dict:
        return {"id": self.id, "node": self.node, "gpus": list(self.gpus), "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Schedule:
    policy: str
    makespan: float
    assignments: list[Assignment]

    def to_json(self) -> dict:
        return {"policy": self.policy, "makespan": self.makespan,
                "assignments": [a.to_json() for a in self.assignments]}


def load_workload(path: Path) -> Workload:
    """Read and check a workload file; every problem names its line and field."""
    from storyboard.adapters.yamlsource import (
        load_yaml,  # JSON is YAML: this keeps a line for every field
    )
    from storyboard.schema_errors import problems_from_validation

    doc = load_yaml(path)
    try:
        spec = WorkloadSpec.model_validate(doc.data)
    except ValidationError as e:
        raise InputError(problems_from_validation(doc, e, WorkloadSpec)) from None
    problems = []
    ids: dict[str, int] = {}
    widest = spec.cluster.gpus_per_node
    for i, t in enumerate(spec.tasks):
        if t.id in ids:
            problems.append(doc.problem(("tasks", i, "id"), f"task id {t.id!r} repeats task {ids[t.id]}"))
        ids.setdefault(t.id, i)
        bad = sorted(d for d in t.runtime if d < 1 or d > widest)
        if bad:
            problems.append(doc.problem(("tasks", i, "runtime"), f"degree {bad[0]} does not fit a node of "
                                        f"{widest} GPUs (a gang stays on one node)"))
    for i, t in enumerate(spec.tasks):
        for j, d in enumerate(t.deps):
            if d not in ids:
                problems.append(doc.problem(("tasks", i, "deps", j), f"unknown task {d!r}"))
            elif d == t.id:
                problems.append(doc.problem(("tasks", i, "deps", j), "a task cannot depend on itself"))
    if problems:
        raise InputError(problems)
    tasks = [Task(t.id, dict(sorted(t.runtime.items())), tuple(t.deps), t.job, t.priority, t.release, t.model)
             for t in spec.tasks]
    cycle = _cycle(tasks)
    if cycle:
        i = ids[cycle[0]]
        raise InputError([doc.problem(("tasks", i, "deps"), "dependency cycle: " + " → ".join(cycle))])
    return Workload(Cluster.uniform(spec.cluster.nodes, spec.cluster.gpus_per_node), tasks, spec.family)


def _cycle(tasks: list[Task]) -> list[str]:
    deps = {t.id: t.deps for t in tasks}
    state: dict[str, int] = {}       # 1 on the stack, 2 finished
    for root in deps:
        if root in state:
            continue
        stack = [(root, iter(deps[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(deps[child])))
                path.append(child)
    return []


def simulate(workload: Workload, policy: Policy) -> Schedule:
    cluster = workload.cluster
    tasks = {t.id: t for t in workload.tasks}
    order = {t.id: i for i, t in enumerate(workload.tasks)}
    waiting = dict(tasks)
    done: set[str] = set()
    running: dict[str, Running] = {}
    free = {n: list(range(g)) for n, g in enumerate(cluster.gpus)}
    events: list[tuple[float, str]] = []     # (end time, task id)
    assignments: list[Assignment] = []
    now = 0.0
    while waiting or running:
        ready = [t for t in waiting.values() if t.release <= now + _EPS and all(d in done for d in t.deps)]
        pending = [t for t in waiting.values() if t.id not in {r.id for r in ready}]
        ready.sort(key=lambda t: order[t.id])
        view = View(now, cluster, {n: list(g) for n, g in free.items()}, ready, pending, list(running.values()))
        ready_ids = {t.id for t in ready}
        for s in policy.decide(view):
            task = tasks[s.task]
            if s.task not in ready_ids or s.degree not in task.runtime or len(set(s.gpus)) != s.degree \
                    or not set(s.gpus) <= set(free[s.node]):
                raise RuntimeError(f"policy {policy.name} made an invalid start {s} at t={now}")
            ready_ids.discard(s.task)
            for g in s.gpus:
                free[s.node].remove(g)
            end = now + task.runtime[s.degree]
            running[s.task] = Running(task, s.node, s.gpus, now, end)
            del waiting[s.task]
            heapq.heappush(events, (end, s.task))
            assignments.append(Assignment(s.task, s.node, s.gpus, now, end))
        releases = [t.release for t in waiting.values() if t.release > now + _EPS]
        upcoming = [events[0][0]] if events else []
        upcoming += [min(releases)] if releases else []
        if not upcoming:
            if waiting:
                raise RuntimeError(f"policy {policy.name} left {len(waiting)} tasks unscheduled with the cluster idle")
            break
        now = min(upcoming)
        while events and events[0][0] <= now + _EPS:
            _, tid = heapq.heappop(events)
            r = running.pop(tid)
            free[r.node].extend(r.gpus)
            done.add(tid)
    makespan = max((a.end for a in assignments), default=0.0)
    return Schedule(policy.name, makespan, assignments)


def lower_bound(workload: Workload) -> dict[str, float]:
    """max(critical path at best degree, total best GPU-seconds / GPUs); the path counts releases."""
    widest = workload.cluster.widest
    finish: dict[str, float] = {}

    def best(t: Task) -> float:
        return min(t.runtime[d] for d in t.degrees(widest))

    for t in topological(workload.tasks):
        finish[t.id] = max([t.release] + [finish[d] for d in t.deps]) + best(t)
    critical = max(finish.values(), default=0.0)
    area = sum(min(d * t.runtime[d] for d in t.degrees(widest)) for t in workload.tasks) / workload.cluster.total
    return {"lower_bound": max(critical, area), "critical_path": critical, "area": area}


def check_schedule(workload: Workload, schedule: Schedule) -> list[str]:
    """Everything that makes a schedule invalid (DESIGN.md's definition); empty when valid."""
    tasks = {t.id: t for t in workload.tasks}
    problems = []
    seen: dict[str, Assignment] = {}
    for a in schedule.assignments:
        if a.id in seen:
            problems.append(f"{a.id} runs twice")
        seen[a.id] = a
    problems += [f"{t} never runs" for t in tasks if t not in seen]
    for a in schedule.assignments:
        t = tasks.get(a.id)
        if t is None:
            problems.append(f"{a.id} is not in the workload")
            continue
        degree = len(a.gpus)
        if degree not in t.runtime or len(set(a.gpus)) != degree:
            problems.append(f"{a.id} runs on {list(a.gpus)}: not a listed degree")
            continue
        if not 0 <= a.node < len(workload.cluster.gpus) or not all(0 <= g < workload.cluster.gpus[a.node] for g in a.gpus):
            problems.append(f"{a.id} runs on a GPU the cluster does not have")
        if abs((a.end - a.start) - t.runtime[degree]) > 1e-6:
            problems.append(f"{a.id} lasts {a.end - a.start} s, not its runtime {t.runtime[degree]} s")
        if a.start + 1e-6 < t.release:
            problems.append(f"{a.id} starts before its release")
        for d in t.deps:
            if d in seen and a.start + 1e-6 < seen[d].end:
                problems.append(f"{a.id} starts before its dependency {d} ends")
    busy: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    for a in schedule.assignments:
        for g in a.gpus:
            busy.setdefault((a.node, g), []).append((a.start, a.end, a.id))
    for (node, gpu), spans in busy.items():
        spans.sort()
        for (_, e0, i0), (s1, _, i1) in zip(spans, spans[1:]):
            if s1 + 1e-6 < e0:
                problems.append(f"node {node} GPU {gpu} runs {i0} and {i1} at once")
    return problems
