"""The residency plan for the real presets: whole, text encoder on the CPU, FSDP across the gang, model
or group offload, or nothing, from the meta-device weights and the activation formulas.

Card sizes are what torch reports for real cards (GiB): an 80 GB H100 79.6, a 48 GB RTX 6000 Ada 48.0,
a 24 GB RTX 4090 24.0. Every figure compared is computed by the plan or from the components; no
expected GiB is typed in."""
from __future__ import annotations

import pytest

from engine.memory.components import component
from engine.memory.plan import GIB, DoesNotFit, ModelMemory, Work, plan, residency
from storyboard.presets import available, load_preset

H100, ADA, RTX4090 = 79.6, 48.0, 24.0
P720, P1080 = (1280, 720, 81), (1920, 1088, 81)


def model(name: str, **options) -> ModelMemory:
    preset = load_preset(name)
    if options:
        preset = preset.model_copy(update={"options": {**preset.options, **options}})
    return ModelMemory.of(preset)


def test_anisora_v3_at_720p_fits_whole_in_bf16_on_one_80gb_gpu():
    v3 = model("anisora-v3")
    chosen = plan(v3, H100, Work(*P720))
    assert chosen.mode == "gpu"
    every = sum(component(r, n).params for r, n in load_preset("anisora-v3").architecture.components().items())
    assert chosen.need.weights == 2 * every           # bf16: two bytes a parameter, every component
    assert chosen.need.phase == "denoise"             # VAE tiled at 720p: the transformer's activations peak


def test_anisora_v3_at_720p_does_not_fit_whole_on_24gb_and_streams_its_blocks():
    chosen = plan(model("anisora-v3"), RTX4090, Work(*P720))
    # the transformer alone is 16.4e9 bf16 parameters, 30.5 GiB: no mode that holds it whole fits
    assert component("transformer", "wan2.1-i2v-14b").params * 2 / GIB > RTX4090
    assert all(chosen.needs[m].gib > RTX4090 for m in ("gpu", "text_encoder_cpu", "model_offload"))
    assert chosen.mode == "group_offload" and chosen.need.gib <= RTX4090


def test_more_ranks_need_less_memory_per_rank():
    v3 = model("anisora-v3")
    plans = [plan(v3, H100, Work(*P1080, degree=k)) for k in (1, 2, 4, 8)]
    whole = [p.needs["gpu"] for p in plans]
    assert len({n.weights for n in whole}) == 1                      # weights are replicated
    assert [n.transient for n in whole] == sorted((n.transient for n in whole), reverse=True)
    assert whole[0].transient > 2 * whole[-1].transient
    sharded = [p.needs["fsdp"].weights for p in plans[1:]]          # FSDP: weights split too
    assert sharded == sorted(sharded, reverse=True) and sharded[0] < whole[0].weights


