"""Scheduling policies: pure functions from (waiting work, cluster state, cost model) to starts and stops.

The discrete-event simulator (`sim.py`) and the Ray driver call the same policy objects, so what
`sakuga bench schedule` measures is what production runs. A policy never sees Ray: only tasks with
their runtime per sequence-parallel degree (`tasks.py`), the free GPUs of each node and what is
running. The default is `moldable.py`; the two baselines here are what it is measured against.
"""
from __future__ import annotations

from .moldable import Moldable
from .tasks import Cluster, Policy, Running, Start, Stop, Task, View, best_fit, topological

__all__ = ["Cluster", "Policy", "Running", "Start", "Stop", "Task", "View", "topological", "Moldable",
           "Fifo1", "WholeNode", "POLICIES", "DEFAULT", "policy"]


def _in_release_order(view: View, degree) -> list[Start]:
    """Start ready tasks in release order at `degree(task)` until one does not fit (no backfilling)."""
    free = {n: list(g) for n, g in view.free.items()}
    starts = []
    for task in sorted(view.ready, key=lambda t: t.release):
        start = best_fit(task, degree(task), free, view.resident)
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


POLICIES: dict[str, type] = {p.name: p for p in (Moldable, Fifo1, WholeNode)}
DEFAULT = Moldable.name


def policy(name: str) -> Policy:
    return POLICIES[name]()
