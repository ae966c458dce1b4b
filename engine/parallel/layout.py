"""How a gang of k ranks shares one attention call, and whether its halves split CFG: plain arithmetic, no torch.

Ulysses (all-to-all over heads) wants the fast links inside a node and a degree that divides the
attention heads; ring (key/value blocks passed around, merged by log-sum-exp) takes the rest. A token
count that does not divide by the gang is sharded unevenly, which diffusers pads for pure Ulysses or
pure ring, not for both at once.
"""
from __future__ import annotations

from dataclasses import dataclass


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


def cfg_halves(world: int, guidance: float, enabled: bool) -> bool:
    """Whether a gang of `world` runs CFG's two passes on its two halves (`engine.parallel.cfg`): guidance
    above 1 (two passes), an even gang, and the preset's `options.cfg_parallel`. Each half then shares
    its attention calls as a gang of world / 2 would."""
    return enabled and guidance > 1.0 and world >= 2 and world % 2 == 0
