"""Sequence-parallel attention for the Wan transformer through diffusers' context parallelism.

A gang of k processes (one per GPU, a torch.distributed group) runs the transformer with its tokens
split k ways: Ulysses (all-to-all over heads) inside a node, ring (key/value blocks passed around,
merged by log-sum-exp) across. diffusers provides both (`ContextParallelConfig`,
`enable_parallelism`); on CPU its native attention cannot return the log-sum-exp ring needs, so
`install_cpu_attention` registers one that does, under the native backend's name, so that ring and
hybrid run exactly in CPU tests.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    diffusers' own native attention, and so do Ulysses-only calls (each rank attends over whole heads,
    so its frames are bit-identical to one process); ring and hybrid use the log-sum-exp op."""
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
        ring = _parallel_config.context_parallel_config.ring_degree > 1
        forward_op = _math_attention_op if ring or return_lse else ad._native_attention_forward_op
        return ad._templated_context_parallel_attention(
            query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, return_lse,
            forward_op=forward_op, backward_op=ad._native_attention_backward_op,
            _parallel_config=_parallel_config)

    registry._backends[ad.AttentionBackendName.NATIVE] = cpu_attention
    from diffusers.hooks import context_parallel

    context_parallel._all_gather_anything = _all_gather_padded
    if not torch.cuda.is_available():
        # diffusers divides the world by the accelerator count to find this rank's device
        torch.accelerator.device_count = lambda: 1
    _INSTALLED = True


def _all_gather_padded(tensor: torch.Tensor, dim: int, group) -> torch.Tensor:
    """Gather shares of unequal length along `dim` (diffusers' "anything" sharding of token counts that
    do not divide by the gang). NCCL gathers unequal shapes; gloo does not, so each share is padded to
    the longest, gathered, and trimmed back before concatenating."""
    import torch.distributed as dist
    from diffusers.models.attention_dispatch import gather_size_by_comm

    tensor = tensor.contiguous()
    sizes = gather_size_by_comm(tensor.shape[dim], group)
    longest = max(sizes)
    pad = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [0, longest - tensor.shape[dim]]
    padded = torch.nn.functional.pad(tensor, pad)
    shares = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(shares, padded, group=group)
    return torch.cat([share.narrow(dim, 0, n) for share, n in zip(shares, sizes)], dim=dim)


def split(world: int, heads: int, per_node: int | None = None) -> tuple[int, int]:
    """(ulysses, ring) with ulysses * ring = world: the widest Ulysses degree that divides the heads and
    fits a node (all-to-all wants the fast links), ring for the rest."""
    per_node = per_node or world
    ulysses = max(d for d in range(1, world + 1) if world % d == 0 and heads % d == 0 and d <= per_node)
    return ulysses, world // ulysses


@dataclass(frozen=True)
class Layout:
    """How a gang of `ulysses * ring` ranks shares one attention call. `uneven`: the token count does
    not divide by the gang, so diffusers' "anything" sharding pads each rank's share to the largest and
    trims it after the exchange (it does that for pure Ulysses or pure ring, not for both at once)."""
    ulysses: int
    ring: int
    uneven: bool = False

    @property
    def world(self) -> int:
        return self.ulysses * self.ring


def layout(world: int, heads: int, tokens: int, per_node: int | None = None) -> Layout:
    ulysses, ring = split(world, heads, per_node)
    if tokens % world == 0:
        return Layout(ulysses, ring)
    if ulysses > 1 and ring > 1:
        return Layout(1, world, uneven=True)
    return Layout(ulysses, ring, uneven=True)


def tokens(transformer, latent_shape: tuple[int, ...]) -> int:
    """The transformer's sequence length for latents of shape (B, C, F, H, W)."""
    pt, ph, pw = transformer.config.patch_size
    _, _, f, h, w = latent_shape
    return (f // pt) * (h // ph) * (w // pw)


def enable(transformer, shape: Layout | tuple[int, int], backend: str = "diffusers") -> None:
    """Shard `transformer`'s attention over the current torch.distributed group (again, if it was
    sharded another way before: a worker serves gangs of different widths with one loaded model).
    diffusers' hooks split the tokens and gather the output either way; `backend` says who does the
    exchange inside each attention call: diffusers' templated attention, or xDiT's xfuser."""
    from diffusers import ContextParallelConfig

    shape = shape if isinstance(shape, Layout) else Layout(*shape)
    if getattr(transformer, "_sakuga_layout", None) == (shape, backend):
        return
    disable(transformer)
    heads = transformer.config.num_attention_heads
    if heads % shape.ulysses:
        raise ValueError(f"Ulysses degree {shape.ulysses} does not divide the model's {heads} attention heads")
    if backend == "xfuser":
        from . import xfuser_sp

        xfuser_sp.install(shape)
        transformer.set_attention_backend("native")
    elif torch.cuda.is_available():
        # ring needs an op that returns log-sum-exp: cuDNN's does, the default SDPA does not
        transformer.set_attention_backend("_native_cudnn" if shape.ring > 1 else "native")
    else:
        install_cpu_attention()
    transformer.enable_parallelism(config=ContextParallelConfig(
        ulysses_degree=shape.ulysses, ring_degree=shape.ring,
        ulysses_anything=shape.uneven and shape.ulysses > 1, ring_anything=shape.uneven and shape.ring > 1))
    transformer._sakuga_layout = (shape, backend)


def disable(transformer) -> None:
    """Undo `enable` (diffusers has no call for it): remove the split/gather hooks and forget the config."""
    from diffusers.hooks.context_parallel import remove_context_parallel

    if getattr(transformer, "_parallel_config", None) is None:
        return
    remove_context_parallel(transformer, transformer._cp_plan)
    for module in transformer.modules():
        processor = getattr(module, "processor", None)
        if processor is not None and hasattr(processor, "_parallel_config"):
            processor._parallel_config = None
    transformer._parallel_config = None
    transformer._sakuga_layout = None


def selftest_case(ulysses: int, seed: int = 0, size: tuple[int, int, int] = (5, 16, 16)):
    """The tiny Wan transformer in fp32 with enough heads for `ulysses`, and one set of inputs (the
    same on every rank: each rank shards what it needs) of latent `size` (frames, height, width)."""
    from .tiny import build_pipeline

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
