"""`--speed KEY=VALUE` and a preset's `options.speed`: checked before anything loads (errors name the
flag, or the preset's line), priced by the preset's `cost.speed` factors, and counted in a segment's
content hash only where they change pixels."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.wan.options import options
from engine.wan.speed_options import ATTENTION_BACKENDS, SpeedOptions, parse_flags
from farm.workers.engines import EngineCache
from storyboard.errors import InputError
from storyboard.presets import load_preset, speed_names

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "models"
STORYBOARD = """\
sakuga: 1
title: Speed
output: {width: 1280, height: 720, fps: 16}
scenes:
  - id: one
    shots:
      - {id: a, frames: 81, prompt: a, start: a.png}
"""


@pytest.fixture
def storyboard(make_storyboard):
    return make_storyboard(STORYBOARD, images=["a.png"])


def plan_json(sakuga, storyboard, *args) -> dict:
    result = sakuga("plan", storyboard, "--json", "--model", "anisora-v3", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_flags_become_a_speed_block_and_later_flags_win():
    block = parse_flags(["attention=flash", "fp8=layerwise", "cache=fbc:0.08", "compile=on", "vae_tiling=off",
                         "attention=sage"])
    assert block == {"attention": "sage", "fp8": "layerwise", "cache": "fbc:0.08", "compile": True,
                     "vae_tiling": False}
    speed = SpeedOptions.model_validate(block)
    assert speed.cache.kind == "fbc" and speed.cache.value == 0.08 and not speed.tiles(3840, 2160)
    assert SpeedOptions.model_validate({"cache": "taylorseer"}).cache.value == 5     # diffusers' default interval
    assert SpeedOptions(vae_tiling=720).tiles(1280, 720) and not SpeedOptions(vae_tiling=720).tiles(832, 480)


@pytest.mark.parametrize("flag, says", [
    ("turbo=on", "expected KEY=VALUE"),
    ("attention", "expected KEY=VALUE"),
    ("attention=sage3", "unknown attention backend 'sage3'"),
    ("cache=teacache", "unknown cache 'teacache'"),
    ("cache=fbc:fast", "threshold must be a number"),
    ("cache=mag:0.06", "needs `mag_ratios`"),
    ("fp8=int8", "'layerwise'"),
    ("vae_tiling=-5", "at least 1"),
])
def test_a_bad_flag_is_refused_naming_it(flag, says):
    with pytest.raises(InputError) as e:
        parse_flags([flag])
    [problem] = e.value.problems
    assert problem.file == "--speed" and f"--speed {flag!r}" in problem.message and says in problem.message


def test_every_attention_backend_offered_is_one_diffusers_has():
    from diffusers.models.attention_dispatch import AttentionBackendName

    assert set(ATTENTION_BACKENDS) <= {b.value for b in AttentionBackendName}
    assert not [b for b in ATTENTION_BACKENDS if b.endswith("_hub")]   # those download kernels


def test_the_command_line_refuses_a_bad_flag_before_anything_runs(sakuga, storyboard, tmp_path):
    for command in (("plan", storyboard, "--model", "anisora-v3"),
                    ("render", storyboard, "--model", "wan-tiny", "--out", tmp_path / "out")):
        result = sakuga(*command, "--speed", "cache=fbc:x")
        assert result.exit_code == 2
        assert result.stderr.startswith("--speed:1:1: error: --speed 'cache=fbc:x': cache fbc: threshold must be")
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    animatic = sakuga("plan", storyboard, "--model", "animatic", "--speed", "attention=sage")
    assert animatic.exit_code == 2 and "has no speed options" in animatic.stderr
    for command in ("render", "batch", "submit", "plan"):
        assert "--speed" in sakuga(command, "--help").stdout


def test_the_estimate_uses_the_presets_speed_factors(sakuga, storyboard):
    preset = load_preset("anisora-v3")
    cost = preset.cost
    tokens = preset.tokens(81, 1280, 720)
    plain = plan_json(sakuga, storyboard)["segments"][0]["runtime_s"]
    sage = plan_json(sakuga, storyboard, "--speed", "attention=sage")["segments"][0]["runtime_s"]
    both = plan_json(sakuga, storyboard, "--speed", "attention=sage", "--speed", "cache=fbc")["segments"][0]["runtime_s"]
    unpriced = plan_json(sakuga, storyboard, "--speed", "attention=flex")["segments"][0]["runtime_s"]
    for degree in map(str, preset.degrees):
        # 720p decodes in tiles, which the gang shares
        fixed = cost.overhead_s + cost.decode(81 * 1280 * 720 / 1e6, int(degree), tiled=True)
        denoise = plain[degree] - fixed
        assert denoise == pytest.approx(8 * (cost.linear_s_per_ktoken * tokens / 1e3 + cost.attention_s_per_ktoken2
                                             * (tokens / 1e3) ** 2) / (int(degree) * cost.parallel_efficiency[int(degree)]),
                                        abs=2e-3)   # the plan rounds to milliseconds
        assert sage[degree] - fixed == pytest.approx(cost.speed["attention=sage"] * denoise, abs=2e-3)
        assert both[degree] - fixed == pytest.approx(
            cost.speed["attention=sage"] * cost.speed["cache=fbc"] * denoise, abs=2e-3)
        assert unpriced[degree] == plain[degree]             # no figure for flex: no change


def test_only_the_options_that_change_pixels_change_the_segment_hash(sakuga, storyboard):
    def hash_with(*flags):
        args = [a for f in flags for a in ("--speed", f)]
        return plan_json(sakuga, storyboard, *args)["segments"][0]["hash"]

    plain = hash_with()
    # an exact attention kernel and compilation leave the pixels as they are (up to rounding)
    assert hash_with("attention=flash") == hash_with("compile=on") == hash_with("attention=native") == plain
    changed = [hash_with(f) for f in ("attention=sage", "fp8=layerwise", "cache=fbc:0.05", "cache=fbc:0.1",
                                      "vae_tiling=off")]
    assert plain not in changed and len(set(changed)) == len(changed)


def test_speed_names_match_the_cost_factors_of_what_is_on():
    assert speed_names({"speed": {"attention": "sage", "fp8": "off", "cache": {"kind": "fbc", "threshold": 0.1},
                                  "compile": True, "vae_tiling": 720}}) == ["attention=sage", "cache=fbc",
                                                                           "compile=on"]
    assert speed_names({"speed": {"attention": "native", "cache": "taylorseer:3", "compile": False}}) == \
        ["cache=taylorseer"]
    assert speed_names({}) == []


def test_a_bad_speed_option_in_a_preset_is_reported_on_its_line(tmp_path, monkeypatch, sakuga):
    presets = tmp_path / "presets"
    presets.mkdir()
    text = (CONFIGS / "wan-tiny.yaml").read_text().replace(
        "  identity_weight: 0.5", "  identity_weight: 0.5\n  speed:\n    attention: sage2")
    (presets / "wan-tiny.yaml").write_text(text)
    monkeypatch.setenv("SAKUGA_MODELS", str(presets))
    (tmp_path / "sb.yaml").write_text("sakuga: 1\nmodel: wan-tiny\nscenes:\n  - id: s\n    shots:\n"
                                      "      - {id: a, frames: 9, prompt: a}\n")
    result = sakuga("render", tmp_path / "sb.yaml", "--out", tmp_path / "out")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "sage2" in t)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{presets / 'wan-tiny.yaml'}:{line}:")
    assert "unknown attention backend 'sage2'" in result.stderr and not (tmp_path / "out").exists()


def test_the_old_vae_tiling_from_option_is_the_speed_blocks_vae_tiling():
    tiny = load_preset("wan-tiny")
    old = tiny.model_copy(update={"options": {**tiny.options, "vae_tiling_from": 480}})
    assert options(old).speed.vae_tiling == 480 and options(tiny).speed.vae_tiling == 720


def test_a_worker_loads_a_preset_again_for_other_speed_options():
    tiny = load_preset("wan-tiny")
    loaded = []
    cache = EngineCache(80.0, lambda p, offload: loaded.append(p.options.get("speed")) or object())
    plain, fp8 = cache.get(tiny), cache.get(tiny.with_speed({"fp8": "layerwise"}))
    assert plain is not fp8 and cache.get(tiny) is plain
    assert loaded == [None, {"fp8": "layerwise"}] and cache.resident() == ["wan-tiny"]
