"""The tiled VAE decode a gang shares (engine/parallel/tiled_decode.py), in one process: the tiles split
among ranks, each share decoded apart and joined, give diffusers' own tiled decode bit for bit; the
split is balanced and the same on every rank; it tiles exactly when diffusers does. The spawned gang
(test_gang_work.py) checks the same over gloo."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine.parallel import tiled_decode as td
from engine.wan.engine import WanEngine
from storyboard.presets import load_preset

# 80 x 112 px (latents 10 x 14): 3 x 4 tiles of 48 px every 32, the last row and column cut short
SHAPE = (1, 4, 2, 10, 14)


def tiny_vae(tile: int = 48, stride: int = 32):
    vae = WanEngine(load_preset("wan-tiny").with_speed({"vae_tiling": True})).pipe.vae
    vae.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                      tile_sample_stride_height=stride, tile_sample_stride_width=stride)
    return vae


@pytest.fixture(scope="module")
def vae():
    return tiny_vae()


def wan_tiles(width: int, height: int) -> list[td.Tile]:
    """The tiles of a Wan2.1 VAE decode at this size with diffusers' default tiles (256 px every 192)."""
    vae = SimpleNamespace(spatial_compression_ratio=8, tile_sample_min_height=256, tile_sample_min_width=256,
                          tile_sample_stride_height=192, tile_sample_stride_width=192)
    return td.grid(vae, (1, 16, 21, height // 8, width // 8))


@torch.no_grad()
def test_each_ranks_share_decoded_apart_and_joined_is_diffusers_tiled_decode(vae):
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    whole = vae.tiled_decode(z, return_dict=False)[0]
    tiles = td.grid(vae, SHAPE)
    assert len(tiles) == 12 and {(t.height, t.width) for t in tiles} == {(6, 6), (6, 2), (2, 6), (2, 2)}
    for world in (2, 3):
        owner = td.assign(tiles, world)
        decoded: dict[int, torch.Tensor] = {}
        for rank in reversed(range(world)):            # shares in any order: each tile starts from a clear cache
            decoded |= {t: td.decode_tile(vae, z, tiles[t]) for t in range(len(tiles)) if owner[t] == rank}
        joined = td.join(vae, [decoded[t] for t in range(len(tiles))], tiles, SHAPE)
        # the same tiles through the same layers, blended by the VAE's own functions in diffusers' order
        assert torch.equal(joined, whole), world


@torch.no_grad()
def test_a_tile_decoded_wrong_changes_the_join(vae):
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    tiles = td.grid(vae, SHAPE)
    decoded = [td.decode_tile(vae, z, t) for t in tiles]
    decoded[5] = td.decode_tile(vae, z, tiles[6])[..., :decoded[5].shape[-1]]     # a neighbour's pixels
    assert not torch.allclose(td.join(vae, decoded, tiles, SHAPE), vae.tiled_decode(z, return_dict=False)[0])


def test_the_split_is_balanced_and_the_same_on_every_rank():
    tiles = wan_tiles(1920, 1088)
    assert len(tiles) == 60
    for world in (2, 3, 4, 8):
        owner = td.assign(tiles, world)
        assert owner == td.assign(list(tiles), world)           # a function of the shape alone
        assert set(owner) == set(range(world))
        loads = [sum(t.area for t, o in zip(tiles, owner) if o == r) for r in range(world)]
        # largest first onto the least loaded: no rank ends more than one tile above another
        assert max(loads) - min(loads) <= max(t.area for t in tiles)
    # what the cost model's decode efficiencies are bounded by (configs/models/anisora-*.yaml)
    assert td.balance(wan_tiles(1280, 720), 8) > 0.94 and td.balance(wan_tiles(1920, 1088), 8) > 0.95
    assert td.balance(tiles, 1) == 1.0


@pytest.mark.parametrize("size", [(40, 40), (48, 48), (56, 48), (48, 64)])
def test_the_decode_is_shared_exactly_when_diffusers_tiles_it(size, monkeypatch):
    vae = tiny_vae(tile=48, stride=32)
    calls = []
    original = vae.tiled_decode
    monkeypatch.setattr(vae, "tiled_decode", lambda *a, **k: calls.append(1) or original(*a, **k))
    width, height = size
    shape = (1, 4, 1, height // 8, width // 8)
    with torch.no_grad():
        vae.decode(torch.zeros(shape))
    assert td.tiles_decode(vae, shape) == bool(calls)
    vae.disable_tiling()
    assert not td.tiles_decode(vae, shape)


@pytest.mark.parametrize("name", ["anisora-v2", "anisora-v3", "anisora-v3-1080p", "anisora-v3.2",
                                  "wan2.1-i2v-14b-720p", "wan2.1-t2v-1.3b"])
def test_no_preset_prices_a_shared_decode_above_what_the_tiles_balance_allows(name):
    cost = load_preset(name).cost
    assert cost.decode_efficiency, name
    for k, efficiency in cost.decode_efficiency.items():
        assert efficiency <= min(td.balance(wan_tiles(1280, 720), k), td.balance(wan_tiles(1920, 1088), k)), (name, k)
