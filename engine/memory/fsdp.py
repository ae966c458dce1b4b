"""A Wan transformer sharded across the gang with FSDP2, for models one GPU cannot hold.

`torch.distributed.fsdp.fully_shard` on every block and then on the whole model: each rank keeps
1/k of every parameter (a DTensor shard on its device); a block's forward all-gathers its parameters
first and frees the full copies after (`reshard_after_forward`), so a rank holds its shards, the
block running and the one being gathered next, and the model's few non-block parameters during the
forward. The gang is the current torch.distributed group (the farm's gang, or a test's gloo group);
the same group also shards the tokens (`engine.parallel.sharding`): every rank computes every block
on its own tokens with the whole block's weights, so FSDP changes where weights live, not the math.
"""
from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def shard(transformer: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Shard `transformer` (on the CPU, or already on `device`) across the current group; each rank's
    shards land on `device` block by block, so no rank ever holds the whole model there."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        raise RuntimeError("FSDP shards a transformer across a gang: no torch.distributed group is joined")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in transformer.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
    fully_shard(transformer, mesh=mesh, reshard_after_forward=True)
    transformer._sakuga_fsdp_world = dist.get_world_size()
    logger.debug("transformer sharded across %d ranks with FSDP2 (%d blocks)", dist.get_world_size(),
                 len(transformer.blocks))
    return transformer


def sharded_world(transformer: torch.nn.Module | None) -> int | None:
    """The gang width `transformer` is sharded across, or None when it is whole."""
    return getattr(transformer, "_sakuga_fsdp_world", None)


def local_bytes(module: torch.nn.Module) -> int:
    """Bytes of the parameters this rank holds (its shards, for an FSDP module)."""
    total = 0
    for p in module.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        total += local.numel() * local.element_size()
    return total
