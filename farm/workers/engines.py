"""A worker's loaded engines: kept resident across segments until a preset that does not fit next to
them needs the memory; then the least recently used go first. How each is loaded (whole on the GPU,
text encoder on the CPU, offloaded, sharded across the gang) is the memory plan's choice
(engine/memory/plan.py), made per segment by the worker (`actor.py`)."""
from __future__ import annotations

import gc
import json
import os
from collections import OrderedDict
from collections.abc import Callable

from engine.base import Engine
from engine.memory.plan import DoesNotFit, Residency
from storyboard.presets import Preset


def memory_budget_gb() -> float:
    """What this worker may keep loaded, in GiB (2^30 bytes, as the memory plan counts): the GPU's
    memory, else $SAKUGA_WORKER_MEMORY_GB or the RAM."""
    if "SAKUGA_WORKER_MEMORY_GB" in os.environ:
        return float(os.environ["SAKUGA_WORKER_MEMORY_GB"])
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 2**30
    except ImportError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


class OutOfMemory(RuntimeError):
    """The segment does not fit this worker's accelerator memory as loaded (retry with offload)."""


# preset, its options (jobs may ask one preset with other `--speed` options: FP8, a cache, so another
# engine), residency mode, gang (FSDP engines live in their gang's group)
Key = tuple[str, str, str, str | None]


class EngineCache:
    """Loaded engines by preset and residency (engine.memory.plan), least recently used first.

    Each engine keeps its `resident_gib` on the GPU between segments (an offloaded one nothing); while
    one renders it needs its `need_gib` next to what the others keep, and the least recently used go
    until that fits `budget_gb`. An engine sharded across a gang (FSDP) is dropped once this worker is
    in another group: its shards' group is gone."""

    def __init__(self, budget_gb: float, load: Callable[[Preset, str], Engine]):
        self.budget_gb, self.load = budget_gb, load
        self.engines: OrderedDict[Key, tuple[Residency, Engine]] = OrderedDict()
        self.loads = 0

    def loaded_modes(self, preset: Preset, gang: str | None) -> tuple[str, ...]:
        """The residencies `preset` is loaded with that a render in `gang` (None: alone) could use."""
        options = options_key(preset)
        return tuple(mode for name, opts, mode, tag in self.engines if name == preset.name and opts == options
                     and (mode != "fsdp" or (gang is not None and tag == gang)))

    def get(self, preset: Preset, residency: Residency | None = None, gang: str | None = None) -> Engine:
        """The engine of `preset` loaded as `residency` (None: any loaded engine of it, else the plan's
        for a lone segment), in `gang` (the group this worker is in now, for FSDP)."""
        for key in [k for k in self.engines if k[2] == "fsdp" and k[3] != gang]:
            del self.engines[key]
        if residency is None:
            loaded = [k for k in self.engines if k[:2] == (preset.name, options_key(preset))]
            if loaded:
                self.engines.move_to_end(loaded[-1])
                return self.engines[loaded[-1]][1]
            residency = lone_residency(preset, self.budget_gb)
        key = (preset.name, options_key(preset), residency.mode, gang if residency.mode == "fsdp" else None)
        if residency.need_gib > self.budget_gb:
            raise OutOfMemory(f"{preset.name} needs ~{residency.need_gib:.1f} GB as {residency.mode}; "
                              f"this worker has {self.budget_gb:.1f} GB")
        while any(k != key for k in self.engines) and self._kept(key) + residency.need_gib > self.budget_gb:
            self.engines.pop(next(k for k in self.engines if k != key))
            gc.collect()
            release_accelerator_memory()
        if key not in self.engines:
            self.engines[key] = (residency, self.load(preset, residency.mode))
            self.loads += 1
        self.engines[key] = (residency, self.engines[key][1])
        self.engines.move_to_end(key)
        return self.engines[key][1]

    def _kept(self, key: Key) -> float:
        return sum(r.resident_gib for k, (r, _) in self.engines.items() if k != key)

    @property
    def used_gb(self) -> float:
        return sum(r.resident_gib for r, _ in self.engines.values())

    def resident(self) -> list[str]:
        return sorted({name for name, *_ in self.engines})


def options_key(preset: Preset) -> str:
    return json.dumps(preset.options, sort_keys=True, default=str)


def lone_residency(preset: Preset, budget_gb: float, offload: bool = False) -> Residency:
    """The plan's residency for one segment of the preset's longest length at its native size (1280x720
    when it has none) on one GPU: what a worker loads for work that names no size (the character bank)."""
    from engine.memory.plan import Work, residency

    width, height = getattr(preset, "native_size", None) or (1280, 720)
    return residency(preset, Work(width, height, preset.max_frames), budget_gb, offload)


def release_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def oom_errors() -> tuple[type[BaseException], ...]:
    try:
        import torch

        return (OutOfMemory, DoesNotFit, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return (OutOfMemory, DoesNotFit)


def check_presets(presets) -> None:
    """Can this machine load every preset (weights present, options valid)? All problems at once."""
    from engine.registry import check
    from storyboard.errors import InputError

    problems = []
    for preset in presets:
        try:
            check(preset)
        except InputError as e:
            problems += e.problems
    if problems:
        raise InputError(problems)
