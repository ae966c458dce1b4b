"""Loading AniSora's transformer from a Wan-format single-file checkpoint.

AniSora ships its transformer as one `.safetensors` file with the original Wan key names
(`blocks.0.self_attn.q.weight`); diffusers renames them itself (`convert_wan_transformer_to_diffusers`)
when asked through `from_single_file`. The model config comes from a local diffusers folder, so
nothing touches the Hugging Face hub.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusers import WanTransformer3DModel

logger = logging.getLogger(__name__)


def load_transformer(checkpoint: Path, config_dir: Path, dtype) -> WanTransformer3DModel:
    """The `WanTransformer3DModel` of `config_dir/transformer` with the weights of the Wan-format `checkpoint`.

    Every weight of the model must come from the file and every tensor in the file must be used: a missing,
    extra or wrongly shaped tensor raises instead of leaving random or empty weights behind.
    """
    from diffusers import WanTransformer3DModel
    from safetensors import safe_open

    # `config` must be a str (diffusers rejects a Path); a local folder plus local_files_only never
    # reaches the hub. Without `config`, diffusers would guess a hub repo from the checkpoint's keys.
    try:
        model = WanTransformer3DModel.from_single_file(
            str(checkpoint), config=str(config_dir), subfolder="transformer", local_files_only=True, torch_dtype=dtype)
    except NotImplementedError as e:  # the final cast to `dtype` trips over weights the file did not fill in
        raise ValueError(f"{checkpoint}: some tensors of the transformer are missing ({e})") from e
    # diffusers builds the model on the meta device and fills in what the file has: what it lacks stays empty
    empty = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if empty:
        raise ValueError(f"{checkpoint}: missing {len(empty)} tensors of the transformer, e.g. {empty[:3]}")
    # diffusers only logs tensors it could not place; the renaming is one to one, so count them
    with safe_open(str(checkpoint), framework="pt") as f:
        stored = len(list(f.keys()))
    if stored != len(model.state_dict()):
        raise ValueError(f"{checkpoint}: {stored} tensors, but the transformer uses {len(model.state_dict())}")
    logger.debug("loaded %d transformer tensors from %s", stored, checkpoint)
    return model
