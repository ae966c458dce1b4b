"""The activation formulas (engine/memory/activations.py) held against diffusers' own code replayed on
fake tensors at real sizes (engine/memory/replay.py): no memory used, no kernel run.

Tolerances: the formulas count the tensors alive at each phase's peak from reading the code, and leave
out what is a few MB (timestep embeddings, masks, per-head statistics); those are under 2% of each
replayed peak here, so 3% for the transformer. The VAE's per-pixel constants were fitted at one size and
are checked at others, where the first latent frame and the edges weigh differently: 5%; tiles, where
edge tiles are smaller than the one counted, 8%. The encoders' totals are constants at 512 tokens /
one picture: 10%."""
from __future__ import annotations

import pytest
import torch

from engine.memory import activations as act
from engine.memory.components import read_config
from engine.memory.replay import fake_build, peak_bytes

BF16 = 2


def transformer(name: str, layers: int):
    from diffusers import WanTransformer3DModel

    config = {**read_config(name, "transformer"), "num_layers": layers}
    return config, fake_build(lambda: WanTransformer3DModel.from_config(config), torch.bfloat16)


def vae():
    from diffusers import AutoencoderKLWan

    config = read_config("wan2.1", "vae")
    return act.VaeShape.from_config(config), fake_build(lambda: AutoencoderKLWan.from_config(config), torch.bfloat16)


def within(formula: int, replayed: int, tolerance: float) -> bool:
    return abs(formula - replayed) <= tolerance * replayed


@pytest.mark.parametrize("name", ["wan2.1-i2v-14b", "wan2.1-t2v-1.3b"])
def test_one_block_keeps_what_the_formula_counts_per_token(name):
    # 14B peaks in self-attention's QK norm, 1.3B in its feed-forward: both moments of the formula
    config, (mode, model) = transformer(name, 1)
    shape = act.TransformerShape.from_config(config)
    tokens = 8192
    with mode:
        hidden = torch.randn(1, tokens, shape.dim, dtype=torch.bfloat16)
        context = torch.randn(1, shape.context_tokens, shape.dim, dtype=torch.bfloat16)
        temb = torch.randn(1, 6, shape.dim)
        rope = (torch.randn(1, tokens, 1, shape.head_dim), torch.randn(1, tokens, 1, shape.head_dim))
    block = model.blocks[0]
    replayed = peak_bytes(mode, block, lambda: block(hidden, context, temb, rope), [hidden, context, temb, *rope])
    assert within(tokens * act.block_bytes_per_token(shape, BF16), replayed, 0.03), replayed / tokens


def test_a_720p_forward_of_the_real_width_transformer_peaks_where_the_formula_says():
    config, (mode, model) = transformer("wan2.1-i2v-14b", 2)    # more layers only repeat the same peak
    shape = act.TransformerShape.from_config(config)
    tokens = act.tokens(shape, act.VaeShape(96), 1280, 720, 81)
    assert tokens == 75_600
    with mode:
        latents = torch.randn(1, 36, 21, 90, 160, dtype=torch.bfloat16)
        text = torch.randn(1, 512, 4096, dtype=torch.bfloat16)
        image = torch.randn(1, 257, 1280, dtype=torch.bfloat16)
        step = torch.tensor([500.0])
    replayed = peak_bytes(mode, model, lambda: model(latents, step, text, encoder_hidden_states_image=image,
                                                     return_dict=False)[0], [latents, text, image, step])
    formula = sum(act.denoise_bytes(shape, tokens, 1, BF16).values())
    assert within(formula, replayed, 0.03), (formula / 2**30, replayed / 2**30)
    assert replayed > 7.5 * 2**30     # ~8 GiB at 720p: what makes 1080p at degree 1 memory-bound


