"""The Wan engine on the tiny random-weight model: conditioning, character bank, determinism, CFG."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline
from PIL import Image

from engine.bank import CharacterBank
from engine.wan import tiny
from engine.wan.engine import WanEngine
from engine.wan.keyframe_pipeline import (
    KeyframePipeline,
    keyframe_condition,
    latent_mask,
)
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset
from tests.conftest import make_storyboard

W, H = 64, 64
HANA, RED, BLUE = (240, 200, 210), (220, 30, 30), (30, 30, 220)

STORYBOARD = f"""\
sakuga: 1
title: Engine
model: wan-tiny
output: {{width: {W}, height: {H}, fps: 16}}
characters:
  hana: {{name: Hana, refs: [hana.png], description: silver hair}}
scenes:
  - id: roof
    shots:
      - {{id: a, frames: 9, prompt: "@hana looks up", start: red.png}}
      - {{id: b, frames: 9, prompt: "@hana turns", start: previous}}
      - {{id: c, frames: 17, prompt: a door, start: red.png, keyframes: [{{image: blue.png, at: 0.5}}]}}
      - {{id: d, frames: 9, prompt: empty sky, guidance: 5.0}}
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sb")
    for name, colour in (("hana", HANA), ("red", RED), ("blue", BLUE)):
        Image.new("RGB", (80, 60), colour).save(folder / f"{name}.png")
    return build_plan(load(make_storyboard(folder, STORYBOARD)))


@pytest.fixture(scope="module")
def engine():
    return WanEngine(load_preset("wan-tiny"))


def pictures(plan, seg, last_frames: dict | None = None) -> dict:
    out = {}
    for c in seg.conditions:
        if c.image.kind == "asset":
            out[c.image] = np.asarray(Image.open(plan.assets[c.image.ref]).convert("RGB"))
        else:
            out[c.image] = last_frames[c.image.ref]
    return out


def bank_for(engine, plan) -> CharacterBank:
    ch = plan.segment("a.0").characters[0]
    ref = ch.refs[0]
    return CharacterBank(engine.encode_characters(
        [(ch.id, ref.sha256, np.asarray(Image.open(plan.assets[ref.ref]).convert("RGB")))]))


# ---------------------------------------------------------------- conditioning


def test_a_given_frame_lands_on_its_latent_frame_and_channel():
    frames, t = 17, 4
    given = torch.zeros(1, 1, frames, 2, 2)
    for f in (0, 6, 16):
        given[:, :, f] = 1
    mask = latent_mask(given, t)
    assert mask.shape == (1, t, (frames - 1) // t + 1, 2, 2)
    on = {(int(c), int(j)) for c, j in torch.nonzero(mask[0, :, :, 0, 0])}
    # frame 0 fills all channels of latent frame 0; frame f >= 1 is channel (f-1) % 4 of latent (f-1) // 4 + 1
    assert on == {(0, 0), (1, 0), (2, 0), (3, 0), ((6 - 1) % 4, (6 - 1) // 4 + 1), ((16 - 1) % 4, (16 - 1) // 4 + 1)}


def test_first_and_last_frame_conditioning_matches_stock_diffusers(engine):
    """With pictures at the first and last frame only, the any-frame path builds exactly what
    diffusers' own image + last_image path builds."""
    pipe = engine.pipe
    rng = np.random.default_rng(0)
    first, last = (torch.from_numpy(rng.uniform(-1, 1, (1, 3, H, W)).astype(np.float32)) for _ in range(2))
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 5, H // 8, W // 8, generator=gen)

    condition = keyframe_condition(pipe, [(0, first), (16, last)], 17, H, W)
    _, ours = pipe.prepare_keyframe_latents(latents.clone(), condition, torch.device("cpu"))
    _, stock = super(KeyframePipeline, pipe).prepare_latents(first, 1, 4, H, W, 17, torch.float32,
                                                             torch.device("cpu"), None, latents.clone(), last)
    assert torch.equal(ours, stock)


def test_a_keyframe_in_the_middle_is_given_to_the_transformer(engine, plan):
    seg = plan.segment("c.0")
    assert [c.frame for c in seg.conditions] == [0, 8]
    seen = []
    hook = engine.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["hidden_states"].clone()), with_kwargs=True)
    try:
        engine.render(seg, pictures(plan, seg))
    finally:
        hook.remove()
    z = engine.pipe.vae.config.z_dim
    mask = seen[0][0, z:z + 4]            # (4, latent frames, h, w): noisy latents, then mask, then condition
    given = {(c, j) for c in range(4) for j in range(mask.shape[1]) if bool(mask[c, j].all())}
    assert given == {(0, 0), (1, 0), (2, 0), (3, 0), ((8 - 1) % 4, (8 - 1) // 4 + 1)}
    assert float(mask.sum()) == 5 * mask.shape[-1] * mask.shape[-2]


def test_a_shot_with_no_picture_renders_from_text_with_an_empty_mask(engine, plan):
    seg = plan.segment("d.0")
    assert seg.conditions == () and seg.model == "wan-tiny"
    seen = []
    hook = engine.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["hidden_states"]), with_kwargs=True)
    try:
        out = engine.render(seg, {})
    finally:
        hook.remove()
    z = engine.pipe.vae.config.z_dim
    assert float(seen[0][0, z:z + 4].abs().sum()) == 0.0
    assert out.frames.shape == (9, H, W, 3) and out.frames.dtype == np.uint8


def noise_for(engine, seg) -> torch.Tensor:
    """The starting noise `render` draws for a segment, and the sampler it sets up."""
    engine.pipe.scheduler = UniPCMultistepScheduler.from_config(engine.pipe.scheduler.config, flow_shift=seg.shift)
    shape = (1, engine.pipe.vae.config.z_dim, (seg.frames - 1) // 4 + 1, seg.height // 8, seg.width // 8)
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seg.seed), dtype=torch.float32)


