"""A Wan-format transformer folder, as AniSora V3 / V3.1 publish it and Wan's `WanModel.from_pretrained`
reads it: Wan's own `config.json` (`dim`, `num_heads`, `in_dim`, `model_type`...), shards
`diffusion_pytorch_model-0000K-of-0000N.safetensors` with Wan's tensor names
(`blocks.0.self_attn.q.weight`) and `diffusion_pytorch_model.safetensors.index.json`.

AniSora V3.2's `high_noise_model/` and `low_noise_model/` are two such folders; some downloads of them
lack `config.json` (AniSora issue #53), in which case the base's transformer config is used, said once.
"""
from __future__ import annotations

from pathlib import Path

from . import naming
from .folder import folder_layout
from .layout import Layout
from .stored import Shards

IMAGE_NORM = "img_emb.proj.0.weight"     # LayerNorm over the CLIP features: its width is the image dim


def layout(folder: Path, shards: Shards) -> Layout:
    return folder_layout("wan-folder", folder, shards, naming.WAN, (IMAGE_NORM, naming.COMFY_PREFIX + IMAGE_NORM),
                         " (as some AniSora V3.2 downloads)")
