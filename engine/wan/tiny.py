"""A tiny random-weight Wan 2.1 image-to-video pipeline, built offline and deterministically.

It has the real architecture (UMT5 text encoder, CLIP vision encoder, causal 3D VAE with 4x temporal
and 8x spatial compression, Wan transformer with image cross-attention), only with very few channels,
so every code path of the Wan engine runs on a laptop CPU in well under a second per segment. The
pictures it makes are noise-like; tests use it for shapes, conditioning, determinism and plumbing.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = 2            # bump when the architecture below changes: cached builds are keyed by it
TEXT_TOKENS = 512           # Wan's attention processor assumes 512 text tokens
logger = logging.getLogger(__name__)

VOCAB = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(61)]


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(VOCAB)}
    # words map to a few ids by hash-free lowercase splitting; unknown words share <unk>
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=TEXT_TOKENS)


def build_pipeline(seed: int = 0, heads: int = 4):
    """The tiny pipeline in memory (random weights drawn from `seed`). `heads` divides the transformer's
    24 attention channels (Ulysses parallelism splits heads: a degree-4 test needs 4)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    from .. import logs  # noqa: F401  (before diffusers and transformers: no notices, no progress bars)

    torch.manual_seed(seed)
    z_dim = 4
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(VOCAB), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=32, patch_size=8, num_channels=3))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    vae = AutoencoderKLWan(base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=24 // heads, in_channels=2 * z_dim + 4,
        out_channels=z_dim, text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=16, added_kv_proj_dim=24, rope_max_seq_len=1024)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=5.0)
    for model in (text_encoder, image_encoder, vae, transformer):
        model.eval()
    return WanImageToVideoPipeline(tokenizer=_tokenizer(), text_encoder=text_encoder, image_encoder=image_encoder,
                                   image_processor=image_processor, vae=vae, transformer=transformer,
                                   scheduler=scheduler)


def build(directory: Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to `directory` (diffusers layout, safetensors); same seed, same bytes."""
    directory = Path(directory)
    build_pipeline(seed).save_pretrained(directory, safe_serialization=True)
    (directory / "sakuga-tiny.json").write_text(json.dumps({"version": TINY_VERSION, "seed": seed}) + "\n")
    return directory


def ensure(target: Path, seed: int = 0) -> Path:
    """The tiny pipeline at `target`, built there on first use.

    Several workers may ask at once: each builds into its own temporary folder next to `target` and
    renames it into place; the first rename wins and the others throw their copy away.
    """
    target = Path(target)
    if (target / "sakuga-tiny.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.debug("building the tiny Wan model at %s", target)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        build(scratch, seed)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "sakuga-tiny.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
