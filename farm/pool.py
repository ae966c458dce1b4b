"""The GPU worker pool: one `SegmentWorker` actor per GPU slot (node, GPU index), pinned to its node.

Slots are what the scheduling policy sees. A slot whose actor dies is refilled with a fresh actor;
failures are counted per slot and job, so a GPU that fails a job twice is avoided for that job.
"""
from __future__ import annotations

import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .worker import SegmentWorker

AVOID_AFTER = 2     # failures of one slot in one job


@dataclass
class Slot:
    node: int
    gpu: int
    node_id: str
    actor: object = None
    name: str = ""
    busy: bool = False
    starts: int = 0
    resident: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))   # job → failures

    @property
    def key(self) -> tuple[int, int]:
        return (self.node, self.gpu)


def gpu_nodes() -> list[tuple[str, int]]:
    """(node id, GPU count) of the cluster's live nodes with GPUs, in a stable order."""
    nodes = [(n["NodeID"], int(n["Resources"].get("GPU", 0))) for n in ray.nodes() if n.get("Alive")]
    return sorted((n for n in nodes if n[1] > 0), key=lambda n: n[0])


class WorkerPool:
    def __init__(self, gpus: int, *, on_event=lambda kind, detail, worker=None: None, threads: int | None = None):
        self.on_event = on_event
        self.token = secrets.token_hex(2)
        self.generation = 0
        self.slots: list[Slot] = []
        per_node = []                      # (node id, GPUs taken there), until `gpus` are taken
        for node_id, count in gpu_nodes():
            take = min(count, gpus - sum(n for _, n in per_node))
            if take > 0:
                per_node.append((node_id, take))
        self.nodes = [n for _, n in per_node]
        # logical GPUs on a CPU-only machine share its cores instead of each taking them all
        self.threads = threads or max(1, (os.cpu_count() or 1) // max(self.nodes, default=1))
        for index, (node_id, count) in enumerate(per_node):
            for g in range(count):
                slot = Slot(index, g, node_id)
                self._start(slot)
                self.slots.append(slot)

    def _start(self, slot: Slot) -> None:
        self.generation += 1
        slot.starts += 1
        # the name users see (manifest, ledger); a replacement gets a suffix
        slot.name = f"n{slot.node}-gpu{slot.gpu}" + (f"#{slot.starts}" if slot.starts > 1 else "")
        slot.actor = SegmentWorker.options(
            num_gpus=1, name=f"sakuga-{self.token}-{self.generation}", namespace="sakuga",
            scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=False),
        ).remote(slot.name, threads=self.threads)
        slot.resident = set()
        slot.busy = False
        self.on_event("worker_started", f"node {slot.node} gpu {slot.gpu}", slot.name)

    def replace(self, slot: Slot, why: str) -> None:
        """The slot's actor died or hung: kill what is left of it and start a fresh one."""
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:   # noqa: BLE001 - already gone
            pass
        self.on_event("worker_lost", why, slot.name)
        self._start(slot)

    def slot(self, node: int, gpu: int) -> Slot:
        return next(s for s in self.slots if s.node == node and s.gpu == gpu)

    def usable(self, slot: Slot, job: str) -> bool:
        return slot.failures[job] < AVOID_AFTER

    def free(self) -> dict[int, list[int]]:
        free: dict[int, list[int]] = {n: [] for n in range(len(self.nodes))}
        for s in self.slots:
            if not s.busy:
                free[s.node].append(s.gpu)
        return free

    def resident(self) -> dict[tuple[int, int], set[str]]:
        return {s.key: s.resident for s in self.slots}

    def pid(self, slot: Slot) -> int:
        return ray.get(slot.actor.where.remote())["pid"]

    def shutdown(self) -> None:
        for s in self.slots:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:   # noqa: BLE001 - already gone
                pass
