"""Wan image-to-video with condition pictures at any frames, not only the first and last.

Wan's I2V transformer sees, next to the noisy latents, a VAE encoding of a "condition video" (the
pictures at their frames, zeros elsewhere) and a mask saying which frames are given. Stock diffusers
builds that for frame 0 and optionally the last frame; AniSora V3 puts pictures at any frame the same
way. `keyframe_condition` builds it (the engine does, once per gang, on rank 0) and `KeyframePipeline`
takes it as an argument of `__call__`, with the prompt and image embeddings and the starting noise.
With no picture the mask is empty and the model renders from text alone.

Laid out like diffusers' `pipeline_wan_i2v.py`: `__call__` in numbered stages, each input a keyword.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from diffusers import WanImageToVideoPipeline

from ..parallel import cfg
from ..steps import StepControl
from .denoising import begin_call, denoise_steps

logger = logging.getLogger(__name__)


class KeyframePipeline(WanImageToVideoPipeline):
    """`WanImageToVideoPipeline` whose call takes a ready keyframe condition and returns latents.

    The components (and `from_pretrained`, `encode_prompt`, the image processor, the VAE) are the stock
    pipeline's; only the call differs: everything the transformer sees is given, nothing is encoded
    inside, and the denoised latents come back undecoded (the engine decodes on one rank of a gang).
    """

    @torch.no_grad()
    def __call__(self, *, latents: torch.Tensor, condition: torch.Tensor, prompt_embeds: torch.Tensor,
                 negative_prompt_embeds: torch.Tensor | None = None, image_embeds: torch.Tensor | None = None,
                 num_inference_steps: int = 50, guidance_scale: float = 5.0, guidance_scale_2: float | None = None,
                 attention_kwargs: dict | None = None,
                 progress: Callable[[int, int], None] | None = None, control: StepControl | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoise `latents` (B, z_dim, F', h, w) under `condition` (the mask and condition latents
        from `keyframe_condition`) and the embeddings; the denoised latents, same shape, float32.
        `guidance_scale_2` is the low-noise expert's (Wan2.2 pairs; defaults to `guidance_scale`);
        `progress(done, total)` is called after each step; `control` takes step checkpoints, stops
        (raising `Stopped`) or resumes (engine/wan/denoising.py); `generator` is where a sampler that
        draws noise draws it."""
        # 1. Check inputs
        self.check_keyframe_inputs(latents, condition, prompt_embeds, negative_prompt_embeds, image_embeds,
                                   guidance_scale, guidance_scale_2)
        guidance_scale_2 = begin_call(self, guidance_scale, guidance_scale_2, attention_kwargs)
        device = self._execution_device

        # 2. Prompt and image embeddings, in the transformer's dtype
        transformer_dtype = self.transformer.dtype if self.transformer is not None else self.transformer_2.dtype
        prompt_embeds = prompt_embeds.to(transformer_dtype)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(transformer_dtype)
        if image_embeds is not None:
            image_embeds = image_embeds.repeat(latents.shape[0], 1, 1).to(transformer_dtype)

        # 3. Latents and the keyframe condition
        latents, condition = self.prepare_keyframe_latents(latents, condition, device)

        # 4. Denoising loop (timesteps, resume, step checkpoints: denoising.py)
        boundary = (None if self.config.boundary_ratio is None
                    else self.config.boundary_ratio * self.scheduler.config.num_train_timesteps)

        def predict(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            high_noise = boundary is None or t >= boundary      # Wan2.1, or Wan2.2's high-noise stage
            model = self.transformer if high_noise else self.transformer_2
            scale = guidance_scale if high_noise else guidance_scale_2
            model_input = torch.cat([latents, condition], dim=1).to(transformer_dtype)
            return self.predict_noise(model, model_input, t.expand(latents.shape[0]), prompt_embeds,
                                      negative_prompt_embeds, image_embeds, scale)

        latents = denoise_steps(self, latents, num_inference_steps, predict, control=control, progress=progress,
                                generator=generator)

        # 5. Offload all models
        self.maybe_free_model_hooks()
        return latents

    def check_keyframe_inputs(self, latents, condition, prompt_embeds, negative_prompt_embeds, image_embeds,
                              guidance_scale, guidance_scale_2) -> None:
        if self.config.expand_timesteps:
            raise ValueError("KeyframePipeline does not take Wan2.2 TI2V-5B (expand_timesteps) models")
        z_dim, temporal = self.vae.config.z_dim, self.vae_scale_factor_temporal
        if latents.dim() != 5 or latents.shape[1] != z_dim:
            raise ValueError(f"`latents` must be (batch, {z_dim}, frames, height, width), not {tuple(latents.shape)}")
        want = (temporal + z_dim, *latents.shape[2:])
        if condition.dim() != 5 or tuple(condition.shape) != (1, *want):
            raise ValueError(f"`condition` must be (1, {', '.join(map(str, want))}) as `keyframe_condition` "
                             f"builds it for these latents, not {tuple(condition.shape)}")
        patch = (self.transformer or self.transformer_2).config.patch_size
        if latents.shape[3] % patch[1] or latents.shape[4] % patch[2]:
            raise ValueError(f"latent height and width {tuple(latents.shape[3:])} must divide by the patch {patch[1:]}")
        if guidance_scale > 1 and negative_prompt_embeds is None:
            raise ValueError("guidance above 1 needs `negative_prompt_embeds`")
        takes_image = self.transformer is not None and self.transformer.config.image_dim is not None
        if takes_image != (image_embeds is not None):
            raise ValueError("`image_embeds` must be given exactly when the transformer has image cross-attention")
        if self.config.boundary_ratio is None and guidance_scale_2 is not None:
            raise ValueError("`guidance_scale_2` is only supported when the pipeline's `boundary_ratio` is not None")

    def prepare_keyframe_latents(self, latents: torch.Tensor, condition: torch.Tensor,
                                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The starting latents and the condition (repeated for each batch entry) on `device` in float32:
        what stock `prepare_latents` returns for a first (and last) frame, for pictures at any frames."""
        latents = latents.to(device=device, dtype=torch.float32)
        return latents, condition.to(device=device, dtype=torch.float32).repeat(latents.shape[0], 1, 1, 1, 1)

    def predict_noise(self, model, model_input, timestep, prompt_embeds, negative_prompt_embeds, image_embeds,
                      guidance_scale: float) -> torch.Tensor:
        """One step's noise prediction; with guidance above 1, an unconditional pass and the CFG mix
        (on a CFG-parallel gang, `engine.parallel.cfg`, each half runs one pass and they swap)."""
        def run(embeds, context):
            with model.cache_context(context):
                return model(hidden_states=model_input, timestep=timestep, encoder_hidden_states=embeds,
                             encoder_hidden_states_image=image_embeds, attention_kwargs=self._attention_kwargs,
                             return_dict=False)[0]

        if not self.do_classifier_free_guidance:
            return run(prompt_embeds, "cond")
        split = cfg.split_of(model)
        if split is not None:
            return split.guide(run(prompt_embeds if split.conditional else negative_prompt_embeds, split.context),
                               guidance_scale)
        noise_pred, noise_uncond = run(prompt_embeds, "cond"), run(negative_prompt_embeds, "uncond")
        return noise_uncond + guidance_scale * (noise_pred - noise_uncond)


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