def test_cfg_halves_denoise_with_the_memory_of_a_gang_half_as_wide():
    v2 = model("anisora-v2")
    for k in (2, 4, 8):
        halves = v2.transients(Work(*P1080, degree=k, cfg_halves=True))
        whole, half = v2.transients(Work(*P1080, degree=k)), v2.transients(Work(*P1080, degree=k // 2))
        # each rank holds its half's share of the tokens: a gang of k / 2's activations
        assert halves["denoise"] == half["denoise"] > whole["denoise"]
        assert halves["VAE decode"] == whole["VAE decode"]
    chosen = plan(v2, H100, Work(*P1080, degree=2, cfg_halves=True))
    # a gang of 2 split in halves denoises each pass on one rank: a lone GPU's peak
    assert chosen.need.phase == "denoise" and chosen.need.transient == v2.transients(Work(*P1080))["denoise"]


def test_fsdp_is_chosen_for_a_gang_when_one_gpu_cannot_hold_the_model():
    v32 = model("anisora-v3.2")              # two 14.3e9 experts: 53 GiB in bf16
    alone = plan(v32, ADA, Work(*P720, degree=1))
    assert "fsdp" not in alone.needs and alone.mode == "model_offload"
    gang = plan(v32, ADA, Work(*P720, degree=2))
    assert gang.needs["text_encoder_cpu"].gib > ADA and gang.mode == "fsdp"
    assert plan(v32, H100, Work(*P720, degree=2)).mode == "gpu"     # it fits whole: no sharding


def test_a_segment_that_fits_nowhere_says_what_the_most_frugal_mode_needs():
    v3 = load_preset("anisora-v3")
    with pytest.raises(DoesNotFit, match=r"1920x1088x81 at degree 1 on 24 GiB: does not fit .*group offload"):
        residency(v3, Work(*P1080, degree=1), RTX4090)
    assert residency(v3, Work(*P1080, degree=2), RTX4090).mode == "group_offload"   # wider: it fits


def test_forced_offload_needs_less_than_what_the_plan_would_use():
    v3 = model("anisora-v3")
    unforced, forced = plan(v3, H100, Work(*P720)), plan(v3, H100, Work(*P720), offload=True)
    assert unforced.mode == "gpu" and forced.mode == "model_offload"
    assert forced.need.gib < unforced.need.gib
    small = plan(v3, RTX4090, Work(*P720), offload=True)     # already as frugal as it gets: stays
    assert small.mode == "group_offload"


def test_a_worker_keeps_the_residency_it_has_loaded_when_that_one_fits():
    v3 = load_preset("anisora-v3")
    work = Work(*P720, degree=4)
    assert residency(v3, work, ADA).mode == "gpu"
    kept = residency(v3, work, ADA, loaded=("text_encoder_cpu",))
    assert kept.mode == "text_encoder_cpu" and kept.need_gib <= ADA
    # loaded, but too big for this GPU: the plan's own choice
    assert residency(v3, Work(*P720), RTX4090, loaded=("text_encoder_cpu",)).mode == "group_offload"


def test_fp8_weights_halve_the_transformer():
    t = component("transformer", "wan2.1-i2v-14b")
    bf16, fp8 = model("anisora-v3"), model("anisora-v3", speed={"fp8": "layerwise"})
    saved = bf16.weights("transformer") - fp8.weights("transformer")
    assert saved == t.fp8_params                     # one byte saved on each FP8-stored parameter
    assert plan(fp8, ADA, Work(*P720)).needs["gpu"].gib < plan(bf16, ADA, Work(*P720)).needs["gpu"].gib


def test_vae_tiling_as_the_preset_says_decides_the_decode():
    tiled = plan(model("anisora-v3"), H100, Work(*P1080, degree=8))
    untiled = plan(model("anisora-v3", speed={"vae_tiling": False}), H100, Work(*P1080, degree=8))
    assert tiled.need.phase == untiled.need.phase == "VAE decode"     # the gang's activations are small
    assert untiled.need.transient > 4 * tiled.need.transient


def test_the_text_to_video_model_has_no_picture_phases():
    phases = model("wan2.1-t2v-1.3b").transients(Work(832, 480, 81))
    assert set(phases) == {"text encode", "denoise", "VAE decode"}
    v3 = model("anisora-v3").transients(Work(832, 480, 81))
    assert {"image encode", "VAE encode"} <= set(v3)


def test_presets_with_real_configs_plan_their_memory_and_the_others_keep_a_figure():
    for name in available():
        preset = load_preset(name)
        if preset.architecture is not None:
            # no hand-written figure to drift from the plan: the worker asks the plan
            assert preset.memory_gb == 0, name
            assert residency(preset, Work(*P720), 1e9).need_gib > 10
        elif preset.engine == "wan":
            assert preset.memory_gb > 0, name          # the tiny model: no real config to count
            assert residency(preset, Work(*P720), 1e9).need_gib == preset.memory_gb


def test_a_qc_encoder_of_its_own_is_counted_next_to_the_pipeline():
    plain = plan(model("anisora-v3.2"), H100, Work(*P720)).needs["gpu"]
    with_qc = plan(model("anisora-v3.2", qc_encoder="/models/clip-vit-h-14"), H100, Work(*P720)).needs["gpu"]
    assert with_qc.weights - plain.weights == 2 * component("image_encoder", "clip-vit-h-14").params
