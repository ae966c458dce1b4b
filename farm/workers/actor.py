"""The GPU worker actor: one per GPU, keeps its engines loaded across segments (`engines.py`).

A worker gets a segment plus the bytes of its input pictures and returns a `SegmentResult`: the
encoded segment and its last frame (lossless PNG, for continuity). A render is a streaming call: it
yields a `Checkpointed` each time its step control (`control.py`) takes a checkpoint, then the result,
or `StoppedAt` when it was asked to stop (`stop`, served at once by the actor's `control` concurrency
group while the render runs: the engine runs in a thread of the actor, the call drains its messages).
It also runs the delivery stages
that need a GPU (upscaling with a net, `farm/stages/work.py`), keeping the nets loaded; CPU stages
run as plain Ray tasks (`cpu_stage`). It never touches the output
folder: the driver publishes, so workers need no shared filesystem with the driver.
"""
from __future__ import annotations

import gc
import os
import queue
import socket
import threading
import time

import numpy as np
import ray

from engine.bank import CharacterBank
from engine.memory.plan import DoesNotFit, Residency, Work, residency
from engine.parallel.layout import cfg_halves
from engine.qc import flicker
from engine.registry import check, create
from engine.steps import Stopped
from farm.job.checkpoints import StepOrder
from farm.job.results import Checkpointed, SegmentResult, ShareDone, StoppedAt
from farm.media.decode import read_png
from farm.media.encode import encode_mp4_bytes, png_bytes
from farm.stages.stage import Stage
from farm.stages.work import Upscalers, run_stage
from farm.workers.gang import GangSpec, Membership, agreed, free_address
from storyboard.errors import InputError
from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .control import WorkerControl, chaos_exit_step
from .engines import (
    EngineCache,
    OutOfMemory,
    memory_budget_gb,
    oom_errors,
    release_accelerator_memory,
)


