"""The Wan / AniSora engine: one segment through a diffusers Wan pipeline.

`render` reads like the pipeline it drives: sampler and noise, then the conditions (fit the condition
pictures, encode the prompt (cached), build the image embeddings from the start frame and the
character bank, place the pictures at their frames), shard over the gang, denoise, decode, measure.
Model differences (AniSora V3's single-file transformer, V3.2's high/low-noise pair, text-to-video)
come from the preset's options, not from branches on the model's name.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import UniPCMultistepScheduler
from diffusers.utils.torch_utils import get_module_execution_device

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .. import logs  # noqa: F401  (first: silences transformers before diffusers imports it)
from ..bank import CharacterBank, Embedding
from ..base import Progress, Rendered
from ..fit import fit_picture
from ..memory import fsdp
from ..memory.residency import place
from ..parallel import sharding
from ..parallel.layout import layout, tokens
from ..step_control import RenderControl
from ..steps import StepControl
from . import tiny
from .encoders import BankEncoders, PictureEncoder, load_qc_encoder
from .keyframe_pipeline import KeyframePipeline, keyframe_condition
from .options import check_weights, expand, optional_path, options
from .similarity import character_similarity
from .speed import Speedups
from .text_pipeline import TextPipeline

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NEUTRAL_GREY = 127   # the picture a segment with no picture and no character is embedded from


@dataclass
class Conditions:
    """What the transformer is conditioned on: every rank of a gang needs it, rank 0 alone computes it."""

    prompt: torch.Tensor                   # prompt embeddings
    negative: torch.Tensor | None          # negative prompt embeddings (guidance above 1)
    image: torch.Tensor | None             # image embeddings (transformers with image cross-attention)
    condition: torch.Tensor | None         # keyframe mask and condition latents (image-to-video)


class WanEngine:
    def __init__(self, preset: Preset, *, device: str | None = None, offload: bool = False,
                 residency: str | None = None):
        """`residency` is where the components live (engine.memory.plan: gpu, text_encoder_cpu, fsdp,
        model_offload, group_offload; `offload` alone means model_offload). fsdp shards the transformer
        across the torch.distributed group this process is in, so the gang must be joined first."""
        started = time.perf_counter()
        self.preset = preset
        self.opts = options(preset)
        if self.opts.build_tiny:
            tiny.ensure(expand(self.opts.base))
        check_weights(preset)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = DTYPES[self.opts.dtype] if self.device.type == "cuda" else torch.float32
        self.pipe = self._load()
        self.pipe.set_progress_bar_config(disable=True)
        self.residency = residency or ("model_offload" if offload else "gpu")
        self.text_device = place(self.pipe, self.residency, self.device)
        self.speed = Speedups(self.pipe, self.opts.speed, self.device, self.dtype)
        self.text_cache: OrderedDict[tuple, tuple] = OrderedDict()
        self.encoders = self._encoders()
        self.encoder_id = self.encoders.id
        self.bank = CharacterBank()
        logger.debug("loaded preset %s (%s, %s) on %s in %.1f s", preset.name, type(self.pipe).__name__,
                     self.dtype, self.device, time.perf_counter() - started)

    def _load(self):
        base = str(expand(self.opts.base))
        extra = {}
        for key in ("transformer", "transformer_2"):
            if getattr(self.opts, key):
                from .weights import load_transformer

                extra[key] = load_transformer(expand(getattr(self.opts, key)), expand(self.opts.base), self.dtype, key)
        if self.opts.boundary_ratio is not None:
            extra["boundary_ratio"] = self.opts.boundary_ratio
        cls = KeyframePipeline if self.opts.task == "i2v" else TextPipeline
        return cls.from_pretrained(base, dtype=self.dtype, **extra)

    # -- the character bank ----------------------------------------------------------------------

    def _encoders(self) -> BankEncoders:
        """The pipeline's image encoder (steers identity), and the preset's QC encoder (measures it)."""
        encoder = getattr(self.pipe, "image_encoder", None)
        steer = PictureEncoder(encoder, self.pipe.image_processor) if encoder is not None else None
        folder = optional_path(self.opts.qc_encoder)
        qc = load_qc_encoder(folder, self.device, self.dtype) if folder is not None else None
        return BankEncoders(steer, qc)

    def encode_pictures(self, pictures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Token sequences (N, T, D) the transformer attends to, and identity vectors (N, E): a bank row's."""
        return self.encoders.encode(pictures)

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
               progress: Progress | None = None, *, ranks: int = 1,
               control: StepControl | None = None) -> Rendered | None:
        """One segment. With `ranks` > 1 this process is one of a gang (the current torch.distributed
        group) that renders it together: rank 0 encodes the prompt and pictures and shares them, every
        rank denoises its share of the tokens, rank 0 alone decodes and returns the frames (and the
        latents they were decoded from). `control` (engine/steps.py) takes step checkpoints, stops the
        render at a step boundary (`Stopped`, on every rank) or starts it from a checkpoint."""
        rank = torch.distributed.get_rank() if ranks > 1 else 0
        if fsdp.sharded_world(self.pipe.transformer) not in (None, ranks):
            raise RuntimeError(f"this engine's transformer is sharded across a gang of "
                               f"{fsdp.sharded_world(self.pipe.transformer)}, not {ranks}")

        # 1. Sampler and starting noise: the same on every rank (drawn on the CPU from the seed)
        self.pipe.scheduler = UniPCMultistepScheduler.from_config(self.pipe.scheduler.config, flow_shift=segment.shift)
        generator = torch.Generator("cpu").manual_seed(segment.seed)
        latents = torch.randn(self._latent_shape(segment), generator=generator, dtype=torch.float32).to(self.device)
        if control is not None:     # its checkpoint checked against this render, agreed across the gang
            control = RenderControl(control, steps=segment.steps, shape=tuple(latents.shape), ranks=ranks,
                                    device=self.device)

        # 2. Conditions: fitted pictures, prompt, image embeddings, keyframe condition (rank 0; the gang shares)
        conditions = self.conditions(segment, images) if rank == 0 else None
        if ranks > 1:
            conditions = Conditions(**sharding.broadcast(None if conditions is None else vars(conditions),
                                                         self.device))

        # 3. Attention split over the gang (or an earlier split undone for a lone render), caches set up
        self._shard(ranks, latents.shape)
        self.speed.prepare(segment.steps, ranks, start=0 if control is None else control.start)

        # 4. Denoise (from a checkpoint, if the control has one; `Stopped` if it stops the render)
        latents = self.denoise(segment, latents, conditions, progress, control, generator)
        if rank != 0:
            return None

        # 5. Decode and measure
        self._tiling(segment.width, segment.height)
        frames = (np.clip(self.decode(latents), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        metrics = character_similarity(segment, frames, self.bank, self.encoder_id, self.encoders.measure,
                                       self.opts.qc_frames)
        return Rendered(frames, metrics, latents=latents.float().cpu().numpy())

    def conditions(self, segment: Segment, images: Mapping[ImageRef, np.ndarray]) -> Conditions:
        """What every rank of a gang needs and only one computes: prompt embeddings, image embeddings
        and the keyframe condition (text encoder, image encoder and a VAE encode)."""
        w, h = segment.width, segment.height
        keyframes = [(c.frame, fit_picture(images[c.image], w, h, segment.fit)) for c in segment.conditions]
        prompt, negative = self.encode_text(segment.prompt, segment.negative, segment.guidance > 1)
        if not isinstance(self.pipe, KeyframePipeline):
            return Conditions(prompt, negative, None, None)     # text-to-video: no pictures
        self._tiling(w, h)
        image = self.image_embeddings(segment, keyframes)
        with torch.no_grad():
            condition = keyframe_condition(self.pipe, [(f, self._to_tensor(p)) for f, p in keyframes],
                                           segment.frames, h, w)
        return Conditions(prompt, negative, image, condition)

    def denoise(self, segment: Segment, latents: torch.Tensor, conditions: Conditions, progress: Progress | None,
                control: StepControl | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The pipeline's denoising loop from `latents` (or the control's checkpoint); the denoised latents."""
        common = dict(latents=latents, prompt_embeds=conditions.prompt, negative_prompt_embeds=conditions.negative,
                      num_inference_steps=segment.steps, guidance_scale=segment.guidance, progress=progress,
                      control=control, generator=generator)
        if isinstance(self.pipe, KeyframePipeline):
            return self.pipe(**common, condition=conditions.condition, image_embeds=conditions.image)
        return self.pipe(**common)      # text-to-video: no pictures

    def _shard(self, ranks: int, latent_shape: tuple[int, ...]) -> None:
        """Split the transformers' attention over the gang (or undo an earlier split for a lone render)."""
        for transformer in (self.pipe.transformer, getattr(self.pipe, "transformer_2", None)):
            if transformer is None:
                continue
            if ranks == 1:
                sharding.disable(transformer)
            else:
                sharding.enable(transformer, layout(ranks, transformer.config.num_attention_heads,
                                                    tokens(transformer, latent_shape)), self.opts.sp_backend)
            self.speed.after_shard(transformer, ranks, self.opts.sp_backend)

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
                                             device=self.text_device)
            embeds = tuple(None if e is None else e.to(self.device) for e in embeds)   # from a CPU text encoder
        if self.opts.text_cache:
            self.text_cache[key] = embeds
            while len(self.text_cache) > self.opts.text_cache:
                self.text_cache.popitem(last=False)
        return embeds

    def image_embeddings(self, segment: Segment, keyframes: list[tuple[int, np.ndarray]]) -> torch.Tensor | None:
        """What the transformer's image cross-attention sees: the start picture's encoding, blended
        with the mean bank embedding of the segment's characters by `identity_weight`."""
        transformer = self.pipe.transformer
        if getattr(transformer.config, "image_dim", None) is None or self.encoders.steer is None:
            return None      # Wan2.2 and text-to-video transformers have no image cross-attention
        start = keyframes[0][1] if keyframes else None
        cast = [self.bank.character(ch.id, self.encoder_id, [r.sha256 for r in ch.refs]) for ch in segment.characters]
        cast = [c[0] for c in cast if c is not None]
        identity = np.mean(cast, axis=0) if cast else None
        if start is None and identity is None:
            start = np.full((segment.height, segment.width, 3), NEUTRAL_GREY, np.uint8)
        if start is not None:
            tokens = self.encoders.steer.encode([start])[0][0]
            if identity is not None:
                tokens = (1 - self.opts.identity_weight) * tokens + self.opts.identity_weight * identity
        else:
            tokens = identity
        return torch.from_numpy(np.ascontiguousarray(tokens, np.float32))[None].to(self.device, self.dtype)

    def _latent_shape(self, segment: Segment) -> tuple[int, ...]:
        t, s = self.pipe.vae_scale_factor_temporal, self.pipe.vae_scale_factor_spatial
        return (1, self.pipe.vae.config.z_dim, (segment.frames - 1) // t + 1, segment.height // s, segment.width // s)

    def _to_tensor(self, picture: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(picture).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)

    def _tiling(self, width: int, height: int) -> None:
        if self.speed.tiles(width, height):
            self.pipe.vae.enable_tiling()
        else:
            self.pipe.vae.disable_tiling()

