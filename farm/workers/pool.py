"""The GPU worker pool: one `SegmentWorker` actor per GPU slot (node, GPU index).

Each node's GPUs are reserved as one STRICT_PACK placement group (a bundle per GPU, pinned to the
node by its id label), and each slot's actor lives in its bundle: gangs are formed from slots of one
node. Slots are what the scheduling policy sees. A slot whose actor dies is refilled with a fresh
actor in the same bundle; failures are counted per slot and job, so a GPU that fails a job twice is
avoided for that job.
"""
from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from engine.bank import CharacterBank
from farm.job.checkpoints import StepOrder
from farm.job.results import Checkpointed, SegmentResult, ShareDone, StoppedAt

from .actor import SegmentWorker, cpu_stage
from .control import CHAOS_PREFIX
from .engines import OutOfMemory
from .gang import GangSpec, specs
from .slots import Slot, WorkerDied, WorkerFailed

logger = logging.getLogger(__name__)

AVOID_AFTER = 2     # failures of one slot in one job


def gpu_nodes() -> list[tuple[str, int]]:
    """(node id, GPU count) of the cluster's live nodes with GPUs, in a stable order."""
    nodes = [(n["NodeID"], int(n["Resources"].get("GPU", 0))) for n in ray.nodes() if n.get("Alive")]
    return sorted((n for n in nodes if n[1] > 0), key=lambda n: n[0])


