"""`sr-tiny`: a random-weight compact super-resolution net, built offline and deterministically.

It has SRVGGNetCompact's architecture (Real-ESRGAN's compact net, the one AnimeVideo-v3 uses: a
convolution, PReLU, `convs` x (convolution, PReLU), a convolution to 3 x scale² channels, PixelShuffle,
plus the nearest-neighbour upscaled input) with very few features, saved as a safetensors state dict
under the key names spandrel detects (`body.0.weight`, `body.1.weight`, ...). So the same loading,
tiling and resizing code runs on it as on the real nets; its pictures are the nearest-neighbour
upscale plus a small random residual.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def state_dict(scale: int, features: int, convs: int, seed: int = 0) -> dict:
    """The net's tensors, drawn from `seed` on the CPU (the same on every machine)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    shapes = [(features, 3)] + [(features, features)] * convs + [(3 * scale * scale, features)]
    index = 0
    for i, (out_ch, in_ch) in enumerate(shapes):
        # small weights: the residual stays a small correction of the nearest-neighbour picture
        std = 0.5 / (in_ch * 9) ** 0.5
        tensors[f"body.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * std
        tensors[f"body.{index}.bias"] = torch.zeros(out_ch)
        index += 1
        if i + 1 < len(shapes):   # every convolution but the last is followed by a PReLU
            tensors[f"body.{index}.weight"] = torch.full((features,), 0.25)
            index += 1
    return tensors


def build(path: Path, scale: int, features: int, convs: int, seed: int = 0) -> Path:
    """Write the net to `path` (safetensors); the same arguments give the same bytes."""
    from safetensors.torch import save_file

    save_file(state_dict(scale, features, convs, seed), str(path), metadata=_recipe(scale, features, convs, seed))
    return path


def _recipe(scale: int, features: int, convs: int, seed: int) -> dict[str, str]:
    # one key: safetensors writes metadata in hash-map order, which would make the bytes vary
    return {"sakuga-sr-tiny": json.dumps({"scale": scale, "features": features, "convs": convs, "seed": seed},
                                         sort_keys=True)}


def _built_with(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata()
    except Exception:   # unreadable or not safetensors: built again below
        return None


def ensure(path: Path, scale: int, features: int, convs: int, seed: int = 0) -> Path:
    """The net at `path`, built there on first use. Several workers may ask at once: each writes its own
    temporary file beside `path` and renames it into place (the same bytes, so whichever wins is right).
    A file built from other settings (the preset's `build_tiny` changed) is built again."""
    path = Path(path)
    if path.is_file() and _built_with(path) == _recipe(scale, features, convs, seed):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.debug("building the tiny upscaler at %s", path)
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.building-", dir=path.parent)
    os.close(fd)
    try:
        build(Path(scratch), scale, features, convs, seed)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return path
