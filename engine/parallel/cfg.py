"""Classifier-free guidance in parallel: a gang's two halves run the conditional and the unconditional pass.

With guidance above 1 each step runs the transformer twice, once on the prompt and once on the
negative prompt, and mixes them (`uncond + g * (cond - uncond)`). On a gang of k (even) the first half
runs the conditional pass and the second half the unconditional one at the same time, each half
sequence-parallel at degree k/2 inside itself (diffusers' context parallelism given the half's own
device mesh); partners in the two halves then swap their predictions (one all-gather of two) and every
rank mixes the same two tensors, so every rank steps the same latents and they are the bytes a lone
render mixes. Two forwards at degree k/2 side by side instead of two at degree k one after the other:
the halves work at a better parallel efficiency and exchange half as many tokens' worth of attention.

The split is kept on the transformer (`enable`), as diffusers keeps its parallel config there, and
`KeyframePipeline.predict_noise` asks `split_of(model)` which pass is this rank's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from . import sharding
from .layout import Layout, layout

logger = logging.getLogger(__name__)

_meshes: dict = {}     # (world group, k) -> the ("cfg", "ring", "ulysses") mesh: built once per gang and width


@dataclass(frozen=True)
class CfgSplit:
    """This rank's half of a CFG-parallel gang."""

    half: int            # 0: the conditional pass (rank 0's half), 1: the unconditional pass
    pair: object         # the process group of this rank and its partner in the other half
    sp: Layout | None    # the half's sequence-parallel layout (None: a half of one rank)

    @property
    def conditional(self) -> bool:
        return self.half == 0

    @property
    def context(self) -> str:
        """The diffusers cache context of this half's pass (as the lone pipeline names them)."""
        return "cond" if self.conditional else "uncond"

    def guide(self, own: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """Both halves' predictions from this rank's, mixed as the lone pipeline mixes them."""
        import torch.distributed as dist

        both = [torch.empty_like(own) for _ in range(2)]
        dist.all_gather(both, own.contiguous(), group=self.pair)
        cond, uncond = both
        return uncond + guidance_scale * (cond - uncond)


def half_layout(ranks: int, heads: int, tokens: int) -> Layout | None:
    """The sequence-parallel layout inside each half of a gang of `ranks` (None: halves of one rank)."""
    return None if ranks == 2 else layout(ranks // 2, heads, tokens)


def enable(transformer, ranks: int, tokens: int, backend: str = "diffusers") -> CfgSplit:
    """Split `transformer`'s two passes over the halves of the current group (`ranks` wide): each half
    sequence-parallel over its own ranks. The halves are ranks [0, k/2) and [k/2, k): on a node's
    consecutive GPUs, each half keeps its Ulysses all-to-all on neighbours."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    sp = half_layout(ranks, transformer.config.num_attention_heads, tokens)
    if backend == "xfuser" and sp is not None:
        raise ValueError("CFG-parallel halves wider than one rank need sp_backend diffusers")
    key = (dist.group.WORLD, ranks, sp)
    if key not in _meshes:
        _meshes.clear()         # meshes of a gang this worker has left
        device = "cuda" if torch.cuda.is_available() else "cpu"
        ring, ulysses = (1, 1) if sp is None else (sp.ring, sp.ulysses)
        _meshes[key] = init_device_mesh(device, (2, ring, ulysses), mesh_dim_names=("cfg", "ring", "ulysses"))
    mesh = _meshes[key]
    if sp is None:
        sharding.disable(transformer)
    else:
        sharding.enable(transformer, sp, backend, mesh=mesh["ring", "ulysses"])
    split = CfgSplit(dist.get_rank() // (ranks // 2), mesh["cfg"].get_group(), sp)
    transformer._sakuga_cfg = split
    logger.debug("CFG-parallel: rank %d runs the %s pass, halves of %d (%s)", dist.get_rank(), split.context,
                 ranks // 2, sp)
    return split


def disable(transformer) -> None:
    """Both passes on every rank again (a lone render, or a gang that shards only the tokens)."""
    transformer._sakuga_cfg = None


def split_of(model) -> CfgSplit | None:
    return getattr(model, "_sakuga_cfg", None)


def sp_ranks(transformer, ranks: int) -> int:
    """How many ranks share each attention call of `transformer` in a gang of `ranks`."""
    split = split_of(transformer)
    return ranks if split is None else ranks // 2