class WorkerPool:
    def __init__(self, gpus: int, *, on_event=lambda kind, detail, worker=None: None, threads: int | None = None,
                 elastic: bool = False):
        """`gpus` workers now; with `elastic` (the farm service), every GPU node that joins the cluster
        later gets workers too (`refresh`). A node that leaves takes its slots with it, either way."""
        self.on_event = on_event
        self.elastic = elastic
        self.token = secrets.token_hex(2)
        self.generation = 0
        self.slots: list[Slot] = []
        self.nodes: list[int] = []             # GPUs per node index (0 once a node has left)
        self.node_ids: list[str] = []
        self.groups: list = []
        self.pending: dict[str, tuple] = {}    # joining nodes: (placement group, GPUs, its ready() ref)
        self.streams: dict[ray.ObjectRefGenerator, tuple[Slot, str]] = {}   # render calls running: slot, token
        per_node = []                      # (node id, GPUs taken there), until `gpus` are taken
        for node_id, count in gpu_nodes():
            take = min(count, gpus - sum(n for _, n in per_node))
            if take > 0:
                per_node.append((node_id, take))
        # logical GPUs on a CPU-only machine share its cores instead of each taking them all
        self.threads = threads or int(os.environ.get("SAKUGA_WORKER_THREADS", 0)) or max(
            1, (os.cpu_count() or 1) // max((n for _, n in per_node), default=1))
        groups = [_node_group(node_id, count) for node_id, count in per_node]
        try:
            ray.get([g.ready() for g in groups], timeout=120)
        except ray.exceptions.GetTimeoutError:
            for g in groups:
                remove_placement_group(g)
            raise RuntimeError(f"could not reserve {gpus} GPUs on the cluster within 120 s (held by other work?)") from None
        for (node_id, count), group in zip(per_node, groups):
            self._add_node(node_id, count, group)
        self.last_refresh = time.time()

    def _add_node(self, node_id: str, count: int, group) -> None:
        index = len(self.nodes)
        self.nodes.append(count)
        self.node_ids.append(node_id)
        self.groups.append(group)
        for g in range(count):
            slot = Slot(index, g, node_id, group)
            self._start(slot)
            self.slots.append(slot)

    def refresh(self, every_s: float = 5.0) -> None:
        """Take in the GPU nodes that joined (elastic pools), let go of the ones that left."""
        if time.time() - self.last_refresh < every_s:
            return
        self.last_refresh = time.time()
        alive = dict(gpu_nodes())
        for index, node_id in enumerate(self.node_ids):
            if self.nodes[index] and node_id not in alive:
                self._lose_node(index, "the node left the cluster")
        if not self.elastic:
            return
        for node_id, count in alive.items():
            if node_id not in self.node_ids and node_id not in self.pending:
                group = _node_group(node_id, count)
                self.pending[node_id] = (group, count, group.ready())   # one ready() ref: each call makes a task
        for node_id, (group, count, ready_ref) in list(self.pending.items()):
            ready, _ = ray.wait([ready_ref], timeout=0)
            if ready:
                del self.pending[node_id]
                self._add_node(node_id, count, group)
                self._event("node_joined", f"{count} GPUs", node_id[:12])

    def node_alive(self, slot: Slot) -> bool:
        return slot.node_id in dict(gpu_nodes())

    def _lose_node(self, index: int, why: str) -> None:
        for slot in [s for s in self.slots if s.node == index]:
            self.slots.remove(slot)
            self._event("worker_lost", why, slot.name)
        self.nodes[index] = 0
        try:
            remove_placement_group(self.groups[index])
        except Exception:   # noqa: BLE001 - gone with its node
            pass

    def _start(self, slot: Slot) -> None:
        self.generation += 1
        slot.starts += 1
        # the name users see (manifest, ledger); a replacement gets a suffix
        slot.name = f"n{slot.node}-gpu{slot.gpu}" + (f"#{slot.starts}" if slot.starts > 1 else "")
        slot.actor = SegmentWorker.options(
            num_gpus=1, name=f"sakuga-{self.token}-{self.generation}", namespace="sakuga",
            scheduling_strategy=PlacementGroupSchedulingStrategy(slot.group, placement_group_bundle_index=slot.gpu),
        ).remote(slot.name, threads=self.threads, env={k: v for k, v in os.environ.items() if k.startswith(CHAOS_PREFIX)})
        slot.resident = set()
        slot.gang = None
        slot.busy = False
        self._event("worker_started", f"node {slot.node} gpu {slot.gpu}", slot.name)

    def _event(self, kind: str, detail: str, worker: str) -> None:
        logger.debug("%s %s: %s", kind, worker, detail)
        self.on_event(kind, detail, worker)

    def replace(self, slot: Slot, why: str) -> None:
        """The slot's actor died or hung: kill what is left of it and start a fresh one (none when its
        node has left: the node's slots go)."""
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:   # noqa: BLE001 - already gone
            pass
        self.streams = {call: held for call, held in self.streams.items() if held[0] is not slot}
        if slot not in self.slots:
            return
        if not self.node_alive(slot):
            self._lose_node(slot.node, f"{why}; its node left the cluster")
            return
        self._event("worker_lost", why, slot.name)
        self._start(slot)

    def gang(self, slots: list[Slot], timeout_s: float = 30.0) -> list[tuple[Slot, GangSpec]]:
        """Each slot with its place in a gang of all of them (in GPU order: ranks stay stable). Slots
        still together in a group from earlier keep it; otherwise rank 0 names a new rendezvous."""
        slots = sorted(slots, key=lambda s: s.gpu)
        tag = slots[0].gang
        if tag is not None and all(s.gang == tag for s in slots) and sum(s.gang == tag for s in self.slots) == len(slots):
            return list(zip(slots, specs(tag, len(slots), "", 0)))
        try:
            host, port = ray.get(slots[0].actor.address.remote(), timeout=timeout_s)
        except (RayActorError, GetTimeoutError):
            raise WorkerDied(f"{slots[0].name} did not answer to host a gang") from None
        self.generation += 1
        tag = "+".join(s.name for s in slots) + f"@{self.token}-{self.generation}"
        for s in slots:
            s.gang = tag
        self._event("gang_formed", f"{len(slots)} GPUs on node {slots[0].node}, rank 0 at {host}:{port}", tag)
        return list(zip(slots, specs(tag, len(slots), host, port)))

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

    # -- calls: the loop sees handles, results and two kinds of failure, never Ray's exceptions ------

    def share(self, value: Any) -> Any:
        return ray.put(value)

    def render(self, slot: Slot, preset, seg, images, bank, offload: bool, gang: GangSpec | None,
               keep_latents: bool = False, steps: StepOrder | None = None) -> ray.ObjectRefGenerator:
        """A streaming call: `result` answers each checkpoint, then the result. The checkpoint to resume
        goes as an argument of its own, so a shared copy (an ObjectRef) reaches the worker as bytes."""
        token = secrets.token_hex(8)
        resume = steps.resume if steps is not None else None
        order = replace(steps, resume=None) if steps is not None else None
        call = slot.actor.render.remote(preset, seg, images, bank, offload, gang, keep_latents, order, resume, token)
        self.streams[call] = (slot, token)
        return call

    def stop(self, call: ray.ObjectRefGenerator) -> None:
        """Ask a render to stop at its next step boundary; not waited for (it answers StoppedAt)."""
        if call in self.streams:
            slot, token = self.streams[call]
            slot.actor.stop.remote(token)

    def stage(self, slot: Slot | None, stage, inputs) -> ray.ObjectRef:
        """A delivery stage on `slot`'s worker, or (None) as a CPU task anywhere in the cluster."""
        if slot is None:
            return cpu_stage.remote(stage, inputs)
        return slot.actor.stage.remote(stage, inputs)

    def cancel(self, call: ray.ObjectRef) -> None:
        try:
            ray.cancel(call, force=True)
        except Exception:   # noqa: BLE001 - finished or gone meanwhile
            pass

    def wait(self, calls: Sequence[ray.ObjectRef], timeout: float) -> list[ray.ObjectRef]:
        done, _ = ray.wait(list(calls), num_returns=1, timeout=timeout)
        return done

    def result(self, call) -> Checkpointed | SegmentResult | ShareDone | StoppedAt:
        """The call's next answer: a render's next checkpoint (it goes on), else its last answer."""
        try:
            if not isinstance(call, ray.ObjectRefGenerator):
                return ray.get(call)
            message = ray.get(next(call))
        except StopIteration:
            message = None
        except RayActorError as e:
            self.streams.pop(call, None)
            raise WorkerDied(_last_line(e), node_lost=_node_died(e)) from None
        except RayTaskError as e:
            self.streams.pop(call, None)
            raise WorkerFailed(_last_line(e), out_of_memory=isinstance(e.cause, OutOfMemory)) from None
        if not isinstance(message, Checkpointed):
            self.streams.pop(call, None)
        if message is None:
            raise WorkerFailed("the worker's render ended without a result")
        return message

    def encode_bank(self, preset, wanted, have) -> tuple[str | None, CharacterBank] | None:
        """The character bank from the first worker; None when the model does not load there (its
        segments then fail, retry and are reported as usual)."""
        try:
            return ray.get(self.slots[0].actor.bank.remote(preset, wanted, have))
        except (RayActorError, RayTaskError):
            return None

    def pid(self, slot: Slot) -> int:
        return ray.get(slot.actor.where.remote())["pid"]

    def shutdown(self) -> None:
        for group, _, _ in self.pending.values():
            remove_placement_group(group)
        for s in self.slots:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:   # noqa: BLE001 - already gone
                pass
        for g in self.groups:
            try:
                remove_placement_group(g)
            except Exception:   # noqa: BLE001 - removed with its node already
                pass


def _node_group(node_id: str, count: int):
    """The node's GPUs as one STRICT_PACK placement group pinned to it by its id label."""
    return placement_group([{"GPU": 1}] * count, strategy="STRICT_PACK",
                           bundle_label_selector=[{"ray.io/node-id": node_id}] * count)


def _node_died(error: Exception) -> bool:
    """Whether an actor died with its node (Ray says so in the error), not by itself."""
    text = str(error).lower()
    return "node" in text and any(w in text for w in ("node has died", "node died", "node is dead",
                                                       "raylet", "node was terminated", "node that was"))


def _last_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1][:500] if text else type(error).__name__