@ray.remote(num_cpus=0, concurrency_groups={"control": 1})
class SegmentWorker:
    def __init__(self, name: str, threads: int | None = None, env: dict[str, str] | None = None):
        self.name = name
        os.environ.update(env or {})   # the driver's test hooks (SAKUGA_CHAOS_*, control.py)
        self.stop_token: str | None = None   # the render asked to stop at its next step boundary
        if threads:   # logical GPUs on a CPU machine share its cores
            import torch

            torch.set_num_threads(threads)
        self.engines = EngineCache(memory_budget_gb(), lambda p, mode: create(p, residency=mode))
        self.membership = Membership()
        self.upscalers = Upscalers()

    def address(self) -> tuple[str, int]:
        """Where a gang this worker is rank 0 of meets."""
        return free_address()

    def where(self) -> dict:
        return {"worker": self.name, "host": socket.gethostname(), "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id(), "gpus": ray.get_gpu_ids(),
                "resident": self.engines.resident()}

    def check(self, preset: Preset) -> list[tuple[str, int, int, str]]:
        """Problems loading `preset` on this machine (missing weights...): (file, line, col, message)."""
        try:
            check(preset)
        except InputError as e:
            return [(p.file, p.line, p.col, p.message) for p in e.problems]
        return []

    def bank(self, preset: Preset, wanted: list[tuple[str, str, bytes]], have: list[tuple[str, str, str]]
             ) -> tuple[str | None, CharacterBank]:
        """Encode the (character, sha256, picture bytes) not already in `have` with this preset's encoder."""
        engine = self.engines.get(preset, gang=self.membership.tag)   # any loaded engine of it will do
        if engine.encoder_id is None:
            return None, CharacterBank()
        known = set(have)
        todo = [(c, sha, read_png(data)) for c, sha, data in wanted if (c, sha, engine.encoder_id) not in known]
        return engine.encoder_id, CharacterBank(engine.encode_characters(todo))

    @ray.method(concurrency_group="control")
    def stop(self, token: str) -> None:
        """Ask render `token` to stop at its next step boundary (it checkpoints there, then StoppedAt)."""
        self.stop_token = token

    @ray.method(num_returns="streaming")
    def render(self, preset: Preset, segment: Segment, images: dict[ImageRef, bytes],
               bank: CharacterBank | None = None, offload: bool = False, gang: GangSpec | None = None,
               keep_latents: bool = False, steps: StepOrder | None = None, resume: bytes | None = None,
               token: str = ""):
        """Render `segment` alone, or as one member of `gang` (every member gets the same call; rank 0
        returns the segment, the others only that their share is done), starting from the checkpoint
        `resume` when there is one. Yields each checkpoint rank 0 takes, then the result or StoppedAt."""
        messages: queue.SimpleQueue = queue.SimpleQueue()
        control = None if steps is None else WorkerControl(
            steps, resume, gang.rank if gang else 0, messages.put, lambda: self.stop_token == token)

        def work() -> None:
            try:
                messages.put(self._render(preset, segment, images, bank, offload, gang, keep_latents, control))
            except BaseException as e:   # noqa: BLE001 - raised again in the call, where Ray reports it
                messages.put(_Raised(e))

        threading.Thread(target=work, name=f"render {segment.id}", daemon=True).start()
        exit_after = chaos_exit_step()
        while True:
            message = messages.get()
            if isinstance(message, _Raised):
                raise message.error
            yield message
            if not isinstance(message, Checkpointed):
                return
            if exit_after is not None and message.step == exit_after:
                time.sleep(0.5)   # test hook (control.py): Ray has reported the checkpoint; now die
                os._exit(1)

    def _render(self, preset: Preset, segment: Segment, images: dict[ImageRef, bytes], bank: CharacterBank | None,
                offload: bool, gang: GangSpec | None, keep_latents: bool,
                control: WorkerControl | None) -> SegmentResult | ShareDone | StoppedAt:
        started = time.time()
        ranks = gang.world if gang else 1
        try:
            if gang:     # first: an engine sharded across the gang (FSDP) is built inside its group
                self.membership.ensure(gang)
            engine = self.engines.get(preset, self._residency(preset, segment, ranks, offload),
                                      self.membership.tag)
            if bank is not None:
                engine.use_bank(bank)
            pictures = {ref: read_png(data) for ref, data in images.items()}
            rendered = engine.render(segment, pictures, ranks=ranks, control=control)
        except Stopped as e:    # asked to stop: the state where it stopped is the checkpoint to go on from
            if control is not None:
                control.shipped(e.state)
            return StoppedAt(e.step, self.name, tuple(self.engines.resident()))
        except oom_errors() as e:
            gc.collect()
            release_accelerator_memory()
            raise OutOfMemory(str(e).splitlines()[0] if str(e) else "out of memory") from None
        node = ray.get_runtime_context().get_node_id()
        resident = tuple(self.engines.resident())
        if gang and gang.rank != 0:
            return ShareDone(started, time.time() - started, self.name, node, resident)
        frames = rendered.frames
        if frames.shape != (segment.frames, segment.height, segment.width, 3) or frames.dtype != np.uint8:
            raise RuntimeError(f"engine {preset.engine} returned frames of shape {frames.shape} "
                               f"({frames.dtype}) for segment {segment.id}")
        rendered_at = time.time()
        metrics = {"flicker": flicker(frames), **rendered.metrics, **(control.metrics() if control else {})}
        mp4 = encode_mp4_bytes(frames, segment.fps, segment.width, segment.height)
        latents = rendered.latents if keep_latents else None
        return SegmentResult(mp4, png_bytes(rendered.last_frame), metrics, started, rendered_at - started,
                             time.time() - rendered_at, self.name, node, resident, latents)

    def stage(self, stage: Stage, inputs: list[bytes]) -> SegmentResult:
        """Run a delivery stage here (a GPU one: the net stays loaded for the next shot)."""
        try:
            return run_stage(stage, inputs, self.upscalers, self.name, ray.get_runtime_context().get_node_id())
        except oom_errors() as e:
            gc.collect()
            release_accelerator_memory()
            raise OutOfMemory(str(e).splitlines()[0] if str(e) else "out of memory") from None

    def _residency(self, preset: Preset, segment: Segment, ranks: int, offload: bool) -> Residency:
        """How to hold `preset` for this segment on this GPU (the memory plan); a gang's members must
        agree, or their collectives would not match: they compare before loading anything."""
        tag = self.membership.tag if ranks > 1 else None
        chosen, why = None, None
        try:
            halves = cfg_halves(ranks, segment.guidance, preset.options.get("cfg_parallel") is True)
            chosen = residency(preset, Work(segment.width, segment.height, segment.frames, ranks, cfg_halves=halves),
                               self.engines.budget_gb, offload, self.engines.loaded_modes(preset, tag))
        except DoesNotFit as e:
            why = e
        if ranks > 1:
            modes = agreed(None if chosen is None else chosen.mode, ranks)
            if None in modes:
                raise why or DoesNotFit(f"{preset.name} fits no residency on another member of the gang")
            if len(set(modes)) > 1:
                raise RuntimeError(f"gang members chose different residencies for {preset.name}: {modes}")
        if chosen is None:
            raise why
        return chosen

    def sp_selftest(self, gang: GangSpec, ulysses: int, ring: int, seed: int,
                    size: tuple[int, int, int], backend: str = "diffusers") -> np.ndarray | None:
        """The tiny Wan transformer's output with its attention sharded over the gang (rank 0 returns it)."""
        from engine.parallel.layout import Layout, tokens
        from engine.parallel.selftest import forward, selftest_case
        from engine.parallel.sharding import enable

        self.membership.ensure(gang)
        transformer, inputs = selftest_case(ulysses, seed, size)
        uneven = tokens(transformer, inputs["hidden_states"].shape) % gang.world != 0
        enable(transformer, Layout(ulysses, ring, uneven), backend)
        out = forward(transformer, inputs)
        return out.numpy() if gang.rank == 0 else None


class _Raised:
    """An exception of the render thread, carried to the call that raises it again."""

    def __init__(self, error: BaseException):
        self.error = error


@ray.remote(num_cpus=1, max_retries=0)
def cpu_stage(stage: Stage, inputs: list[bytes]) -> SegmentResult:
    """A CPU stage (retime, a resize without a net) as a Ray task on any node's CPU: the farm loop
    retries it itself, like a segment, so Ray does not."""
    return run_stage(stage, inputs, Upscalers(), "cpu", ray.get_runtime_context().get_node_id())