def test_the_keyframe_pipeline_takes_its_condition_as_an_argument_and_keeps_none(engine, plan):
    seg = plan.segment("c.0")
    rendered = engine.render(seg, pictures(plan, seg))
    conditions = engine.conditions(seg, pictures(plan, seg))
    call = dict(condition=conditions.condition, prompt_embeds=conditions.prompt, image_embeds=conditions.image,
                num_inference_steps=seg.steps, guidance_scale=seg.guidance)
    latents = engine.pipe(latents=noise_for(engine, seg), **call)
    # render is exactly this call: the same conditions, as arguments
    assert torch.equal(latents, torch.from_numpy(rendered.latents))
    assert "condition" not in vars(engine.pipe)            # nothing is left on the pipeline between calls
    with pytest.raises(ValueError, match="condition"):
        engine.pipe(latents=noise_for(engine, seg), **{**call, "condition": conditions.condition[:, :, :2]})
    with pytest.raises(TypeError):
        engine.pipe(latents=noise_for(engine, seg), **{k: v for k, v in call.items() if k != "condition"})


def test_the_keyframe_denoising_loop_is_stock_diffusers_i2v_step_for_step(engine, plan, monkeypatch):
    """Given the same condition, KeyframePipeline denoises exactly as WanImageToVideoPipeline does (both
    passes of guidance included): only where the condition comes from differs."""
    seg = plan.segment("d.0")
    assert seg.guidance > 1
    conditions = engine.conditions(seg, {})
    ours = engine.pipe(latents=noise_for(engine, seg), condition=conditions.condition, prompt_embeds=conditions.prompt,
                       negative_prompt_embeds=conditions.negative, image_embeds=conditions.image,
                       num_inference_steps=seg.steps, guidance_scale=seg.guidance)
    noise = noise_for(engine, seg)
    monkeypatch.setattr(engine.pipe, "prepare_latents", lambda *a, **k: (noise, conditions.condition))
    monkeypatch.setattr(engine.pipe, "check_inputs", lambda *a, **k: None)   # it refuses image and image_embeds
    stock = WanImageToVideoPipeline.__call__(
        engine.pipe, image=Image.new("RGB", (W, H)), prompt_embeds=conditions.prompt,
        negative_prompt_embeds=conditions.negative, image_embeds=conditions.image, height=H, width=W,
        num_frames=seg.frames, num_inference_steps=seg.steps, guidance_scale=seg.guidance, latents=noise,
        output_type="latent").frames
    assert torch.equal(ours, stock)


