"""What the farm loop needs of a worker pool, without Ray: the `Slot` (one GPU, or a CPU lane), the `Pool` protocol
and the two ways a worker call fails. `pool.py` implements it on Ray actors; tests implement it in
plain Python to drive the loop without a cluster."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.bank import CharacterBank
from farm.job.checkpoints import StepOrder
from farm.job.results import Checkpointed, SegmentResult, ShareDone, StoppedAt
from farm.stages.stage import Stage
from storyboard.plan import Segment
from storyboard.presets import Preset

from .gang import GangSpec


@dataclass
class Slot:
    node: int
    gpu: int
    node_id: str
    group: object = None               # the node's placement group (this slot is bundle `gpu`)
    actor: object = None
    name: str = ""
    gang: str | None = None            # tag of the torch.distributed group the actor is in
    busy: bool = False
    starts: int = 0
    resident: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))   # job → failures
    cpu: bool = False                  # a CPU lane of the farm (CPU stages), not a GPU worker

    @property
    def key(self) -> tuple[int, int]:
        return (self.node, self.gpu)

    def __hash__(self) -> int:
        return hash(self.key)


class WorkerDied(RuntimeError):
    """The worker process is gone (killed, crashed, or `node_lost`: its node left the cluster)."""

    def __init__(self, message: str, *, node_lost: bool = False):
        super().__init__(message)
        self.node_lost = node_lost


class WorkerFailed(RuntimeError):
    """The worker's call raised; `out_of_memory` when the segment did not fit its accelerator."""

    def __init__(self, message: str, *, out_of_memory: bool = False):
        super().__init__(message)
        self.out_of_memory = out_of_memory


Call = Any   # a handle of one running worker call (a Ray ObjectRef in the real pool)


class Pool(Protocol):
    slots: list[Slot]
    nodes: list[int]                   # GPUs per node
    on_event: Callable[..., None]      # (kind, detail, worker): a worker started, was lost, a gang formed

    def free(self) -> dict[int, list[int]]: ...
    def resident(self) -> dict[tuple[int, int], set[str]]: ...
    def slot(self, node: int, gpu: int) -> Slot: ...
    def usable(self, slot: Slot, job: str) -> bool: ...
    def gang(self, slots: list[Slot]) -> list[tuple[Slot, GangSpec]]: ...   # WorkerDied if rank 0 is gone
    def replace(self, slot: Slot, why: str) -> None: ...
    def share(self, value: Any) -> Any: ...   # one copy for many calls (the object store)
    def render(self, slot: Slot, preset: Preset, seg: Segment, images: Any, bank: Any, offload: bool,
               gang: GangSpec | None, keep_latents: bool, steps: StepOrder | None = None) -> Call: ...
    def stop(self, call: Call) -> None: ...   # ask a render to stop at its next step boundary (StoppedAt)
    def stage(self, slot: Slot | None, stage: Stage, inputs: Any) -> Call: ...   # None: on a CPU lane
    def cancel(self, call: Call) -> None: ...   # a CPU lane's call past its deadline
    def wait(self, calls: Sequence[Call], timeout: float) -> list[Call]: ...
    # a render call answers Checkpointed (and goes on) any number of times, then SegmentResult, ShareDone
    # or StoppedAt; WorkerDied / WorkerFailed
    def result(self, call: Call) -> Checkpointed | SegmentResult | ShareDone | StoppedAt: ...
    def encode_bank(self, preset: Preset, wanted: list[tuple[str, str, bytes]],
                    have: list[tuple[str, str, str]]) -> tuple[str | None, CharacterBank] | None: ...
    def refresh(self) -> None: ...   # nodes that joined get slots, nodes that left lose theirs
    def node_alive(self, slot: Slot) -> bool: ...
    def shutdown(self) -> None: ...
