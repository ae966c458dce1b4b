"""The GPU worker actor: one per GPU, keeps its engines loaded across segments.

A worker gets a segment plus the bytes of its input pictures and returns the encoded segment and its
last frame (lossless PNG, for continuity). It never touches the output folder: the driver publishes,
so workers need no shared filesystem with the driver. Loaded engines stay resident until a preset
that does not fit next to them needs the memory; then the least recently used go first.
"""
from __future__ import annotations

import gc
import io
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import ray
from PIL import Image

from engine.bank import CharacterBank
from engine.base import Engine, check, create
from engine.qc import flicker
from storyboard.errors import InputError
from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .gang import GangSpec, Membership, free_address
from .video import encode_mp4_bytes, png_bytes


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def memory_budget_gb() -> float:
    """What this worker may keep loaded: the GPU's memory, else $SAKUGA_WORKER_MEMORY_GB or the RAM."""
    if "SAKUGA_WORKER_MEMORY_GB" in os.environ:
        return float(os.environ["SAKUGA_WORKER_MEMORY_GB"])
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 1e9
    except ImportError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


class OutOfMemory(RuntimeError):
    """The segment does not fit this worker's accelerator memory as loaded (retry with offload)."""


class EngineCache:
    """Loaded engines by preset name, least recently used first; evicts to fit `budget_gb`.
    An offloaded engine keeps its weights in CPU memory, so it takes none of the budget."""

    def __init__(self, budget_gb: float, load: Callable[[Preset, bool], Engine]):
        self.budget_gb, self.load = budget_gb, load
        self.engines: OrderedDict[tuple[str, bool], tuple[float, Engine]] = OrderedDict()
        self.loads = 0

    def get(self, preset: Preset, offload: bool = False) -> Engine:
        key = (preset.name, offload)
        if key in self.engines:
            self.engines.move_to_end(key)
            return self.engines[key][1]
        need = 0.0 if offload else preset.memory_gb
        if need > self.budget_gb:
            raise OutOfMemory(f"{preset.name} needs ~{preset.memory_gb:g} GB; this worker has {self.budget_gb:.1f} GB")
        while self.engines and self.used_gb + need > self.budget_gb:
            self.engines.popitem(last=False)
            gc.collect()
            _release_accelerator_memory()
        engine = self.load(preset, offload)
        self.loads += 1
        self.engines[key] = (need, engine)
        return engine

    @property
    def used_gb(self) -> float:
        return sum(gb for gb, _ in self.engines.values())

    def resident(self) -> list[str]:
        return sorted({name for name, _ in self.engines})


def _release_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _oom_errors() -> tuple[type[BaseException], ...]:
    try:
        import torch

        return (OutOfMemory, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return (OutOfMemory,)


@ray.remote(num_cpus=0)
class SegmentWorker:
    def __init__(self, name: str, threads: int | None = None):
        self.name = name
        if threads:   # logical GPUs on a CPU machine share its cores
            import torch

            torch.set_num_threads(threads)
        self.engines = EngineCache(memory_budget_gb(), lambda p, offload: create(p, offload=offload))
        self.membership = Membership()

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
        engine = self.engines.get(preset)
        if engine.encoder_id is None:
            return None, CharacterBank()
        known = set(have)
        todo = [(c, sha, decode_image(data)) for c, sha, data in wanted if (c, sha, engine.encoder_id) not in known]
        return engine.encoder_id, CharacterBank(engine.encode_characters(todo))

    def render(self, preset: Preset, segment: Segment, images: dict[ImageRef, bytes],
               bank: CharacterBank | None = None, offload: bool = False, gang: GangSpec | None = None) -> dict:
        """Render `segment` alone, or as one member of `gang` (every member gets the same call; rank 0
        returns the encoded segment, the others only their timing)."""
        started = time.time()
        ranks = gang.world if gang else 1
        try:
            engine = self.engines.get(preset, offload)
            if bank is not None:
                engine.use_bank(bank)
            if gang:
                self.membership.ensure(gang)
            pictures = {ref: decode_image(data) for ref, data in images.items()}
            rendered = engine.render(segment, pictures, ranks=ranks)
        except _oom_errors() as e:
            gc.collect()
            _release_accelerator_memory()
            raise OutOfMemory(str(e).splitlines()[0] if str(e) else "out of memory") from None
        where = {"started": started, "worker": self.name, "node": ray.get_runtime_context().get_node_id(),
                 "resident": self.engines.resident()}
        if gang and gang.rank != 0:
            return {**where, "render_s": time.time() - started}
        frames = rendered.frames
        if frames.shape != (segment.frames, segment.height, segment.width, 3) or frames.dtype != np.uint8:
            raise RuntimeError(f"engine {preset.engine} returned frames of shape {frames.shape} "
                               f"({frames.dtype}) for segment {segment.id}")
        rendered_at = time.time()
        metrics = {"flicker": flicker(frames), **rendered.metrics}
        mp4 = encode_mp4_bytes(frames, segment.fps, segment.width, segment.height)
        return {**where, "mp4": mp4, "last_png": png_bytes(rendered.last_frame), "metrics": metrics,
                "render_s": rendered_at - started, "encode_s": time.time() - rendered_at}

    def sp_selftest(self, gang: GangSpec, ulysses: int, ring: int, seed: int,
                    size: tuple[int, int, int], backend: str = "diffusers") -> np.ndarray | None:
        """The tiny Wan transformer's output with its attention sharded over the gang (rank 0 returns it)."""
        from engine import sp

        self.membership.ensure(gang)
        transformer, inputs = sp.selftest_case(ulysses, seed, size)
        uneven = sp.tokens(transformer, inputs["hidden_states"].shape) % gang.world != 0
        sp.enable(transformer, sp.Layout(ulysses, ring, uneven), backend)
        out = sp.forward(transformer, inputs)
        return out.numpy() if gang.rank == 0 else None