def test_rendered_latents_are_the_denoised_latents_the_frames_are_decoded_from(engine, plan):
    seg = plan.segment("c.0")
    out = engine.render(seg, pictures(plan, seg))
    z, t, s = engine.pipe.vae.config.z_dim, engine.pipe.vae_scale_factor_temporal, engine.pipe.vae_scale_factor_spatial
    assert out.latents.shape == (1, z, (seg.frames - 1) // t + 1, H // s, W // s) == (1, 4, 5, 8, 8)
    assert out.latents.dtype == np.float32 and isinstance(out.latents, np.ndarray)
    decoded = (np.clip(engine.decode(torch.from_numpy(out.latents)), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    assert np.array_equal(decoded, out.frames)
    assert not np.array_equal(out.latents, noise_for(engine, seg).numpy())    # denoised, not the noise


# ---------------------------------------------------------------- character bank


def test_bank_embeddings_reach_the_transformer_for_a_shot_that_starts_from_previous(engine, plan):
    bank = bank_for(engine, plan)
    engine.use_bank(bank)
    first = engine.render(plan.segment("a.0"), pictures(plan, plan.segment("a.0")))
    seg = plan.segment("b.0")
    assert seg.conditions[0].image.kind == "segment"
    seen = []
    hook = engine.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["encoder_hidden_states_image"].clone()), with_kwargs=True)
    try:
        engine.render(seg, pictures(plan, seg, {"a.0": first.last_frame}))
        engine.use_bank(CharacterBank())        # the same shot with an empty bank
        engine.render(seg, pictures(plan, seg, {"a.0": first.last_frame}))
    finally:
        hook.remove()
    with_bank, without = seen[0], seen[-1]
    start_tokens = engine.encode_pictures([first.last_frame])[0][0]
    hana_tokens, _ = bank.character("hana", engine.encoder_id)
    w = engine.opts.identity_weight
    assert 0 < w < 1
    expected = (1 - w) * start_tokens + w * hana_tokens
    assert np.allclose(with_bank[0].numpy(), expected, atol=1e-5)
    assert np.allclose(without[0].numpy(), start_tokens, atol=1e-5)
    assert not np.allclose(with_bank.numpy(), without.numpy(), atol=1e-3)


def test_character_similarity_is_measured_with_the_same_encoder(engine, plan):
    engine.use_bank(bank_for(engine, plan))
    seg = plan.segment("a.0")
    out = engine.render(seg, pictures(plan, seg))
    sim = out.metrics["character_similarity.hana"]
    assert -1.0 <= sim <= 1.0 and out.metrics["character_similarity"] == sim
    # recomputed by hand from the bank vector and the sampled frames
    _, vectors = engine.encode_pictures(list(out.frames[[0, 3, 5, 8]]))
    _, hana = engine.bank.character("hana", engine.encoder_id)
    v = vectors.mean(axis=0)
    # reference in float64, as engine.bank.cosine computes it: in float32 its 16-term dots (BLAS sdot, summed
    # in a CPU-dependent order) alone could be off by 16 * 2**-24 ~ 1e-6, the whole tolerance. 1e-6 (~8 float32
    # ulps at |cos| <= 1) is left for float32 noise in the vectors (frames encoded one by one instead of as a
    # batch still pass); sampling the frames one later moves the cosine by 4e-2, dropping one by 2e-2
    h, v = hana.astype(np.float64), v.astype(np.float64)
    assert sim == pytest.approx(float(h @ v / np.linalg.norm(h) / np.linalg.norm(v)), abs=1e-6)


def test_the_bank_survives_a_parquet_round_trip(engine, plan, tmp_path):
    import pyarrow.parquet as pq

    bank = bank_for(engine, plan)
    pq.write_table(bank.to_table(), tmp_path / "characters.parquet")
    again = CharacterBank.from_table(pq.read_table(tmp_path / "characters.parquet"))
    [row] = again.rows.values()
    [orig] = bank.rows.values()
    assert row.key == orig.key and row.encoder == engine.encoder_id
    assert np.array_equal(row.tokens, orig.tokens) and np.array_equal(row.vector, orig.vector)


# ---------------------------------------------------------------- sampling


def test_same_seed_and_inputs_give_identical_frames_on_a_fresh_engine(engine, plan):
    seg = plan.segment("c.0")
    first = engine.render(seg, pictures(plan, seg)).frames
    again = WanEngine(load_preset("wan-tiny")).render(seg, pictures(plan, seg)).frames
    other = engine.render(replace(seg, seed=seg.seed + 1), pictures(plan, seg)).frames
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("shot", "forwards_per_step"), [("a", 1), ("d", 2)])
def test_the_unconditional_pass_runs_only_with_guidance_above_one(engine, plan, shot, forwards_per_step):
    seg = plan.segment(f"{shot}.0")
    assert (seg.guidance > 1) == (forwards_per_step == 2)
    calls = []
    hook = engine.pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        engine.render(seg, pictures(plan, seg))
    finally:
        hook.remove()
    assert len(calls) == seg.steps * forwards_per_step


