"""What each component's weights weigh: its real config instantiated on the meta device and counted.

`torch.device("meta")` builds the modules with shapes and no storage, so a 16e9-parameter transformer
costs nothing to count. Counted once per config (cached): every parameter (tied ones once), those an
FP8 weight mode stores in one byte (the `nn.Linear` layers diffusers' layerwise casting does not skip:
norms, the patch embedding and the condition embedder stay in the compute dtype), and for transformers
the parameters of one repeated block (what group offload and FSDP hold unsharded at a time).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache

from storyboard.architecture import KINDS, config_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Component:
    role: str                  # transformer, transformer_2, text_encoder, image_encoder, vae
    name: str                  # its config in configs/architectures/
    params: int
    fp8_params: int            # stored in one byte by an FP8 weight mode (transformers only)
    block_params: int          # one repeated block (transformers), 0 otherwise
    blocks: int
    config: dict

    @property
    def nonblock_params(self) -> int:
        return self.params - self.block_params * self.blocks

    def weight_bytes(self, elem: int, fp8: bool = False) -> int:
        """Bytes of the weights stored `elem` bytes per parameter (FP8: the FP8 layers at one byte)."""
        if fp8:
            return self.fp8_params + (self.params - self.fp8_params) * elem
        return self.params * elem

    def block_bytes(self, elem: int, fp8: bool = False) -> int:
        """One repeated block's bytes (FP8 layers are almost all of a block's weights)."""
        if not self.blocks:
            return 0
        share = self.fp8_params / self.params if fp8 else 0.0
        return int(self.block_params * (share + (1 - share) * elem))


def read_config(name: str, kind: str) -> dict:
    """The config as stored, less the notes (`_source`, `_class_name`)."""
    data = json.loads(config_path(name, kind).read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


@cache
def component(role: str, name: str) -> Component:
    """The counted component `name` in `role` (cached: the counts depend on the config only)."""
    import torch

    from .. import logs  # noqa: F401  (hushes transformers and diffusers before they load)

    config = read_config(name, KINDS[role])
    with torch.device("meta"):
        module = _build(KINDS[role], config)
    params = sum(p.numel() for p in module.parameters())
    skip = getattr(module, "_skip_layerwise_casting_patterns", None) or ()
    fp8 = sum(p.numel() for mod_name, mod in module.named_modules() if isinstance(mod, torch.nn.Linear)
              and not any(re.search(pattern, mod_name) for pattern in skip)
              for p in mod.parameters(recurse=False)) if KINDS[role] == "transformer" else 0
    blocks = getattr(module, "blocks", None) if KINDS[role] == "transformer" else None
    block = max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0) if blocks else 0
    logger.debug("%s %s: %.3fe9 parameters on the meta device", role, name, params / 1e9)
    return Component(role, name, params, fp8, block, len(blocks) if blocks else 0, config)


def _build(kind: str, config: dict):
    if kind == "transformer":
        from diffusers import WanTransformer3DModel

        return WanTransformer3DModel.from_config(config)
    if kind == "vae":
        from diffusers import AutoencoderKLWan

        return AutoencoderKLWan.from_config(config)
    if kind == "text_encoder":
        from transformers import UMT5Config, UMT5EncoderModel

        return UMT5EncoderModel(UMT5Config(**config))
    if kind == "image_encoder":
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        return CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    raise ValueError(f"no meta-device builder for a {kind}")