def test_more_ranks_keep_fewer_tokens_per_rank_but_every_rank_holds_the_whole_patch_embedding():
    shape = act.TransformerShape.from_config(read_config("wan2.1-i2v-14b", "transformer"))
    per_rank = [act.denoise_bytes(shape, 171_360, k, BF16) for k in (1, 2, 4, 8)]
    blocks = [p["blocks"] for p in per_rank]
    assert blocks[0] > blocks[1] > blocks[2] > blocks[3] and blocks[0] / blocks[3] == pytest.approx(8, rel=1e-3)
    assert len({p["hidden states"] for p in per_rank}) == 1
    ring = act.denoise_bytes(shape, 171_360, 8, BF16, ulysses=4, ring=2)
    assert ring["ring K/V"] > 0 == per_rank[3]["ring K/V"]


@pytest.mark.parametrize("width, height, frames", [(416, 240, 9), (832, 480, 5)])
def test_the_untiled_vae_decode_holds_its_working_set_per_pixel_and_the_video(width, height, frames):
    shape, (mode, model) = vae()
    with mode:
        latents = torch.randn(1, 16, (frames - 1) // 4 + 1, height // 8, width // 8, dtype=torch.bfloat16)
    replayed = peak_bytes(mode, model, lambda: model.decode(latents, return_dict=False)[0], [latents])
    assert within(act.vae_decode_bytes(shape, width, height, frames, False, BF16), replayed, 0.05)


def test_a_tiled_vae_decode_holds_one_tile_and_the_decoded_tiles():
    shape, (mode, model) = vae()
    model.enable_tiling()
    width, height, frames = 384, 320, 5        # 2 x 2 tiles of 256 every 192 pixels, two latent frames
    with mode:
        latents = torch.randn(1, 16, 2, height // 8, width // 8, dtype=torch.bfloat16)
    replayed = peak_bytes(mode, model, lambda: model.decode(latents, return_dict=False)[0], [latents])
    tiled = act.vae_decode_bytes(shape, width, height, frames, True, BF16)
    assert within(tiled, replayed, 0.08), (tiled, replayed)
    assert tiled < 0.6 * act.vae_decode_bytes(shape, width, height, frames, False, BF16)


def test_the_vae_encode_of_a_condition_video_holds_the_video_twice_and_a_chunk_working_set():
    shape, (mode, model) = vae()
    width, height, frames = 416, 240, 9

    def encode():    # as engine.wan.keyframe_pipeline.keyframe_condition does: float32, then the VAE's dtype
        video = torch.zeros(1, 3, frames, height, width)
        return model.encode(video.to(torch.bfloat16)).latent_dist.mode()

    replayed = peak_bytes(mode, model, encode)
    assert within(act.vae_encode_bytes(shape, width, height, frames, False, BF16), replayed, 0.05)


@pytest.mark.parametrize("role", ["text_encoder", "image_encoder"])
def test_the_encoders_transients_are_the_replayed_constants(role):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, UMT5Config, UMT5EncoderModel

    if role == "text_encoder":
        config = UMT5Config(**read_config("umt5-xxl", role))
        mode, model = fake_build(lambda: UMT5EncoderModel(config), torch.bfloat16)
        with mode:
            ids = torch.zeros(1, act.TEXT_TOKENS, dtype=torch.long)
            mask = torch.ones(1, act.TEXT_TOKENS, dtype=torch.long)
        inputs, run = [ids, mask], lambda: model(input_ids=ids, attention_mask=mask)
    else:
        config = CLIPVisionConfig(**read_config("clip-vit-h-14", role))
        mode, model = fake_build(lambda: CLIPVisionModelWithProjection(config), torch.bfloat16)
        with mode:
            pixels = torch.zeros(1, 3, 224, 224, dtype=torch.bfloat16)
        inputs, run = [pixels], lambda: model(pixel_values=pixels, output_hidden_states=True)
    replayed = peak_bytes(mode, model, run, inputs)
    assert within(act.encoder_bytes(role, BF16), replayed, 0.10), replayed
