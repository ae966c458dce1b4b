"""The cost model's gang terms: a tiled decode shared by the gang, CFG's passes on its two halves."""
from __future__ import annotations

import pytest

from engine.wan.speed_options import SpeedOptions
from storyboard.presets import CostModel, decode_tiles, load_preset, pixel_options

COST = CostModel(hardware="test", source="test", overhead_s=4.0, linear_s_per_ktoken=0.05,
                 attention_s_per_ktoken2=0.002, decode_s_per_mpixel_frame=0.25,
                 parallel_efficiency={1: 1.0, 2: 0.95, 4: 0.9, 8: 0.8}, decode_efficiency={2: 0.9, 4: 0.8})
TOKENS, STEPS, MPF = 75_600, 8, 81 * 1280 * 720 / 1e6
PER_FORWARD = 0.05 * 75.6 + 0.002 * 75.6 ** 2


def runtime(**kw) -> float:
    return COST.runtime(tokens=TOKENS, steps=STEPS, mpixel_frames=MPF, **({"cfg": False} | kw))


def test_a_tiled_decode_is_divided_across_the_listed_degrees_only():
    decode = 0.25 * MPF
    denoise = {k: STEPS * PER_FORWARD / (k * COST.parallel_efficiency[k]) for k in (1, 2, 4, 8)}
    for k, shared in ((1, decode), (2, decode / (2 * 0.9)), (4, decode / (4 * 0.8)), (8, decode)):
        assert runtime(degree=k, tiled=True) == pytest.approx(4.0 + denoise[k] + shared, rel=1e-12), k
        assert runtime(degree=k, tiled=False) == pytest.approx(4.0 + denoise[k] + decode, rel=1e-12), k
    assert COST.decode(MPF, 4, tiled=True) < COST.decode(MPF, 2, tiled=True) < COST.decode(MPF, 1, tiled=True)


def test_cfg_parallel_runs_one_forward_a_step_at_half_the_degree():
    for k in (2, 4, 8):
        half = k // 2
        split = runtime(cfg=True, cfg_parallel=True, degree=k)
        sequential = runtime(cfg=True, degree=k)
        assert split == pytest.approx(4.0 + STEPS * PER_FORWARD / (half * COST.parallel_efficiency[half])
                                      + 0.25 * MPF, rel=1e-12)
        assert sequential == pytest.approx(4.0 + 2 * STEPS * PER_FORWARD / (k * COST.parallel_efficiency[k])
                                           + 0.25 * MPF, rel=1e-12)
        # efficiency falls with the degree, so two half gangs side by side beat one gang twice over
        assert split < sequential
    # nothing to split: one pass (guidance 1), a lone GPU, or a half the preset has no figure for
    assert runtime(cfg_parallel=True, degree=4) == runtime(degree=4)
    assert runtime(cfg=True, cfg_parallel=True, degree=1) == runtime(cfg=True, degree=1)
    odd = COST.model_copy(update={"parallel_efficiency": {1: 1.0, 2: 0.95, 6: 0.8}})   # no figure at 3
    assert odd.runtime(tokens=TOKENS, steps=STEPS, cfg=True, mpixel_frames=MPF, degree=6, cfg_parallel=True) == \
        odd.runtime(tokens=TOKENS, steps=STEPS, cfg=True, mpixel_frames=MPF, degree=6)


def test_a_preset_prices_what_its_engine_does():
    v2, v3 = load_preset("anisora-v2"), load_preset("anisora-v3")
    assert v2.options["cfg_parallel"] is True and v2.defaults.guidance > 1
    off = v2.model_copy(update={"options": {**v2.options, "cfg_parallel": False}})
    untiled = v3.with_speed({"vae_tiling": False})
    for k in (2, 4, 8):
        assert v2.runtime(81, 1280, 720, 40, 5.0, k) < off.runtime(81, 1280, 720, 40, 5.0, k)
        assert v3.runtime(81, 1280, 720, 8, 1.0, k) < untiled.runtime(81, 1280, 720, 8, 1.0, k)
        # 832x480 decodes whole (below the 720 px short side), on rank 0 alone
        assert v3.runtime(81, 832, 480, 8, 1.0, k) == untiled.runtime(81, 832, 480, 8, 1.0, k)
    assert v3.runtime(81, 1280, 720, 8, 1.0, 1) == untiled.runtime(81, 1280, 720, 8, 1.0, 1)


@pytest.mark.parametrize("speed", [{}, {"vae_tiling": 480}, {"vae_tiling": True}, {"vae_tiling": False},
                                   {"vae_tiling": 1081}])
def test_the_planner_and_the_engine_agree_on_when_the_vae_tiles(speed):
    engine = SpeedOptions.model_validate(speed)
    for width, height in ((832, 480), (1280, 720), (1920, 1080), (720, 1280), (1920, 1088)):
        assert decode_tiles({"speed": speed}, width, height) == engine.tiles(width, height), (speed, width, height)


def test_cfg_parallel_leaves_the_content_hash_alone():
    options = {"base": "x", "cfg_parallel": True, "speed": {"vae_tiling": 720}}
    assert pixel_options(options) == pixel_options({"base": "x", "speed": {"vae_tiling": 720}})
    assert pixel_options(options) != pixel_options({"base": "x", "speed": {"vae_tiling": False}})
