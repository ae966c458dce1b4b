"""The real configs in configs/architectures/, instantiated on the meta device and counted.

Counts are computed, never typed in; the bands below are sanity bounds: each is narrower than the
smallest change a wrong config would make (one layer fewer of a 14B transformer is 0.4e9, of UMT5-XXL
0.19e9, of CLIP-H 0.02e9), and wide enough for the published rounding ("14B", "1.3B")."""
from __future__ import annotations

import json
import resource

import pytest
import torch

from engine.memory.components import _build, component, read_config
from storyboard.architecture import ARCHITECTURES_DIR, KINDS
from storyboard.presets import available, load_preset


@pytest.mark.parametrize("role, name, low, high", [
    ("transformer", "wan2.1-i2v-14b", 16.3e9, 16.5e9),      # about 16.4e9 in diffusers' layout
    ("transformer", "wan2.2-i2v-a14b", 14.2e9, 14.4e9),     # each expert about 14.3e9
    ("transformer", "wan2.1-t2v-1.3b", 1.40e9, 1.44e9),     # about 1.42e9
    ("text_encoder", "umt5-xxl", 5.6e9, 5.75e9),            # the encoder half of UMT5-XXL
    ("image_encoder", "clip-vit-h-14", 0.62e9, 0.64e9),     # ViT-H/14's 632M vision tower
    ("vae", "wan2.1", 0.12e9, 0.135e9),                     # Wan2.1's 127M VAE
])
def test_each_real_config_counts_as_published(role, name, low, high):
    assert low <= component(role, name).params <= high


def test_the_i2v_transformer_is_the_a14b_expert_plus_exactly_its_image_cross_attention():
    i2v = read_config("wan2.1-i2v-14b", "transformer")
    d = i2v["num_attention_heads"] * i2v["attention_head_dim"]
    image = i2v["image_dim"]
    # per block: add_k_proj and add_v_proj (d x d + bias) and norm_added_k (d); once: the image
    # embedder's two layer norms and its feed-forward image -> image -> d
    per_block = 2 * (d * d + d) + d
    embedder = 2 * image + (image * image + image) + (image * d + d) + 2 * d
    extra = component("transformer", "wan2.1-i2v-14b").params - component("transformer", "wan2.2-i2v-a14b").params
    assert extra == i2v["num_layers"] * per_block + embedder


def test_umt5_xxl_counts_its_embedding_and_24_gated_layers():
    c = read_config("umt5-xxl", "text_encoder")
    d, inner, ff = c["d_model"], c["num_heads"] * c["d_kv"], c["d_ff"]
    # q, k, v, o; gated GELU (wi_0, wi_1, wo); two layer norms; a relative bias per layer (UMT5)
    layer = 4 * d * inner + 3 * d * ff + 2 * d + c["relative_attention_num_buckets"] * c["num_heads"]
    assert component("text_encoder", "umt5-xxl").params == c["vocab_size"] * d + c["num_layers"] * layer + d


def test_a_14b_transformer_on_the_meta_device_takes_no_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # KiB on Linux
    with torch.device("meta"):
        model = _build("transformer", read_config("wan2.1-i2v-14b", "transformer"))
    assert all(p.is_meta for p in model.parameters())
    # 16.4e9 bf16 parameters would be 30 GiB; the modules themselves take a few MB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024


def test_blocks_and_fp8_layers_cover_the_transformer():
    t = component("transformer", "wan2.1-i2v-14b")
    assert t.blocks == 40 and t.block_params * t.blocks + t.nonblock_params == t.params
    assert 0 < t.nonblock_params < 0.02 * t.params           # embeddings and the output layer
    # FP8 stores the linear layers in one byte: nearly all of it, never the norms or the embeddings
    assert 0.97 * t.params < t.fp8_params < t.params
    assert t.weight_bytes(2, fp8=True) == t.fp8_params + 2 * (t.params - t.fp8_params)


def test_every_config_file_names_its_class_and_source_and_every_preset_architecture_loads():
    for path in ARCHITECTURES_DIR.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["_class_name"] and len(data["_source"]) > 20, path.name
        assert path.name.split(".")[-2] in set(KINDS.values()), path.name
    with_architecture = [load_preset(n) for n in available() if load_preset(n).architecture is not None]
    assert {p.name for p in with_architecture} >= {"anisora-v3", "anisora-v3.2", "anisora-v2", "wan2.1-t2v-1.3b"}
    for preset in with_architecture:
        for role, name in preset.architecture.components().items():
            assert component(role, name).params > 0