def test_prompt_embeddings_are_cached_per_prompt(engine):
    first = engine.encode_text("a quiet street", "", False)
    assert engine.encode_text("a quiet street", "", False) is first
    assert engine.encode_text("a loud street", "", False) is not first


def test_vae_tiling_switches_on_from_the_preset_size(engine):
    engine._tiling(1280, 720)
    assert engine.pipe.vae.use_tiling
    engine._tiling(832, 480)
    assert not engine.pipe.vae.use_tiling


# ---------------------------------------------------------------- two experts


def test_a_high_and_low_noise_pair_switches_experts_at_the_boundary(plan, sakuga_cache, tmp_path):
    """AniSora V3.2's layout: a base folder plus two Wan-format expert checkpoints and a boundary."""
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    from engine.wan.layouts.replicas import wan_state_dict

    base = tiny.ensure(sakuga_cache / "models" / "wan-tiny-v2")
    for name, seed in (("high.safetensors", 1), ("low.safetensors", 2)):
        torch.manual_seed(seed)
        expert = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(base, subfolder="transformer"))
        save_file(wan_state_dict(expert.state_dict()), tmp_path / name)
    preset = load_preset("wan-tiny")
    pair = preset.model_copy(update={"name": "pair", "options": {
        **preset.options, "build_tiny": False, "base": str(base), "transformer": str(tmp_path / "high.safetensors"),
        "transformer_2": str(tmp_path / "low.safetensors"), "boundary_ratio": 0.9}})
    engine = WanEngine(pair)
    calls = {"high": 0, "low": 0}
    hooks = [engine.pipe.transformer.register_forward_pre_hook(lambda *a: calls.__setitem__("high", calls["high"] + 1)),
             engine.pipe.transformer_2.register_forward_pre_hook(lambda *a: calls.__setitem__("low", calls["low"] + 1))]
    seg = plan.segment("c.0")
    try:
        engine.render(seg, pictures(plan, seg))
    finally:
        for h in hooks:
            h.remove()
    timesteps = engine.pipe.scheduler.timesteps
    high = int((timesteps >= 0.9 * engine.pipe.scheduler.config.num_train_timesteps).sum())
    assert 0 < high < seg.steps
    assert calls == {"high": high, "low": seg.steps - high}


def test_an_encoder_fingerprint_ignores_the_thread_count_and_sees_a_single_changed_weight():
    """Workers with other thread counts must give one encoder one id (or banks are not shared); a float
    sum of 5M values changes with the thread count, the fingerprint's integer sums do not."""
    from engine.wan.encoders import fingerprint

    layer = torch.nn.Linear(2500, 2000)
    threads = torch.get_num_threads()
    try:
        ids = set()
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            ids.add(fingerprint(layer))
    finally:
        torch.set_num_threads(threads)
    assert len(ids) == 1
    with torch.no_grad():
        layer.weight[1234, 567] = torch.nextafter(layer.weight[1234, 567], torch.tensor(2.0))   # one ulp
    assert fingerprint(layer) not in ids
