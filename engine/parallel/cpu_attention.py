"""What diffusers' context parallelism lacks on CPU, so that ring and hybrid attention run exactly in tests.

On CPU diffusers' native attention cannot return the log-sum-exp that ring attention merges blocks by,
and gloo cannot gather shares of unequal length. `install_cpu_attention` registers a plain-torch op
that returns the log-sum-exp under the native backend's name and a padded all-gather, once per process.
"""
from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

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
    logger.debug("installed the log-sum-exp CPU attention and the padded all-gather")


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
