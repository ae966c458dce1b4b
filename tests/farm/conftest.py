"""Fixtures of the farm's tests: one local Ray per session, and a pool that needs no Ray."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from farm.job.results import SegmentResult, ShareDone
from farm.media.encode import encode_mp4_bytes, png_bytes
from farm.stages.work import Upscalers, run_stage
from farm.workers.gang import specs
from farm.workers.slots import Slot, WorkerDied, WorkerFailed


@pytest.fixture(scope="session")
def ray_cluster(sakuga_cache):
    """One local Ray per test session, with 8 logical GPUs on the CPU."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, num_gpus=8, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


def noop_plan(tmp_path, title: str, shots: int = 2):
    """The plan of a storyboard of `shots` one-segment shots of the `noop` preset, 64x64."""
    from storyboard.load import load
    from storyboard.plan import build_plan

    lines = "".join(f"      - {{id: s{i}, frames: 17, prompt: shot {i}}}\n" for i in range(shots))
    path = tmp_path / f"{title}.yaml"
    path.write_text(f"sakuga: 1\ntitle: {title}\nmodel: noop\noutput: {{width: 64, height: 64, fps: 16}}\n"
                    f"scenes:\n  - id: one\n    shots:\n{lines}")
    return build_plan(load(path))


@pytest.fixture(name="plan_of")
def plan_of_fixture():
    """`plan_of(tmp_path, title, shots=2)`: see noop_plan."""
    return noop_plan


@pytest.fixture(name="FakePool")
def fake_pool_class():
    """The `farm.workers.slots.Pool` protocol in plain Python (see FakePool)."""
    return FakePool


@dataclass(eq=False)   # a handle: each call is its own
class FakeCall:
    slot: Slot
    seg: object
    rank: int
    offload: bool
    inputs: object = None       # a stage's input clips
    steps: object = None        # a render's StepOrder (checkpoint policy, the checkpoint to resume)


class FakePool:
    """Slots on `nodes`; each render call answers at once as `script[segment id]` says for that try:
    "ok", "die" (the worker process is gone), "error", "oom". Stages (on a slot, or None: a CPU lane)
    really run, in this process, when "ok"."""

    def __init__(self, nodes: list[int], script: dict[str, list[str]] | None = None):
        self.nodes = nodes
        self.slots = [Slot(n, g, f"node{n}", name=f"n{n}-gpu{g}") for n, count in enumerate(nodes) for g in range(count)]
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.on_event = lambda kind, detail, worker=None: None
        self.replaced: list[str] = []
        self.calls: list[FakeCall] = []
        self.stops: list[FakeCall] = []
        self.shut = False
        self.tags = itertools.count()
        self.upscalers = Upscalers()

    def free(self):
        free = {n: [] for n in range(len(self.nodes))}
        for s in self.slots:
            if not s.busy:
                free[s.node].append(s.gpu)
        return free

    def resident(self):
        return {s.key: s.resident for s in self.slots}

    def slot(self, node, gpu):
        return next(s for s in self.slots if s.key == (node, gpu))

    def usable(self, slot, job):
        return slot.failures[job] < 2

    def gang(self, slots):
        return list(zip(sorted(slots, key=lambda s: s.gpu), specs(f"g{next(self.tags)}", len(slots), "", 0)))

    def replace(self, slot, why):   # like the real pool: a fresh worker, with a new name, in the same slot
        self.replaced.append(slot.name)
        slot.starts += 1
        slot.name = f"n{slot.node}-gpu{slot.gpu}#{slot.starts + 1}"
        slot.busy = False
        self.on_event("worker_lost", why, slot.name)

    def share(self, value):
        return value

    def render(self, slot, preset, seg, images, bank, offload, gang, keep_latents=False, steps=None):
        call = FakeCall(slot, seg, gang.rank if gang else 0, offload, steps=steps)
        self.calls.append(call)
        return call

    def stop(self, call):
        self.stops.append(call)

    def stage(self, slot, stage, inputs):
        call = FakeCall(slot or Slot(0, 0, "cpu", name="cpu", cpu=True), stage, 0, False, inputs)
        self.calls.append(call)
        return call

    def cancel(self, call):
        pass

    def wait(self, calls, timeout):
        return list(calls)[:1]

    def result(self, call):
        plan = self.script.get(call.seg.id) or ["ok"]
        what = plan[0]
        if call.rank == 0 and len(plan) > 1:
            plan.pop(0)
        if what == "die":
            raise WorkerDied(f"{call.slot.name} died")
        if what in ("error", "oom"):
            raise WorkerFailed(f"{what} on {call.slot.name}", out_of_memory=what == "oom")
        if call.rank:
            return ShareDone(0.0, 0.01, call.slot.name, call.slot.node_id)
        if call.inputs is not None:
            return run_stage(call.seg, call.inputs, self.upscalers, call.slot.name, call.slot.node_id)
        seg = call.seg
        frames = np.full((seg.frames, seg.height, seg.width, 3), self.level(seg), np.uint8)
        return SegmentResult(encode_mp4_bytes(frames, seg.fps, seg.width, seg.height, preset="ultrafast"),
                             png_bytes(frames[-1]), {"flicker": 0.0}, 0.0, 0.01, 0.01, call.slot.name,
                             call.slot.node_id)

    @staticmethod
    def level(seg) -> int:
        """The grey level of a segment's flat frames (subclasses: by seed, to tell takes apart)."""
        return 40 + 10 * seg.index

    def encode_bank(self, preset, wanted, have):
        return None

    def refresh(self):
        pass

    def node_alive(self, slot):
        return True

    def shutdown(self):
        self.shut = True


