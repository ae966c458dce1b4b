"""A diffusers transformer folder: `config.json` with `WanTransformer3DModel`'s arguments and
diffusers' tensor names (`blocks.0.attn1.to_q.weight`), one `diffusion_pytorch_model.safetensors` or
shards with an index, as `save_pretrained` writes them (the `transformer/` of a diffusers Wan folder)."""
from __future__ import annotations

from pathlib import Path

from . import naming
from .folder import folder_layout
from .layout import Layout
from .stored import Shards

IMAGE_NORM = "condition_embedder.image_embedder.norm1.weight"


def layout(folder: Path, shards: Shards) -> Layout:
    return folder_layout("diffusers-folder", folder, shards, naming.DIFFUSERS, (IMAGE_NORM,), "")
