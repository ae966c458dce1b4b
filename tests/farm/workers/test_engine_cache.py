"""A worker's engine cache keyed by residency: what the memory plan chose is what gets loaded, budgets are
the plan's figures, a residency already loaded that fits is kept, and an engine sharded across a gang
goes with the gang. The loader stands in for loading 30-60 GB of weights; what is under test is which
residency the worker asks for and what it keeps."""
from __future__ import annotations

import pytest

from engine.memory.plan import Residency, Work, residency
from farm.workers.engines import EngineCache, OutOfMemory, lone_residency, options_key
from storyboard.presets import load_preset

V3 = load_preset("anisora-v3")
P720 = Work(1280, 720, 81)


class Loads(list):
    def __call__(self, preset, mode):
        self.append((preset.name, mode))
        return object()


def worker_get(cache: EngineCache, preset, work: Work, gang: str | None = None, offload: bool = False):
    """What `SegmentWorker.render` does: plan with what is loaded, then get that."""
    chosen = residency(preset, work, cache.budget_gb, offload, cache.loaded_modes(preset, gang))
    return cache.get(preset, chosen, gang), chosen


def test_a_48gb_worker_loads_anisora_v3_with_the_text_encoder_on_the_cpu_and_counts_what_stays():
    loads = Loads()
    cache = EngineCache(48.0, loads)
    _, chosen = worker_get(cache, V3, P720)
    assert loads == [("anisora-v3", "text_encoder_cpu")]
    assert cache.used_gb == chosen.resident_gib < chosen.need_gib <= 48.0   # activations come and go


def test_a_wider_gang_reuses_the_loaded_residency_instead_of_reloading():
    loads = Loads()
    cache = EngineCache(48.0, loads)
    worker_get(cache, V3, P720)
    worker_get(cache, V3, Work(1280, 720, 81, degree=4), gang="g1")   # the plan alone would pick "gpu"
    assert loads == [("anisora-v3", "text_encoder_cpu")]


def test_an_engine_sharded_across_a_gang_is_dropped_when_the_worker_is_in_another_gang():
    v32 = load_preset("anisora-v3.2")
    loads = Loads()
    cache = EngineCache(48.0, loads)
    worker_get(cache, v32, Work(1280, 720, 81, degree=2), gang="g1")
    assert loads == [("anisora-v3.2", "fsdp")] and cache.loaded_modes(v32, "g1") == ("fsdp",)
    assert cache.loaded_modes(v32, None) == ()                       # alone it cannot use the shards
    assert cache.get(v32, gang="g1") is cache.engines[(v32.name, options_key(v32), "fsdp", "g1")][1]   # the bank may use it
    worker_get(cache, v32, Work(1280, 720, 81, degree=2), gang="g2")
    assert loads == [("anisora-v3.2", "fsdp")] * 2 and len(cache.engines) == 1


def test_the_least_recently_used_engine_goes_when_a_segment_needs_its_room():
    loads = Loads()
    cache = EngineCache(80.0, loads)
    t2v = load_preset("wan2.1-t2v-1.3b")
    worker_get(cache, V3, P720)                    # whole: ~44 GiB stay, ~53 at its peak
    worker_get(cache, t2v, Work(832, 480, 81))     # ~14 GiB more fits next to it
    assert cache.resident() == ["anisora-v3", "wan2.1-t2v-1.3b"]
    worker_get(cache, load_preset("anisora-v3.2"), P720)     # ~74 at its peak: both others go
    assert cache.resident() == ["anisora-v3.2"] and cache.used_gb <= 80.0


def test_a_preset_bigger_than_the_worker_is_out_of_memory_and_the_bank_uses_what_is_loaded():
    loads = Loads()
    cache = EngineCache(10.0, loads)
    with pytest.raises(OutOfMemory, match="needs ~"):
        cache.get(V3, Residency("gpu", 52.0, 44.0))
    cache = EngineCache(80.0, loads)
    engine, _ = worker_get(cache, V3, P720)
    assert cache.get(V3) is engine                 # the character bank: any loaded engine of the preset
    assert lone_residency(load_preset("wan2.1-t2v-1.3b"), 80.0).mode == "gpu"
