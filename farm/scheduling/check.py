"""What a schedule is worth and whether it is valid: the lower bound, a job's flow time against its
own bound, and DESIGN.md's validity rules (parts of preempted tasks included)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pydantic import Field, ValidationError

from storyboard.errors import InputError

from .sim import Assignment, Schedule
from .tasks import Task, topological
from .workload import MAX_GPUS, MAX_TASKS, TaskId, Workload, _Strict

_TOL = 1e-6   # seconds: schedules go through JSON and sums of floats


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


def urgent_job(workload: Workload) -> str | None:
    """The job of the highest priority, when it is above the rest (the one that should not wait)."""
    priorities = {t.job: t.priority for t in workload.tasks}
    if len(set(priorities.values())) < 2:
        return None
    return max(priorities, key=priorities.get)


def flow(workload: Workload, schedule: Schedule, job: str) -> dict[str, float]:
    """A job's flow time (its last end minus its release) and its standalone lower bound: the lower
    bound of the job alone on the whole cluster, counted from its release."""
    tasks = [t for t in workload.tasks if t.job == job]
    release = min(t.release for t in tasks)
    ids = {t.id for t in tasks}
    alone = replace(workload, tasks=[replace(t, release=t.release - release) for t in tasks])
    last = max(a.end for a in schedule.assignments if a.id in ids)
    bound = lower_bound(alone)["lower_bound"]
    return {"flow": last - release, "standalone_bound": bound, "ratio": (last - release) / bound}


def check_schedule(workload: Workload, schedule: Schedule) -> list[str]:
    """Everything that makes a schedule invalid (DESIGN.md's definition); empty when valid."""
    tasks = {t.id: t for t in workload.tasks}
    problems = []
    parts: dict[str, list[Assignment]] = {}
    for a in schedule.assignments:
        parts.setdefault(a.id, []).append(a)
    problems += [f"{t} never runs" for t in tasks if t not in parts]
    ends: dict[str, float] = {}
    for tid, ps in parts.items():
        t = tasks.get(tid)
        if t is None:
            problems.append(f"{tid} is not in the workload")
            continue
        ps.sort(key=lambda a: a.start)
        problems += _parts(t, ps, workload)
        ends[tid] = ps[-1].end
    for tid, ps in parts.items():
        t = tasks.get(tid)
        for d in t.deps if t else ():
            if d in ends and ps[0].start + _TOL < ends[d]:
                problems.append(f"{tid} starts before its dependency {d} ends")
    busy: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    for a in schedule.assignments:
        for g in a.gpus:
            busy.setdefault((a.node, g), []).append((a.start, a.end, a.id))
    for (node, gpu), spans in busy.items():
        spans.sort()
        for (_, e0, i0), (s1, _, i1) in zip(spans, spans[1:]):
            if s1 + _TOL < e0:
                problems.append(f"node {node} GPU {gpu} runs {i0} and {i1} at once")
    return problems


def _parts(t: Task, parts: list[Assignment], workload: Workload) -> list[str]:
    """One task's assignments: one without `steps`, or parts whose steps tile [0, steps) in time order,
    each lasting its share of the runtime (plus the restart after the first)."""
    problems = []
    if len(parts) > 1 and any(a.steps is None for a in parts):
        return [f"{t.id} runs twice"]
    if parts[0].start + _TOL < t.release:
        problems.append(f"{t.id} starts before its release")
    covered = 0
    for i, a in enumerate(parts):
        degree = len(a.gpus)
        if degree not in t.runtime or len(set(a.gpus)) != degree:
            problems.append(f"{t.id} runs on {list(a.gpus)}: not a listed degree")
            continue
        if not 0 <= a.node < len(workload.cluster.gpus) or not all(0 <= g < workload.cluster.gpus[a.node] for g in a.gpus):
            problems.append(f"{t.id} runs on a GPU the cluster does not have")
        if a.steps is None:
            if abs((a.end - a.start) - t.runtime[degree]) > _TOL:
                problems.append(f"{t.id} lasts {a.end - a.start} s, not its runtime {t.runtime[degree]} s")
            continue
        first, last = a.steps
        if first != covered or not first < last <= t.steps:
            problems.append(f"{t.id} part {i} runs steps {list(a.steps)}: the parts must tile [0, {t.steps}) in order")
        covered = last
        least = t.runtime[degree] * (last - first) / t.steps + (workload.restart_s if i else 0.0)
        if a.end - a.start + _TOL < least:
            problems.append(f"{t.id} part {i} lasts {a.end - a.start:.3f} s, less than {least:.3f} s")
        if i and a.start + _TOL < parts[i - 1].end:
            problems.append(f"{t.id} part {i} starts before part {i - 1} ends")
    if parts[-1].steps is not None and covered != t.steps:
        problems.append(f"{t.id} runs steps [0, {covered}) of {t.steps}")
    return problems


class _AssignmentSpec(_Strict):
    id: TaskId
    node: int = Field(ge=0, le=MAX_GPUS)
    gpus: list[int] = Field(min_length=1, max_length=64)
    start: float = Field(ge=0.0, le=1e12)
    end: float = Field(ge=0.0, le=1e12)
    steps: tuple[int, int] | None = None


class _ScheduleSpec(_Strict):
    policy: str = Field("", max_length=300)
    makespan: float = Field(0.0, ge=0.0)
    assignments: list[_AssignmentSpec] = Field(max_length=10 * MAX_TASKS)


def load_schedule(path: Path):
    """Read a schedule (DESIGN.md's format: `bench schedule --json`) to check it against its workload."""
    from storyboard.adapters.yamlsource import load_yaml
    from storyboard.schema_errors import problems_from_validation

    doc = load_yaml(path)
    try:
        spec = _ScheduleSpec.model_validate(doc.data)
    except ValidationError as e:
        raise InputError(problems_from_validation(doc, e, _ScheduleSpec)) from None
    return Schedule(spec.policy, spec.makespan,
                    [Assignment(a.id, a.node, tuple(a.gpus), a.start, a.end, a.steps) for a in spec.assignments])
