"""What a segment needs on the GPU besides the weights: plain arithmetic on the model's dimensions.

Every figure is the bytes of the tensors alive at the moment that peaks, in inference (no autograd),
counted from what diffusers' code keeps alive and checked against `replay.py` (diffusers' own forward
on fake tensors: tests/engine/memory/test_activations.py holds each formula within a few percent of
it). They are estimates of the allocator's peak, not measurements on a GPU: CUDA's allocator rounds
and caches on top (the plan adds a margin for that), and a fused kernel can keep less alive than
the eager ops counted here.

Denoising, per rank of a gang of k (diffusers' context parallelism splits the tokens S k ways before
the first block; s = ceil(S / k)):
  - one block's peak per token, the largest of three moments of `WanTransformerBlock.forward`:
      self-attention's QK RMSNorm: the norm1 output, q, k, v (4 d, compute dtype) and the norm's
      float32 upcast, square and normalised product (3 d, float32);
      the attention call: the norm1 output, q, k, v and the output (5 d), the log-sum-exp (float32 a
      head), and in a Ulysses gang the all-to-all's copies of q, k, v and the output (4 d more). This
      assumes a flash-style kernel (diffusers' native SDPA on CUDA, flash, sage, cuDNN): one that
      materialised the scores would need heads x s x S x 2 bytes, 457 GB at 720p;
      the feed-forward: the float32 residual and the norm3 output (d each), the up-projection and its
      GELU (2 ffn, compute dtype);
  - the patch embedding's output, all S tokens (diffusers shards it by view, so it stays alive on
    every rank through block 0) and the rotary tables, cos and sin of all S tokens in float32;
  - the text (512) and image (257) context after the condition embedder, and the output gathered
    from the ranks after `proj_out` (S tokens of out_channels x patch);
  - ring attention only (a layout with ring > 1): diffusers' ring all-gathers every rank's K and V, so
    2 S d / ulysses more.
VAE decode (`AutoencoderKLWan`, one latent frame at a time): a working set per output pixel
(replayed: 53 bytes per pixel per base channel per byte of element, 10.2 kB at bf16 for the Wan2.1
VAE) plus the video decoded so far; tiled (diffusers' 256-pixel tiles every 192): one tile's working
set plus every decoded tile, then the blended rows, the video and its clamp.
VAE encode (the condition video): keyframe_condition's float32 video and its copy in the VAE's dtype,
plus the encoder's working set per pixel of a 4-frame chunk (replayed: 38.7 bytes per pixel per base
channel per byte), for the whole frame or one tile.
Encoders: UMT5-XXL over Wan's 512 text tokens and CLIP over one 224x224 picture, replayed totals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FP32 = 4
TEXT_TOKENS = 512          # Wan pads every prompt to 512 tokens
IMAGE_TOKENS = 257         # CLIP ViT-H/14 at 224: 16 x 16 patches and the class token
VAE_DECODE_PER_PIXEL = 53.0    # bytes / (pixel x base channel x element byte), replayed (module docstring)
VAE_ENCODE_PER_PIXEL = 38.7
VAE_TILE, VAE_TILE_STRIDE = 256, 192     # AutoencoderKLWan's tile_sample_min_* and tile_sample_stride_*
# replayed peaks at bf16 (the encoders' activations are small next to their weights)
ENCODER_BYTES_BF16 = {"text_encoder": 328_000_000, "image_encoder": 28_000_000}


@dataclass(frozen=True)
class TransformerShape:
    dim: int
    ffn: int
    head_dim: int
    patch: tuple[int, int, int]
    out_channels: int
    context_tokens: int          # text tokens, and image tokens for transformers with image cross-attention

    @classmethod
    def from_config(cls, config: dict) -> TransformerShape:
        image = IMAGE_TOKENS if config.get("image_dim") else 0
        return cls(config["num_attention_heads"] * config["attention_head_dim"], config["ffn_dim"],
                   config["attention_head_dim"], tuple(config["patch_size"]), config["out_channels"],
                   TEXT_TOKENS + image)


@dataclass(frozen=True)
class VaeShape:
    base_dim: int
    temporal: int = 4
    spatial: int = 8

    @classmethod
    def from_config(cls, config: dict) -> VaeShape:
        return cls(config.get("decoder_base_dim") or config["base_dim"], config.get("scale_factor_temporal") or 4,
                   config.get("scale_factor_spatial") or 8)


def tokens(shape: TransformerShape, vae: VaeShape, width: int, height: int, frames: int) -> int:
    """The transformer's sequence length for a segment (Wan: 21 x 45 x 80 = 75,600 at 1280x720x81)."""
    pt, ph, pw = shape.patch
    latent_frames = (frames - 1) // vae.temporal + 1
    return (latent_frames // pt) * (height // vae.spatial // ph) * (width // vae.spatial // pw)


def block_bytes_per_token(shape: TransformerShape, elem: int, ulysses: int = 1) -> int:
    qk_norm = 4 * shape.dim * elem + 3 * shape.dim * FP32
    heads = shape.dim // shape.head_dim
    attention = (5 + (4 if ulysses > 1 else 0)) * shape.dim * elem + heads * FP32
    feed_forward = shape.dim * FP32 + shape.dim * elem + 2 * shape.ffn * elem
    return max(qk_norm, attention, feed_forward)


def denoise_bytes(shape: TransformerShape, total_tokens: int, degree: int, elem: int,
                  ulysses: int | None = None, ring: int = 1) -> dict[str, int]:
    """One transformer forward's peak on one rank of a gang of `degree`, by term."""
    ulysses = degree // ring if ulysses is None else ulysses
    share = math.ceil(total_tokens / degree)
    pt, ph, pw = shape.patch
    return {
        "blocks": share * block_bytes_per_token(shape, elem, ulysses),
        "hidden states": total_tokens * shape.dim * elem,
        "rotary tables": total_tokens * shape.head_dim * FP32 * 2,
        "context": 2 * shape.context_tokens * shape.dim * elem,
        "gathered output": total_tokens * shape.out_channels * pt * ph * pw * elem if degree > 1 else 0,
        "ring K/V": 2 * total_tokens * (shape.dim // ulysses) * elem if ring > 1 else 0,
    }


def _covered(latent: int, spatial: int) -> int:
    """Latent rows (or columns) of all of diffusers' tiles together, overlaps counted twice."""
    tile, stride = VAE_TILE // spatial, VAE_TILE_STRIDE // spatial
    return sum(min(tile, latent - i) for i in range(0, latent, stride))


def _tiles(vae: VaeShape, width: int, height: int) -> bool:
    tile = VAE_TILE // vae.spatial
    return width // vae.spatial > tile or height // vae.spatial > tile   # diffusers tiles only then


def vae_decode_bytes(vae: VaeShape, width: int, height: int, frames: int, tiled: bool, elem: int) -> int:
    per_pixel = VAE_DECODE_PER_PIXEL * vae.base_dim * elem
    video = 3 * frames * width * height * elem
    if not (tiled and _tiles(vae, width, height)):
        return int(per_pixel * width * height + video)
    tile = min(VAE_TILE, width) * min(VAE_TILE, height)
    covered = _covered(height // vae.spatial, vae.spatial) * _covered(width // vae.spatial, vae.spatial)
    decoded = 3 * frames * covered * vae.spatial ** 2 * elem
    return int(max(per_pixel * tile + decoded, decoded + 3 * video))


def vae_encode_bytes(vae: VaeShape, width: int, height: int, frames: int, tiled: bool, elem: int) -> int:
    per_pixel = VAE_ENCODE_PER_PIXEL * vae.base_dim * elem
    video = 3 * frames * width * height * (FP32 + elem)
    area = min(VAE_TILE, width) * min(VAE_TILE, height) if tiled and _tiles(vae, width, height) else width * height
    return int(per_pixel * area + video)


def encoder_bytes(role: str, elem: int) -> int:
    return ENCODER_BYTES_BF16[role] * elem // 2
