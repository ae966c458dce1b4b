"""A Wan-format single-file checkpoint (how AniSora V3 was first shared) loads offline into the same model.
Every other layout, and the refusals: test_layouts.py."""
from __future__ import annotations

import copy
import socket

import pytest
import torch
from safetensors.torch import save_file

from engine.wan import tiny
from engine.wan.layouts import naming, replicas
from engine.wan.weights import load_transformer


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection (the Hugging Face hub included) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def forward(model) -> torch.Tensor:
    """The model's output on a fixed random input, on a deep copy (freshly allocated, equally aligned:
    CPU kernels may round by an ulp differently for other alignments)."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model(hidden_states=torch.randn(1, 12, 2, 4, 4, generator=gen),
                     timestep=torch.tensor([500]),
                     encoder_hidden_states=torch.randn(1, tiny.TEXT_TOKENS, 16, generator=gen),
                     encoder_hidden_states_image=torch.randn(1, 5, 16, generator=gen),
                     return_dict=False)[0]


def test_wan_names_are_diffusers_names_read_backwards():
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    names = ["blocks.0.attn1.to_q.weight", "blocks.0.norm2.weight", "blocks.0.scale_shift_table", "scale_shift_table",
             "proj_out.weight", "condition_embedder.image_embedder.norm2.weight", "blocks.3.attn2.add_k_proj.weight"]
    wan = naming.to_wan(names)
    assert set(wan) == {"blocks.0.self_attn.q.weight", "blocks.0.norm3.weight", "blocks.0.modulation",
                        "head.modulation", "head.head.weight", "img_emb.proj.4.weight", "blocks.3.cross_attn.k_img.weight"}
    assert set(convert_wan_transformer_to_diffusers({w: None for w in wan})) == set(names)


def test_wan_format_checkpoint_loads_into_the_same_transformer(tmp_path, no_network):
    from diffusers import WanTransformer3DModel

    folder = tiny.build(tmp_path / "tiny")
    original = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer", local_files_only=True).eval()
    wan = replicas.wan_state_dict(original.state_dict())
    assert any("self_attn" in k for k in wan) and any(k.startswith("img_emb.proj.") for k in wan)
    assert not any("attn1" in k or "attn2" in k or "condition_embedder" in k for k in wan)
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
