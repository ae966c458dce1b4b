"""Scheduling workloads (DESIGN.md's JSON format): read, checked field by field, as policy tasks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from storyboard.errors import InputError

from .tasks import Cluster, Task

MAX_TASKS = 100_000
MAX_GPUS = 65_536


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
    steps: int = Field(8, ge=1, le=1000)


class PreemptSpec(_Strict):
    restart_s: float = Field(10.0, ge=0.0, le=1e6)


class WorkloadSpec(_Strict):
    cluster: ClusterSpec
    preempt: PreemptSpec = Field(default_factory=PreemptSpec)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)
    family: str = ""
    description: str = ""


@dataclass(frozen=True)
class Workload:
    cluster: Cluster
    tasks: list[Task]
    family: str = ""
    restart_s: float = 10.0


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
    restart = spec.preempt.restart_s
    tasks = [Task(t.id, dict(sorted(t.runtime.items())), tuple(t.deps), t.job, t.priority, t.release, t.model,
                  steps=t.steps, restart_s=restart) for t in spec.tasks]
    cycle = _cycle(tasks)
    if cycle:
        i = ids[cycle[0]]
        raise InputError([doc.problem(("tasks", i, "deps"), "dependency cycle: " + " → ".join(cycle))])
    return Workload(Cluster.uniform(spec.cluster.nodes, spec.cluster.gpus_per_node), tasks, spec.family, restart)


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

