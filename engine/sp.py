"""Sequence-parallel attention for the Wan transformer through diffusers' context parallelism.

A gang of k processes (one per GPU, a torch.distributed group) runs the transformer with its tokens
split k ways: Ulysses (all-to-all over heads) inside a node, ring (key/value blocks passed around,
merged by log-sum-exp) across. diffusers provides both (`ContextParallelConfig`,
`enable_parallelism`); on CPU its native attention cannot return the log-sum-exp ring needs, so
`install_cpu_attention` registers one that does, under the native backend's name, so that ring and
hybrid run exactly in CPU tests.
"""
from __future__ import annotations

import torch

_INSTALLED = False


def _math_attention_op(ctx, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                       enable_gqa=False, return_lse=False, _save_ctx=True, _parallel_config=None):
    """Attention in plain torch that also returns the log-sum-exp of each query's scores.
    Inputs and output are (batch, tokens, heads, dim); the LSE is (batch, tokens, heads)."""
    if dropout_p or is_causal or enable_gqa:
        raise ValueError("sequence-parallel CPU attention supports no dropout, causal mask or GQA")
    q, k, v = (x.permute(0, 2, 1, 3) for x in (query, key, value))
    scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3)
    return (out, lse.permute(0, 2, 1)) if return_lse else out


def install_cpu_attention() -> None:
    """Make the native attention backend ring-capable on CPU (idempotent). Unsharded calls still go to
    diffusers' own native attention, so single-process results do not change."""
    global _INSTALLED
    if _INSTALLED:
        return
    from diffusers.models import attention_dispatch as ad

    registry = ad._AttentionBackendRegistry
    native = registry._backends[ad.AttentionBackendName.NATIVE]

    def cpu_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False, return_lse=False, _parallel_config=None):
        if _parallel_config is None:
            return native(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, return_lse)
        return ad._templated_context_parallel_attention(
            query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, return_lse,
            forward_op=_math_attention_op, backward_op=ad._native_attention_backward_op,
            _parallel_config=_parallel_config)

    registry._backends[ad.AttentionBackendName.NATIVE] = cpu_attention
    if not torch.cuda.is_available():
        # diffusers divides the world by the accelerator count to find this rank's device
        torch.accelerator.device_count = lambda: 1
    _INSTALLED = True


def split(world: int, heads: int, per_node: int | None = None) -> tuple[int, int]:
    """(ulysses, ring) with ulysses * ring = world: the widest Ulysses degree that divides the heads and
    fits a node (all-to-all wants the fast links), ring for the rest."""
    per_node = per_node or world
    ulysses = max(d for d in range(1, world + 1) if world % d == 0 and heads % d == 0 and d <= per_node)
    return ulysses, world // ulysses


def enable(transformer, ulysses: int, ring: int) -> None:
    """Shard `transformer`'s attention over the current torch.distributed group."""
    from diffusers import ContextParallelConfig

    if not torch.cuda.is_available():
        install_cpu_attention()
    heads = transformer.config.num_attention_heads
    if heads % ulysses:
        raise ValueError(f"Ulysses degree {ulysses} does not divide the model's {heads} attention heads")
    transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=ulysses, ring_degree=ring))


def selftest_case(ulysses: int, seed: int = 0):
    """The tiny Wan transformer in fp32 with enough heads for `ulysses`, and one set of inputs (the
    same on every rank: each rank shards what it needs)."""
    from .tiny import build_pipeline

    heads = max(2, ulysses)
    transformer = build_pipeline(0, heads=heads).transformer.float().eval()
    g = torch.Generator().manual_seed(seed)
    c = transformer.config
    inputs = {"hidden_states": torch.randn(1, c.in_channels, 5, 16, 16, generator=g),
              "timestep": torch.tensor([500.0]),
              "encoder_hidden_states": torch.randn(1, 512, c.text_dim, generator=g),
              "encoder_hidden_states_image": torch.randn(1, 257, c.image_dim, generator=g)}
    return transformer, inputs


def forward(transformer, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return transformer(**inputs, return_dict=False)[0]
