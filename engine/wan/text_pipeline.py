"""Wan text-to-video through sakuga's own denoising loop, so it checkpoints, stops and resumes as the
image-to-video pipeline does.

The stock `WanPipeline` always starts at the first timestep (its step callback can change the latents
after a step, but not put a sampler's state back before the first), so `TextPipeline` keeps its
components, `from_pretrained` and `encode_prompt` and replaces only the call: the given embeddings
and starting noise through `denoising.denoise_steps`, the same noise prediction as `KeyframePipeline`
(one conditional pass, and an unconditional one with guidance above 1), latents returned undecoded.
The transformer sees what the stock pipeline gives it, so the latents are the stock pipeline's.
"""
from __future__ import annotations

import torch
from diffusers import WanPipeline

from ..base import Progress
from ..steps import StepControl
from .denoising import begin_call, denoise_steps
from .keyframe_pipeline import KeyframePipeline


class TextPipeline(WanPipeline):
    """`WanPipeline` whose call takes ready embeddings and starting noise and returns latents."""

    predict_noise = KeyframePipeline.predict_noise     # one noise prediction (and CFG mix) for both pipelines

    @torch.no_grad()
    def __call__(self, *, latents: torch.Tensor, prompt_embeds: torch.Tensor,
                 negative_prompt_embeds: torch.Tensor | None = None, num_inference_steps: int = 50,
                 guidance_scale: float = 5.0, guidance_scale_2: float | None = None,
                 attention_kwargs: dict | None = None, progress: Progress | None = None,
                 control: StepControl | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoise `latents` (B, z_dim, F', h, w) under the prompt embeddings; the denoised latents, float32."""
        # 1. Check inputs
        if self.config.expand_timesteps:
            raise ValueError("TextPipeline does not take Wan2.2 TI2V-5B (expand_timesteps) models")
        if guidance_scale > 1 and negative_prompt_embeds is None:
            raise ValueError("guidance above 1 needs `negative_prompt_embeds`")
        if self.config.boundary_ratio is None and guidance_scale_2 is not None:
            raise ValueError("`guidance_scale_2` is only supported when the pipeline's `boundary_ratio` is not None")
        guidance_scale_2 = begin_call(self, guidance_scale, guidance_scale_2, attention_kwargs)

        # 2. Prompt embeddings in the transformer's dtype, latents in float32 (as stock prepare_latents)
        transformer_dtype = self.transformer.dtype if self.transformer is not None else self.transformer_2.dtype
        prompt_embeds = prompt_embeds.to(transformer_dtype)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(transformer_dtype)
        latents = latents.to(device=self._execution_device, dtype=torch.float32)

        # 3. Denoising loop
        boundary = (None if self.config.boundary_ratio is None
                    else self.config.boundary_ratio * self.scheduler.config.num_train_timesteps)

        def predict(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            high_noise = boundary is None or t >= boundary
            model = self.transformer if high_noise else self.transformer_2
            scale = guidance_scale if high_noise else guidance_scale_2
            return self.predict_noise(model, latents.to(transformer_dtype), t.expand(latents.shape[0]),
                                      prompt_embeds, negative_prompt_embeds, None, scale)

        latents = denoise_steps(self, latents, num_inference_steps, predict, control=control, progress=progress,
                                generator=generator)

        # 4. Offload all models
        self.maybe_free_model_hooks()
        return latents
