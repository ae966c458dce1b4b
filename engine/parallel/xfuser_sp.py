"""xDiT's long-context attention (xfuser) as a gang's attention exchange, for studios already on xDiT.

diffusers still splits the tokens over the gang and gathers the transformer's output (its
context-parallel plan for Wan); inside each attention call, xfuser's Ulysses all-to-all and ring
with flash-attention kernels replace diffusers' own. xfuser cannot even be imported without a GPU
(and its dependency yunchang's torch ring is wrong on CPU), so nothing here imports it until a gang
on GPUs asks for it; CPU tests exercise diffusers' path instead.
"""
from __future__ import annotations

import logging
import sys

import torch

logger = logging.getLogger(__name__)

_STATE: dict = {}     # the installed layout and xfuser's attention module


def unavailable() -> str | None:
    """Why the xfuser backend cannot run here, or None."""
    if not torch.cuda.is_available():
        return "xfuser needs CUDA GPUs (it cannot be imported without one)"
    try:
        import xfuser  # noqa: F401
    except ImportError as e:
        return f"xfuser is not installed ({e}); install the GPU extra: pip install 'sakuga[gpu]'"
    return None


def install(layout) -> None:
    """Build xfuser's sequence-parallel groups for `layout` over the current torch.distributed group
    and route diffusers' sharded attention calls through xfuser's long-context attention."""
    why = unavailable()
    if why:
        raise RuntimeError(f"sp_backend xfuser: {why}; use sp_backend: diffusers")
    import torch.distributed as dist
    from diffusers.models import attention_dispatch as ad
    from xfuser.core.distributed import (
        init_distributed_environment,
        initialize_model_parallel,
        model_parallel_is_initialized,
    )
    from xfuser.core.long_ctx_attention import xFuserLongContextAttention
    from yunchang.kernels import AttnType

    if _STATE.get("layout") != layout:
        reset()
    if not model_parallel_is_initialized():
        # the default group is the gang's: xfuser builds its Ulysses and ring subgroups inside it
        init_distributed_environment(rank=dist.get_rank(), world_size=dist.get_world_size())
        initialize_model_parallel(sequence_parallel_degree=layout.world, ring_degree=layout.ring,
                                  ulysses_degree=layout.ulysses)
        _STATE.update(layout=layout, attention=xFuserLongContextAttention(attn_type=AttnType.FA))
        logger.debug("xfuser sequence-parallel groups: ulysses %d x ring %d", layout.ulysses, layout.ring)
    if "native" not in _STATE:
        registry = ad._AttentionBackendRegistry
        native = _STATE["native"] = registry._backends[ad.AttentionBackendName.NATIVE]

        def routed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False, return_lse=False, _parallel_config=None):
            if _parallel_config is None or "attention" not in _STATE:
                return native(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, return_lse)
            if attn_mask is not None or is_causal or return_lse:
                raise ValueError("the xfuser backend takes unmasked, non-causal attention without log-sum-exp")
            # (batch, local tokens, heads, dim) in and out, as diffusers' ops; flash kernels take half types
            half = [x.to(torch.bfloat16) if x.dtype == torch.float32 else x for x in (query, key, value)]
            out = _STATE["attention"](None, *half, dropout_p=dropout_p, softmax_scale=scale)
            return out.to(query.dtype)

        registry._backends[ad.AttentionBackendName.NATIVE] = routed


def reset() -> None:
    """Tear down xfuser's groups (before the worker's gang changes)."""
    if "xfuser" not in sys.modules or "layout" not in _STATE:
        return
    from xfuser.core.distributed import destroy_model_parallel

    destroy_model_parallel()
    _STATE.pop("layout", None)
    _STATE.pop("attention", None)
