"""A tiled VAE decode shared by a gang: each rank decodes some of the tiles, rank 0 blends them.

diffusers' `AutoencoderKLWan.tiled_decode` decodes overlapping spatial tiles one after another (each
from a cleared feature cache, so a tile depends on its own latents only), then blends every tile into
its upper and left neighbours and crops. Tiles are independent and frames are not (the decoder is
causal in time, each frame reading the cache the frame before left), so a gang splits the tiles:
`assign` gives each rank a share of about equal area, every rank decodes its own (`decode_tile`, the
very loop diffusers runs per tile), the shares travel to rank 0 as they are (point-to-point, no
reduction, so not one bit changes on the way) and rank 0 blends them with the VAE's own `blend_v` and
`blend_h` in diffusers' order (`join`). Same tiles, same blend, same order: the gang's video is the
bytes of one rank's tiled decode, which `tests/engine/parallel/test_tiled_decode.py` checks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from diffusers.utils.accelerate_utils import apply_forward_hook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """One latent tile: its place in the grid and its latent rows and columns."""

    row: int
    col: int
    top: int
    left: int
    height: int
    width: int

    @property
    def area(self) -> int:
        return self.height * self.width


def tiles_decode(vae, latent_shape: tuple[int, ...]) -> bool:
    """Whether `vae.decode` of latents of this shape goes through its tiled decode (diffusers' test)."""
    _, _, _, height, width = latent_shape
    r = vae.spatial_compression_ratio
    return vae.use_tiling and (width > vae.tile_sample_min_width // r or height > vae.tile_sample_min_height // r)


def grid(vae, latent_shape: tuple[int, ...]) -> list[Tile]:
    """The tiles of `tiled_decode` for latents of this shape, row by row as it visits them."""
    _, _, _, height, width = latent_shape
    r = vae.spatial_compression_ratio
    size_h, size_w = vae.tile_sample_min_height // r, vae.tile_sample_min_width // r
    stride_h, stride_w = vae.tile_sample_stride_height // r, vae.tile_sample_stride_width // r
    return [Tile(a, b, i, j, min(size_h, height - i), min(size_w, width - j))
            for a, i in enumerate(range(0, height, stride_h)) for b, j in enumerate(range(0, width, stride_w))]


def assign(tiles: list[Tile], world: int) -> list[int]:
    """The rank that decodes each tile: largest first onto the least loaded rank (edge tiles are
    smaller). Plain arithmetic on the shape, so every rank computes the same answer without talking."""
    load = [0] * world
    owner = [0] * len(tiles)
    for t in sorted(range(len(tiles)), key=lambda t: (-tiles[t].area, t)):
        rank = min(range(world), key=lambda r: (load[r], r))
        owner[t] = rank
        load[rank] += tiles[t].area
    return owner


def balance(tiles: list[Tile], world: int) -> float:
    """Total tile area over `world` times the busiest rank's: the decode's parallel efficiency from
    the split alone (1.0 when the shares are equal)."""
    owner = assign(tiles, world)
    busiest = max(sum(t.area for t, o in zip(tiles, owner) if o == r) for r in range(world))
    return sum(t.area for t in tiles) / (world * busiest)


def decode_tile(vae, z: torch.Tensor, tile: Tile) -> torch.Tensor:
    """One tile decoded as `tiled_decode` decodes it: frame by frame through the causal feature cache,
    from a cleared cache. `z` is already on the VAE's device and in its dtype."""
    r = vae.spatial_compression_ratio
    size_h, size_w = vae.tile_sample_min_height // r, vae.tile_sample_min_width // r
    vae.clear_cache()
    frames = []
    for k in range(z.shape[2]):
        vae._conv_idx = [0]
        x = vae.post_quant_conv(z[:, :, k:k + 1, tile.top:tile.top + size_h, tile.left:tile.left + size_w])
        frames.append(vae.decoder(x, feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=(k == 0)))
    vae.clear_cache()
    return torch.cat(frames, dim=2)


def join(vae, decoded: list[torch.Tensor], tiles: list[Tile], latent_shape: tuple[int, ...]) -> torch.Tensor:
    """The decoded tiles (in `grid` order) blended, cropped and clamped as `tiled_decode` finishes."""
    _, _, _, height, width = latent_shape
    r = vae.spatial_compression_ratio
    out_h, out_w = height * r, width * r
    stride_h, stride_w = vae.tile_sample_stride_height, vae.tile_sample_stride_width
    blend_h, blend_w = vae.tile_sample_min_height - stride_h, vae.tile_sample_min_width - stride_w
    patch = vae.config.patch_size
    if patch is not None:
        out_h, out_w, stride_h, stride_w = out_h // patch, out_w // patch, stride_h // patch, stride_w // patch
        blend_h, blend_w = vae.tile_sample_min_height // patch - stride_h, vae.tile_sample_min_width // patch - stride_w
    rows: list[list[torch.Tensor]] = []
    for tile, video in zip(tiles, decoded):
        if tile.col == 0:
            rows.append([])
        rows[-1].append(video)
    joined = []
    for a, row in enumerate(rows):
        cropped = []
        for b, video in enumerate(row):
            # in place and in this order, as diffusers does: a tile blends with its already-blended neighbours
            if a > 0:
                video = vae.blend_v(rows[a - 1][b], video, blend_h)
            if b > 0:
                video = vae.blend_h(row[b - 1], video, blend_w)
            cropped.append(video[:, :, :, :stride_h, :stride_w])
        joined.append(torch.cat(cropped, dim=-1))
    video = torch.cat(joined, dim=3)[:, :, :, :out_h, :out_w]
    if patch is not None:
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        video = unpatchify(video, patch_size=patch)
    return torch.clamp(video, min=-1.0, max=1.0)


@apply_forward_hook     # the VAE's offload hook (model CPU offload) moves it to the GPU first, as for `decode`
def gang_decode(vae, z: torch.Tensor, rank: int, world: int) -> torch.Tensor | None:
    """`vae.tiled_decode(z)` shared by the `world` ranks of the current torch.distributed group: the
    video on rank 0, None on the others once their tiles reached rank 0. Every rank calls it with the
    same latents."""
    import torch.distributed as dist

    tiles = grid(vae, tuple(z.shape))
    owner = assign(tiles, world)
    mine = {t: decode_tile(vae, z, tiles[t]) for t in range(len(tiles)) if owner[t] == rank}
    if rank != 0:
        for t in sorted(mine):        # in tile order, as rank 0 receives them
            video = mine[t].contiguous()
            dist.send(torch.tensor(video.shape, dtype=torch.int64, device=video.device), dst=0)
            dist.send(video, dst=0)
        return None
    decoded = []
    for t in range(len(tiles)):
        if owner[t] == 0:
            decoded.append(mine[t])
            continue
        shape = torch.empty(5, dtype=torch.int64, device=z.device)
        dist.recv(shape, src=owner[t])
        video = torch.empty(tuple(shape.tolist()), dtype=z.dtype, device=z.device)
        dist.recv(video, src=owner[t])
        decoded.append(video)
    logger.debug("decoded %d tiles across %d ranks (rank 0: %d)", len(tiles), world, len(mine))
    return join(vae, decoded, tiles, tuple(z.shape))
