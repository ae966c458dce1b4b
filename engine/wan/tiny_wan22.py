"""A tiny random-weight image-to-video pipeline shaped like Wan2.2-I2V (AniSora V3.2): no CLIP image
encoder and a transformer without image cross-attention, so identity can only reach it through
pictures at frames. The tiny Wan2.1 model's text encoder, VAE and scheduler, built offline and
deterministically; for tests and `bench/identity.py` of what works without an image encoder.
"""
from __future__ import annotations

from pathlib import Path

from . import tiny


def build_pipeline(seed: int = 0):
    """The tiny pipeline without image encoder or image cross-attention (random weights from `seed`)."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel

    with_clip = tiny.build_pipeline(seed)
    config = {k: v for k, v in with_clip.transformer.config.items() if not k.startswith("_")}
    config.update(image_dim=None, added_kv_proj_dim=None)   # what Wan2.2's A14B experts lack
    torch.manual_seed(seed + 1)
    transformer = WanTransformer3DModel(**config).eval()
    return WanImageToVideoPipeline(tokenizer=with_clip.tokenizer, text_encoder=with_clip.text_encoder,
                                   vae=with_clip.vae, scheduler=with_clip.scheduler, transformer=transformer)


def build(directory: Path, seed: int = 0) -> Path:
    """Write it to `directory` (diffusers layout, safetensors); same seed, same bytes."""
    directory = Path(directory)
    build_pipeline(seed).save_pretrained(directory, safe_serialization=True)
    return directory
