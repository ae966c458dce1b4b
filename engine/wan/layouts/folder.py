"""What the two folder layouts (Wan's and diffusers') share: shards renamed to diffusers' names, and the
folder's own `config.json` read in whichever convention it is written (Wan's `dim`/`num_heads`, or
diffusers' arguments), or the base's config when the folder has none."""
from __future__ import annotations

import json
from pathlib import Path

from . import naming
from .layout import Layout
from .stored import Shards


def folder_layout(kind: str, folder: Path, shards: Shards, names, image_norms: tuple[str, ...],
                  no_config: str) -> Layout:
    """The `kind` layout of `folder`; `image_norms`: tensors whose width is the image cross-attention's
    CLIP feature width (absent: no image cross-attention, as in Wan2.2 although its config says i2v)."""
    renamed = naming.to_diffusers(shards.tensors, names)
    found = Layout(kind, folder, names, {new: shards.tensors[old] for new, old in renamed.items()},
                   files=shards.files, missing_files=shards.missing, problems=list(shards.problems),
                   lost=set(naming.to_diffusers(shards.lost, names)))
    config = folder / "config.json"
    if not config.is_file():
        found.notes.append(f"{folder.name}/ has no config.json{no_config}: using the base's transformer config")
        return found
    try:
        own = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        found.problems.append((config, f"not readable JSON ({e})"))
        return found
    if not isinstance(own, dict):
        found.problems.append((config, "not a JSON object"))
    elif naming.is_wan_config(own):   # Wan's config (whatever the tensors' names): translated one way
        if (problem := naming.wan_config_problem(own)) is not None:
            found.problems.append((config, problem))
        else:
            found.config = naming.diffusers_config(own, image_dim(shards, own, image_norms))
    else:                             # a diffusers-style config speaks for itself
        found.config = own
    return found


def image_dim(shards: Shards, wan: dict, image_norms: tuple[str, ...]) -> int | None:
    """The CLIP feature width of the image cross-attention, read off the tensors: Wan2.1 i2v has them,
    Wan2.2 i2v (AniSora V3.2) has none although its config also says `model_type: i2v`."""
    norm = next((shards.tensors[k] for k in image_norms if k in shards.tensors), None)
    if norm is None or wan.get("model_type") != "i2v":
        return None
    return int(norm.shape[0])
