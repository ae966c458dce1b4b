"""Discrete-event simulator: runs a scheduling policy on a workload in virtual time.

Time jumps from event to event (a task ends, a stopped task reaches its step boundary, a task is
released); at each one the policy is asked what to start, and with `preempt` what to stop, exactly as
the Ray driver asks it. A stopped task ends a part at its next step boundary and waits again with its
steps done; its next part pays the restart. Workloads and schedules use the JSON formats of DESIGN.md
(`sakuga bench schedule`); the time each policy call took is kept (`Schedule.decisions`) for the bench.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field, replace

from .tasks import Policy, Running, Start, View
from .workload import Workload

_EPS = 1e-9


@dataclass(frozen=True)
class Assignment:
    id: str
    node: int
    gpus: tuple[int, ...]
    start: float
    end: float
    steps: tuple[int, int] | None = None     # the denoising steps this part ran (preempted tasks only)

    def to_json(self) -> dict:
        out = {"id": self.id, "node": self.node, "gpus": list(self.gpus), "start": self.start, "end": self.end}
        if self.steps is not None:
            out["steps"] = list(self.steps)
        return out


@dataclass(frozen=True)
class Schedule:
    policy: str
    makespan: float
    assignments: list[Assignment]
    decisions: list[float] = field(default_factory=list, compare=False)   # seconds per policy round

    def to_json(self) -> dict:
        return {"policy": self.policy, "makespan": self.makespan,
                "assignments": [a.to_json() for a in self.assignments]}


class _Run:
    """The simulation's state: what waits, what is ready, what runs, what each task ran so far."""

    def __init__(self, workload: Workload, policy: Policy, busy: tuple[Running, ...] = ()):
        self.w, self.policy = workload, policy
        self.order = {t.id: i for i, t in enumerate(workload.tasks)}
        self.task = {t.id: t for t in workload.tasks}          # current: steps done, times preempted
        self.users: dict[str, list[str]] = {t.id: [] for t in workload.tasks}
        for t in workload.tasks:
            for d in t.deps:
                self.users[d].append(t.id)
        self.deps_left = {t.id: len(t.deps) for t in workload.tasks}
        self.waiting = set(self.task)
        self.ready: set[str] = set()
        self.releases: list[tuple[float, str]] = []
        self.running: dict[str, Running] = {}
        self.stop_step: dict[str, int] = {}
        self.version: dict[str, int] = {}
        self.events: list[tuple[float, int, str, int]] = []
        self.parts: dict[str, list[Assignment]] = {}
        self.free = {n: list(range(g)) for n, g in enumerate(workload.cluster.gpus)}
        self.seq = 0
        self.now = 0.0
        self.busy = {r.task.id for r in busy}    # GPUs held from the start by work outside the workload
        for r in busy:
            for g in r.gpus:
                self.free[r.node].remove(g)
            self.running[r.task.id] = r
            self._schedule_end(r.task.id)
        for t in workload.tasks:
            if not t.deps:
                self._unblocked(t.id)

    def _unblocked(self, tid: str) -> None:
        if self.task[tid].release <= self.now + _EPS:
            self.ready.add(tid)
        else:
            heapq.heappush(self.releases, (self.task[tid].release, tid))

    def view(self, preempt: bool) -> View:
        ready = [self.task[i] for i in sorted(self.ready, key=self.order.__getitem__)]
        pending = [self.task[i] for i in sorted(self.waiting - self.ready, key=self.order.__getitem__)]
        return View(self.now, self.w.cluster, {n: list(g) for n, g in self.free.items()}, ready, pending,
                    list(self.running.values()), preempt=preempt)

    def start(self, s: Start) -> None:
        task = self.task.get(s.task)
        if task is None or s.task not in self.ready or s.degree not in task.runtime \
                or len(set(s.gpus)) != s.degree or not set(s.gpus) <= set(self.free.get(s.node, ())):
            raise RuntimeError(f"policy {self.policy.name} made an invalid start {s} at t={self.now}")
        for g in s.gpus:
            self.free[s.node].remove(g)
        self.ready.discard(s.task)
        self.waiting.discard(s.task)
        self.running[s.task] = Running(task, s.node, s.gpus, self.now, self.now + task.time(s.degree))
        self._schedule_end(s.task)

    def stop(self, tid: str) -> None:
        r = self.running.get(tid)
        if r is None or r.stopping or tid in self.busy:
            return
        step, at = r.next_boundary(self.now)
        if step >= r.task.steps:
            return        # its last step: it ends then anyway
        self.running[tid] = replace(r, end=at, stopping=True)
        self.stop_step[tid] = step
        self._schedule_end(tid)

    def _schedule_end(self, tid: str) -> None:
        self.version[tid] = self.version.get(tid, 0) + 1
        self.seq += 1
        heapq.heappush(self.events, (self.running[tid].end, self.seq, tid, self.version[tid]))

    def advance(self) -> bool:
        """To the next event; False when there is none."""
        upcoming = [self.events[0][0]] if self.events else []
        upcoming += [self.releases[0][0]] if self.releases else []
        if not upcoming:
            return False
        self.now = min(upcoming)
        while self.events and self.events[0][0] <= self.now + _EPS:
            _, _, tid, version = heapq.heappop(self.events)
            if version == self.version[tid]:
                self._ended(tid)
        while self.releases and self.releases[0][0] <= self.now + _EPS:
            self.ready.add(heapq.heappop(self.releases)[1])
        return True

    def _ended(self, tid: str) -> None:
        r = self.running.pop(tid)
        self.free[r.node].extend(r.gpus)
        if tid in self.busy:
            return
        task = r.task
        if r.stopping:
            step = self.stop_step.pop(tid)
            self._part(r, step)
            self.task[tid] = replace(task, done=step, preempted=task.preempted + 1)
            self.waiting.add(tid)
            self.ready.add(tid)
            return
        self._part(r, task.steps)
        for u in self.users[tid]:
            self.deps_left[u] -= 1
            if self.deps_left[u] == 0:
                self._unblocked(u)

    def _part(self, r: Running, step: int) -> None:
        self.parts.setdefault(r.task.id, []).append(
            Assignment(r.task.id, r.node, r.gpus, r.start, r.end, (r.task.done, step)))

    def schedule(self, decisions: list[float]) -> Schedule:
        out = []
        for parts in self.parts.values():
            if len(parts) == 1:
                out.append(replace(parts[0], steps=None))
            else:
                out.extend(parts)
        out.sort(key=lambda a: (a.start, a.id))
        return Schedule(self.policy.name, max((a.end for a in out), default=0.0), out, decisions)


def simulate(workload: Workload, policy: Policy, *, preempt: bool = False,
             busy: tuple[Running, ...] = ()) -> Schedule:
    """`busy`: GPUs held from time 0 until each one's `end` by work that is not the workload's (the
    policy sees it running and may not stop it); the schedule has only the workload's tasks."""
    run = _Run(workload, policy, busy)
    decisions: list[float] = []
    while run.waiting or run.running:
        view = run.view(preempt)
        started = time.perf_counter()       # the policy's own time, not the simulator's bookkeeping
        starts = policy.decide(view)
        spent = time.perf_counter() - started
        for s in starts:
            run.start(s)
        if preempt and run.running:
            view = run.view(preempt)
            started = time.perf_counter()
            stops = policy.stops(view)
            spent += time.perf_counter() - started
            for s in stops:
                run.stop(s.task)
        decisions.append(spent)
        if not run.advance():
            if run.waiting:
                raise RuntimeError(f"policy {policy.name} left {len(run.waiting)} tasks unscheduled "
                                   "with the cluster idle")
            break
    return run.schedule(decisions)
