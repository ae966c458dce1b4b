"""A diffusers transformer folder: `config.json` with `WanTransformer3DModel`'s arguments and
diffusers' tensor names (`blocks.0.attn1.to_q.weight`), one `diffusion_pytorch_model.safetensors` or
shards with an index, as `save_pretrained` writes them (the `transformer/` of a diffusers Wan folder)."""
from __future__ import annotations

import json
from pathlib import Path

from . import naming
from .layout import Layout
from .stored import Shards

IMAGE_NORM = "condition_embedder.image_embedder.norm1.weight"


def layout(folder: Path, shards: Shards) -> Layout:
    renamed = naming.to_diffusers(shards.tensors, naming.DIFFUSERS)
    found = Layout("diffusers-folder", folder, naming.DIFFUSERS,
                   {new: shards.tensors[old] for new, old in renamed.items()},
                   files=shards.files, missing_files=shards.missing, problems=list(shards.problems),
                   lost=set(naming.to_diffusers(shards.lost, naming.DIFFUSERS)))
    config = folder / "config.json"
    if not config.is_file():
        found.notes.append(f"{folder.name}/ has no config.json: using the base's transformer config")
        return found
    try:
        own = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        found.problems.append((config, f"not readable JSON ({e})"))
        return found
    if not isinstance(own, dict):
        found.problems.append((config, "not a JSON object"))
    elif naming.is_wan_config(own):      # diffusers names next to Wan's config: translate it the same way
        if (problem := naming.wan_config_problem(own)) is not None:
            found.problems.append((config, problem))
        else:
            norm = shards.tensors.get(IMAGE_NORM)
            image = int(norm.shape[0]) if norm is not None and own.get("model_type") == "i2v" else None
            found.config = naming.diffusers_config(own, image)
    else:
        found.config = own
    return found
