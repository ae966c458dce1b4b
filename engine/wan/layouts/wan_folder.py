"""A Wan-format transformer folder, as AniSora V3 / V3.1 publish it and Wan's `WanModel.from_pretrained`
reads it: Wan's own `config.json` (`dim`, `num_heads`, `in_dim`, `model_type`...), shards
`diffusion_pytorch_model-0000K-of-0000N.safetensors` with Wan's tensor names
(`blocks.0.self_attn.q.weight`) and `diffusion_pytorch_model.safetensors.index.json`.

AniSora V3.2's `high_noise_model/` and `low_noise_model/` are two such folders; some downloads of them
lack `config.json` (AniSora issue #53), in which case the base's transformer config is used, said once.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from . import naming
from .layout import Layout
from .stored import Shards

logger = logging.getLogger(__name__)
IMAGE_NORM = "img_emb.proj.0.weight"     # LayerNorm over the CLIP features: its width is the image dim


def layout(folder: Path, shards: Shards) -> Layout:
    renamed = naming.to_diffusers(shards.tensors, naming.WAN)
    found = Layout("wan-folder", folder, naming.WAN, {new: shards.tensors[old] for new, old in renamed.items()},
                   files=shards.files, missing_files=shards.missing, problems=list(shards.problems),
                   lost=set(naming.to_diffusers(shards.lost, naming.WAN)))
    config = folder / "config.json"
    if not config.is_file():
        found.notes.append(f"{folder.name}/ has no config.json (as some AniSora V3.2 downloads): "
                           "using the base's transformer config")
        return found
    try:
        wan = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        found.problems.append((config, f"not readable JSON ({e})"))
        return found
    if not isinstance(wan, dict):
        found.problems.append((config, "not a JSON object"))
    elif naming.is_wan_config(wan):
        if (problem := naming.wan_config_problem(wan)) is not None:
            found.problems.append((config, problem))
        else:
            found.config = naming.diffusers_config(wan, image_dim(shards, wan))
    else:          # Wan-named tensors next to a diffusers-style config: the config speaks for itself
        found.config = wan
    return found


def image_dim(shards: Shards, wan: dict) -> int | None:
    """The CLIP feature width of the image cross-attention, read off the tensors: Wan2.1 i2v has
    `img_emb.*`, Wan2.2 i2v (AniSora V3.2) has none although its config also says `model_type: i2v`."""
    norm = shards.tensors.get(IMAGE_NORM) or shards.tensors.get(naming.COMFY_PREFIX + IMAGE_NORM)
    if norm is None or wan.get("model_type") != "i2v":
        return None
    return int(norm.shape[0])
