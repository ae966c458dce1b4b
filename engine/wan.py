"""The Wan / AniSora engine: one segment through a diffusers Wan pipeline.

`render` reads like the pipeline it drives: fit the condition pictures, encode the prompt (cached),
build the image embeddings (start frame blended with the character bank), place the condition
pictures at their frames, denoise, decode, measure. Model differences (AniSora V3's single-file
transformer, V3.2's high/low-noise pair, text-to-video) come from the preset's options.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping

from . import logs  # noqa: F401  (first: silences transformers before diffusers imports it)

import numpy as np
import torch
from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline, WanPipeline
from diffusers.utils.torch_utils import get_module_execution_device
from PIL import Image

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from . import sp, tiny
from .bank import CharacterBank, Embedding, cosine
from .base import Progress, Rendered
from .fit import fit_cover
from .qc import sample_indices
from .wan_options import check_weights, expand, options

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NEUTRAL_GREY = 127   # the picture a segment with no picture and no character is embedded from


class KeyframePipeline(WanImageToVideoPipeline):
    """Wan image-to-video with condition pictures at any frames, not only the first and last.

    Wan's I2V transformer sees, next to the noisy latents, a VAE encoding of a "condition video"
    (the pictures at their frames, zeros elsewhere) and a mask saying which frames are given. Stock
    diffusers builds that for frame 0 and optionally the last frame; AniSora V3 puts pictures at any
    frame the same way (`keyframe_condition`). The engine builds it before the call — once per gang,
    on rank 0 — and `prepare_latents` hands it over. With no picture the mask is empty and the model
    renders from text alone.
    """

    condition: torch.Tensor | None = None    # (1, temporal + z_dim, F', h, w), set per call

    def check_inputs(self, prompt, negative_prompt, image, height, width, prompt_embeds=None,
                     negative_prompt_embeds=None, image_embeds=None, *args, **kwargs):
        # sakuga passes both the (placeholder) image and its own image embeddings, on any model
        return super().check_inputs(prompt, negative_prompt, image, height, width, prompt_embeds,
                                    negative_prompt_embeds, None, *args, **kwargs)

    def prepare_latents(self, image, batch_size, num_channels_latents=16, height=480, width=832, num_frames=81,
                        dtype=None, device=None, generator=None, latents=None, last_image=None):
        if latents is None or self.condition is None:
            raise ValueError("KeyframePipeline is called with latents and a condition built by the engine")
        return latents, self.condition.to(device=device, dtype=dtype).repeat(batch_size, 1, 1, 1, 1)


def keyframe_condition(pipe, keyframes: list[tuple[int, torch.Tensor]], frames: int, height: int,
                       width: int) -> torch.Tensor:
    """The mask and VAE-encoded condition video for pictures (1x3xHxW in [-1, 1]) at their frames."""
    t, s = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
    video = torch.zeros(1, 3, frames, height, width, dtype=torch.float32, device=pipe.vae.device)
    given = torch.zeros(1, 1, frames, height // s, width // s)
    for frame, picture in keyframes:
        video[:, :, frame] = picture.to(video)
        given[:, :, frame] = 1
    condition = condition_latents(pipe.vae, video)
    return torch.cat([latent_mask(given, t).to(condition), condition], dim=1)


def condition_latents(vae, video: torch.Tensor) -> torch.Tensor:
    """The VAE's normalised encoding of a condition video (as Wan's I2V training saw it)."""
    encoded = vae.encode(video.to(vae.device, vae.dtype)).latent_dist.mode().float()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(encoded)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(encoded)
    return (encoded - mean) / std


def latent_mask(given: torch.Tensor, temporal: int) -> torch.Tensor:
    """Per-pixel-frame "given" flags (B, 1, F, h, w) folded onto latent frames (B, temporal, F', h, w).

    The causal VAE keeps frame 0 as its own latent frame and packs each later group of `temporal`
    frames into one; frame 0's flag is repeated to fill its group, so channel k of latent frame j
    says whether pixel frame (j - 1) * temporal + k + 1 was given.
    """
    b, _, _, h, w = given.shape
    first = given[:, :, :1].repeat_interleave(temporal, dim=2)
    folded = torch.cat([first, given[:, :, 1:]], dim=2)
    return folded.view(b, -1, temporal, h, w).transpose(1, 2)


def _fingerprint(module: torch.nn.Module) -> str:
    """Identifies an encoder's weights (config and a checksum of every tensor), not its file path."""
    h = hashlib.sha256(json.dumps(getattr(module, "config", {}).to_dict() if hasattr(module, "config") else {},
                                  sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, p in module.state_dict().items():
            h.update(name.encode())
            h.update(np.float64(p.double().sum().item()).tobytes())
            h.update(np.float64(p.double().abs().sum().item()).tobytes())
    return f"{type(module).__name__}-{h.hexdigest()[:16]}"


class WanEngine:
    def __init__(self, preset: Preset, *, device: str | None = None, offload: bool = False):
        self.preset = preset
        self.opts = options(preset)
        if self.opts.build_tiny:
            tiny.ensure(expand(self.opts.base))
        check_weights(preset)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = DTYPES[self.opts.dtype] if self.device.type == "cuda" else torch.float32
        self.pipe = self._load()
        self.pipe.set_progress_bar_config(disable=True)
        if offload and self.device.type == "cuda":
            self.pipe.enable_model_cpu_offload()
        else:
            self.pipe.to(self.device)
        self.text_cache: OrderedDict[tuple, tuple] = OrderedDict()
        encoder = getattr(self.pipe, "image_encoder", None)
        self.encoder_id = _fingerprint(encoder) if encoder is not None else None
        self.bank = CharacterBank()

    def _load(self):
        base = str(expand(self.opts.base))
        extra = {}
        for key in ("transformer", "transformer_2"):
            if getattr(self.opts, key):
                from .weights import load_transformer

                extra[key] = load_transformer(expand(getattr(self.opts, key)), expand(self.opts.base), self.dtype)
        if self.opts.boundary_ratio is not None:
            extra["boundary_ratio"] = self.opts.boundary_ratio
        cls = KeyframePipeline if self.opts.task == "i2v" else WanPipeline
        return cls.from_pretrained(base, dtype=self.dtype, **extra)

    # -- the character bank ----------------------------------------------------------------------

    @torch.no_grad()
    def encode_pictures(self, pictures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Token sequences (N, T, D) the transformer attends to, and identity vectors (N, D)."""
        encoder = self.pipe.image_encoder
        inputs = self.pipe.image_processor(images=[Image.fromarray(p) for p in pictures], return_tensors="pt")
        out = encoder(pixel_values=inputs["pixel_values"].to(encoder.device, encoder.dtype), output_hidden_states=True)
        return out.hidden_states[-2].float().cpu().numpy(), out.pooler_output.float().cpu().numpy()

    def encode_characters(self, wanted: list[tuple[str, str, np.ndarray]]) -> list[Embedding]:
        """Bank rows for (character, picture sha256, picture) — encoded as the picture is, no cropping."""
        if self.encoder_id is None or not wanted:
            return []
        tokens, vectors = self.encode_pictures([p for _, _, p in wanted])
        return [Embedding(c, sha, self.encoder_id, t, v) for (c, sha, _), t, v in zip(wanted, tokens, vectors)]

    def use_bank(self, bank: CharacterBank) -> None:
        self.bank = bank.for_encoder(self.encoder_id) if self.encoder_id else CharacterBank()

    # -- one segment -----------------------------------------------------------------------------

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None, *, ranks: int = 1) -> Rendered | None:
        """One segment. With `ranks` > 1 this process is one of a gang (the current torch.distributed
        group) that renders it together: rank 0 encodes the prompt and pictures and shares them, every
        rank denoises its share of the tokens, rank 0 alone decodes and returns the frames."""
        rank = torch.distributed.get_rank() if ranks > 1 else 0
        w, h = segment.width, segment.height
        self.pipe.scheduler = UniPCMultistepScheduler.from_config(self.pipe.scheduler.config, flow_shift=segment.shift)
        generator = torch.Generator("cpu").manual_seed(segment.seed)
        latents = torch.randn(self._latent_shape(segment), generator=generator, dtype=torch.float32).to(self.device)
        inputs = self._inputs(segment, images) if rank == 0 else None
        if ranks > 1:
            inputs = broadcast(inputs, self.device)
        self._shard(ranks, latents.shape)

        def step_done(pipe, i, t, kwargs):
            if progress:
                progress(i + 1, segment.steps)
            return {}

        call = dict(prompt_embeds=inputs["prompt"], negative_prompt_embeds=inputs["negative"], height=h, width=w,
                    num_frames=segment.frames, num_inference_steps=segment.steps, guidance_scale=segment.guidance,
                    latents=latents, output_type="latent", callback_on_step_end=step_done)
        if isinstance(self.pipe, KeyframePipeline):
            self.pipe.condition = inputs["condition"]
            call.update(image=Image.new("RGB", (w, h), (NEUTRAL_GREY,) * 3), image_embeds=inputs["image"])
        try:
            latents = self.pipe(**call).frames
        finally:
            if isinstance(self.pipe, KeyframePipeline):
                self.pipe.condition = None
        if rank != 0:
            return None
        self._tiling(w, h)
        frames = (np.clip(self.decode(latents), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return Rendered(frames, self.similarity(segment, frames))

    def _inputs(self, segment: Segment, images: Mapping[ImageRef, np.ndarray]) -> dict:
        """What every rank of a gang needs and only one computes: prompt embeddings, image embeddings
        and the keyframe condition (text encoder, image encoder and a VAE encode)."""
        w, h = segment.width, segment.height
        keyframes = [(c.frame, fit_cover(images[c.image], w, h)) for c in segment.conditions]
        prompt, negative = self.encode_text(segment.prompt, segment.negative, segment.guidance > 1)
        inputs = {"prompt": prompt, "negative": negative, "image": None, "condition": None}
        if isinstance(self.pipe, KeyframePipeline):
            self._tiling(w, h)
            inputs["image"] = self.image_embeddings(segment, keyframes)
            with torch.no_grad():
                inputs["condition"] = keyframe_condition(self.pipe, [(f, self._to_tensor(p)) for f, p in keyframes],
                                                         segment.frames, h, w)
        return inputs

    def _shard(self, ranks: int, latent_shape: tuple[int, ...]) -> None:
        """Split the transformers' attention over the gang (or undo an earlier split for a lone render)."""
        for transformer in (self.pipe.transformer, getattr(self.pipe, "transformer_2", None)):
            if transformer is None:
                continue
            if ranks == 1:
                sp.disable(transformer)
            else:
                sp.enable(transformer, sp.layout(ranks, transformer.config.num_attention_heads,
                                                 sp.tokens(transformer, latent_shape)), self.opts.sp_backend)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents to (F, H, W, 3) floats in [0, 1], as the pipeline's own tail does it."""
        vae = self.pipe.vae
        latents = latents.to(device=get_module_execution_device(vae), dtype=vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device,
                                                                                                   latents.dtype)
        video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
        return self.pipe.video_processor.postprocess_video(video, output_type="np")[0]

    def encode_text(self, prompt: str, negative: str, cfg: bool):
        """Prompt (and, with guidance, negative prompt) embeddings, cached per worker."""
        key = (prompt, negative if cfg else None)
        if key in self.text_cache:
            self.text_cache.move_to_end(key)
            return self.text_cache[key]
        with torch.no_grad():
            embeds = self.pipe.encode_prompt(prompt=prompt, negative_prompt=negative if cfg else None,
                                             do_classifier_free_guidance=cfg, max_sequence_length=tiny.TEXT_TOKENS,
                                             device=self.device)
        if self.opts.text_cache:
            self.text_cache[key] = embeds
            while len(self.text_cache) > self.opts.text_cache:
                self.text_cache.popitem(last=False)
        return embeds

    def image_embeddings(self, segment: Segment, keyframes: list[tuple[int, np.ndarray]]) -> torch.Tensor | None:
        """What the transformer's image cross-attention sees: the start picture's encoding, blended
        with the mean bank embedding of the segment's characters by `identity_weight`."""
        transformer = self.pipe.transformer
        if getattr(transformer.config, "image_dim", None) is None or self.encoder_id is None:
            return None      # Wan2.2 and text-to-video transformers have no image cross-attention
        start = keyframes[0][1] if keyframes else None
        cast = [self.bank.character(ch.id, self.encoder_id, [r.sha256 for r in ch.refs]) for ch in segment.characters]
        cast = [c[0] for c in cast if c is not None]
        identity = np.mean(cast, axis=0) if cast else None
        if start is None and identity is None:
            start = np.full((segment.height, segment.width, 3), NEUTRAL_GREY, np.uint8)
        if start is not None:
            tokens = self.encode_pictures([start])[0][0]
            if identity is not None:
                tokens = (1 - self.opts.identity_weight) * tokens + self.opts.identity_weight * identity
        else:
            tokens = identity
        return torch.from_numpy(np.ascontiguousarray(tokens, np.float32))[None].to(self.device, self.dtype)

    def similarity(self, segment: Segment, frames: np.ndarray) -> dict[str, float]:
        """Cosine between each character's bank vector and the mean vector of sampled output frames."""
        metrics: dict[str, float] = {}
        if self.encoder_id is None or not segment.characters:
            return metrics
        known = [(ch.id, self.bank.character(ch.id, self.encoder_id, [r.sha256 for r in ch.refs]))
                 for ch in segment.characters]
        known = [(cid, entry[1]) for cid, entry in known if entry is not None]
        if not known:
            return metrics
        picks = frames[sample_indices(len(frames), self.opts.qc_frames)]
        _, vectors = self.encode_pictures(list(picks))
        shot_vector = vectors.mean(axis=0)
        for cid, vector in known:
            metrics[f"character_similarity.{cid}"] = cosine(vector, shot_vector)
        metrics["character_similarity"] = float(np.mean([metrics[f"character_similarity.{c}"] for c, _ in known]))
        return metrics

    def _latent_shape(self, segment: Segment) -> tuple[int, ...]:
        t, s = self.pipe.vae_scale_factor_temporal, self.pipe.vae_scale_factor_spatial
        return (1, self.pipe.vae.config.z_dim, (segment.frames - 1) // t + 1, segment.height // s, segment.width // s)

    def _to_tensor(self, picture: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(picture).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)

    def _tiling(self, width: int, height: int) -> None:
        if min(width, height) >= self.opts.vae_tiling_from:
            self.pipe.vae.enable_tiling()
        else:
            self.pipe.vae.disable_tiling()


def broadcast(inputs: dict | None, device: torch.device) -> dict:
    """Rank 0's `inputs` (tensors or None) on every rank of the current group."""
    box = [None if inputs is None else {k: None if v is None else v.cpu() for k, v in inputs.items()}]
    torch.distributed.broadcast_object_list(box, src=0)
    return {k: None if v is None else v.to(device) for k, v in box[0].items()}
