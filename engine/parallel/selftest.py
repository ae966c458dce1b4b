"""The fixture of `sakuga selftest sp`: the tiny Wan transformer and one set of inputs, run once whole
and once sharded over a gang, so the two outputs can be compared."""
from __future__ import annotations

import torch


def selftest_case(ulysses: int, seed: int = 0, size: tuple[int, int, int] = (5, 16, 16)):
    """The tiny Wan transformer in fp32 with enough heads for `ulysses`, and one set of inputs (the
    same on every rank: each rank shards what it needs) of latent `size` (frames, height, width)."""
    from ..wan.tiny import build_pipeline

    heads = max(4, ulysses)
    transformer = build_pipeline(0, heads=heads).transformer.float().eval()
    g = torch.Generator().manual_seed(seed)
    c = transformer.config
    inputs = {"hidden_states": torch.randn(1, c.in_channels, *size, generator=g),
              "timestep": torch.tensor([500.0]),
              "encoder_hidden_states": torch.randn(1, 512, c.text_dim, generator=g),
              "encoder_hidden_states_image": torch.randn(1, 257, c.image_dim, generator=g)}
    return transformer, inputs


def forward(transformer, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return transformer(**inputs, return_dict=False)[0]
