"""Sharding a render over a gang: the Wan transformer's attention through diffusers' context parallelism.

A gang of k processes (one per GPU, a torch.distributed group) runs the transformer with its tokens
split k ways: Ulysses (all-to-all over heads) inside a node, ring (key/value blocks passed around,
merged by log-sum-exp) across. diffusers provides both (`ContextParallelConfig`, `enable_parallelism`)
and its hooks split the tokens and gather the output; `enable` picks who exchanges inside each
attention call (diffusers, with `cpu_attention` on CPU, or xfuser) and `disable` undoes it. What only
rank 0 computes (prompt and image encodings) reaches the others through `broadcast`.
"""
from __future__ import annotations

import logging

import torch

from .cpu_attention import install_cpu_attention
from .layout import Layout

logger = logging.getLogger(__name__)


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
    logger.debug("attention sharded: ulysses %d x ring %d%s through %s", shape.ulysses, shape.ring,
                 " (uneven)" if shape.uneven else "", backend)


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


def broadcast(inputs: dict | None, device: torch.device) -> dict:
    """Rank 0's `inputs` (tensors or None) on every rank of the current group."""
    box = [None if inputs is None else {k: None if v is None else v.cpu() for k, v in inputs.items()}]
    torch.distributed.broadcast_object_list(box, src=0)
    return {k: None if v is None else v.to(device) for k, v in box[0].items()}


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether any rank of the current group says `flag` (one one-element all-reduce): the same answer
    on every rank, so a gang stops at the same step."""
    box = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(box, op=torch.distributed.ReduceOp.MAX)
    return bool(box.item())


def from_rank0(value):
    """Rank 0's `value` (any picklable object: an int, bytes) on every rank of the current group."""
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
