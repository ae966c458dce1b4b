"""Wan-format single-file checkpoints (how AniSora ships its transformer) load offline into the same model."""
from __future__ import annotations

import copy
import socket

import pytest
import torch
from safetensors.torch import save_file

from engine.wan import tiny
from engine.wan.weights import load_transformer

# diffusers' `convert_wan_transformer_to_diffusers` renames original Wan keys with an ordered list of
# str.replace rules; this is that list inverted (diffusers name -> Wan name) and applied in reverse order.
# The I2V image embedder comes first so its `norm2` is not caught by the norm2/norm3 swap; the VACE and
# Wan-Animate rules are left out (this model has none of those layers).
DIFFUSERS_TO_WAN = [
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("norm3", "norm__placeholder"),
    ("norm2", "norm3"),
    ("norm__placeholder", "norm2"),
    ("ffn.net.2", "ffn.2"),
    ("ffn.net.0.proj", "ffn.0"),
    ("scale_shift_table", "modulation"),      # blocks.N.modulation; the top-level one is head.modulation
    ("proj_out", "head.head"),
    (".norm_added_k.", ".norm_k_img."),
    (".add_v_proj.", ".v_img."),
    (".add_k_proj.", ".k_img."),
    (".to_v.", ".v."),
    (".to_k.", ".k."),
    (".to_q.", ".q."),
    (".to_out.0.", ".o."),
    ("attn1", "self_attn"),
    ("attn2", "cross_attn"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
]


def wan_name(key: str) -> str:
    for diffusers_part, wan_part in DIFFUSERS_TO_WAN:
        key = key.replace(diffusers_part, wan_part)
    return "head.modulation" if key == "modulation" else key


def wan_state_dict(model) -> dict[str, torch.Tensor]:
    return {wan_name(k): v.detach().clone().contiguous() for k, v in model.state_dict().items()}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection (the Hugging Face hub included) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def forward(model) -> torch.Tensor:
    """The model's output on a fixed random input. It runs on a deep copy: the weights of a loaded model lie
    wherever safetensors put them in the file, and CPU kernels round differently (by an ulp) for different
    memory alignments; freshly allocated copies of equal weights give bit-identical results."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model(hidden_states=torch.randn(1, 12, 2, 4, 4, generator=gen),
                     timestep=torch.tensor([500]),
                     encoder_hidden_states=torch.randn(1, tiny.TEXT_TOKENS, 16, generator=gen),
                     encoder_hidden_states_image=torch.randn(1, 5, 16, generator=gen),
                     return_dict=False)[0]


def test_wan_format_checkpoint_loads_into_the_same_transformer(tmp_path, no_network):
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    folder = tiny.build(tmp_path / "tiny")
    original = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer", local_files_only=True).eval()
    wan = wan_state_dict(original)
    assert any("self_attn" in k for k in wan) and any(k.startswith("img_emb.proj.") for k in wan)
    assert not any("attn1" in k or "attn2" in k or "condition_embedder" in k for k in wan)
    assert any(".k_img." in k for k in wan)   # the image key/value projections of Wan I2V
    # the inversion is exact: diffusers' own conversion brings back every original name
    assert set(convert_wan_transformer_to_diffusers(dict(wan))) == set(original.state_dict())
    checkpoint = tmp_path / "anisora.safetensors"
    save_file(wan, checkpoint)

    loaded = load_transformer(checkpoint, folder, torch.float32)

    assert isinstance(loaded, WanTransformer3DModel) and not loaded.training
    assert {k: v for k, v in loaded.config.items() if not k.startswith("_")} == \
        {k: v for k, v in original.config.items() if not k.startswith("_")}
    expected, actual = original.state_dict(), loaded.state_dict()
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype and torch.equal(actual[name], tensor), name
    assert torch.equal(forward(loaded), forward(original))


@pytest.mark.parametrize(("damage", "error"), [("missing", "missing"), ("wrong-shape", "expected shape"),
                                               ("extra", "tensors, but the transformer uses")])
def test_a_damaged_checkpoint_is_refused(tmp_path, no_network, damage, error):
    from diffusers import WanTransformer3DModel

    folder = tiny.build(tmp_path / "tiny")
    wan = wan_state_dict(WanTransformer3DModel.from_pretrained(folder, subfolder="transformer"))
    if damage == "missing":
        del wan["blocks.1.cross_attn.k.weight"]
    elif damage == "wrong-shape":
        wan["blocks.1.cross_attn.k.weight"] = torch.zeros(24, 23)
    else:
        wan["blocks.1.cross_attn.extra.weight"] = torch.zeros(24, 24)
    checkpoint = tmp_path / "damaged.safetensors"
    save_file(wan, checkpoint)

    with pytest.raises(ValueError, match=error):
        load_transformer(checkpoint, folder, torch.float32)
