"""A worker's loaded engines: kept resident across segments until a preset that does not fit next to
them needs the memory; then the least recently used go first."""
from __future__ import annotations

import gc
import json
import os
from collections import OrderedDict
from collections.abc import Callable

from engine.base import Engine
from storyboard.presets import Preset


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
        self.engines: OrderedDict[tuple[str, str, bool], tuple[float, Engine]] = OrderedDict()
        self.loads = 0

    def get(self, preset: Preset, offload: bool = False) -> Engine:
        # by options too: jobs may ask one preset with other `--speed` options (FP8, a cache), another engine
        key = (preset.name, json.dumps(preset.options, sort_keys=True, default=str), offload)
        if key in self.engines:
            self.engines.move_to_end(key)
            return self.engines[key][1]
        need = 0.0 if offload else preset.memory_gb
        if need > self.budget_gb:
            raise OutOfMemory(f"{preset.name} needs ~{preset.memory_gb:g} GB; this worker has {self.budget_gb:.1f} GB")
        while self.engines and self.used_gb + need > self.budget_gb:
            self.engines.popitem(last=False)
            gc.collect()
            release_accelerator_memory()
        engine = self.load(preset, offload)
        self.loads += 1
        self.engines[key] = (need, engine)
        return engine

    @property
    def used_gb(self) -> float:
        return sum(gb for gb, _ in self.engines.values())

    def resident(self) -> list[str]:
        return sorted({name for name, _, _ in self.engines})


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

        return (OutOfMemory, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return (OutOfMemory,)


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
