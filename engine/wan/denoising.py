"""The denoising loop both Wan pipelines run (image-to-video with keyframes, and text-to-video), with
step checkpoints: it starts from a `StepState` when the render's control has one, and at every step
boundary lets the control take a checkpoint (copied to the CPU only when it asks) or stop the render.

Resuming is exact: the same timesteps (`set_timesteps` with the same count), the latents and the
sampler's state put back (`engine.sampler_state`), the random generator where the sampler draws noise,
then the loop carries on at the saved step, calling the transformer only for the steps left. What a
speed cache (engine/wan/speed.py) learnt in earlier steps is not in a checkpoint: caches start cold on
resume (first-block and TeaCache-style caches compute the first resumed step in full; MagCache is set
up for the steps left), so with a cache on, a resumed render may differ from an uninterrupted one as
much as a cached render differs from an uncached one.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

import torch

from .. import sampler_state
from ..base import Progress
from ..steps import StepControl, StepState, Stopped

logger = logging.getLogger(__name__)

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (latents, timestep) -> noise prediction


def begin_call(pipe, guidance_scale: float, guidance_scale_2: float | None, attention_kwargs: dict | None) -> float | None:
    """What a Wan pipeline's `__call__` sets on itself before its loop (as diffusers' do); the low-noise
    expert's guidance, which defaults to `guidance_scale` on a Wan2.2 pair."""
    if pipe.config.boundary_ratio is not None and guidance_scale_2 is None:
        guidance_scale_2 = guidance_scale
    pipe._guidance_scale, pipe._guidance_scale_2 = guidance_scale, guidance_scale_2
    pipe._attention_kwargs = attention_kwargs
    pipe._current_timestep = None
    pipe._interrupt = False
    return guidance_scale_2


def denoise_steps(pipe, latents: torch.Tensor, steps: int, predict: Predict, *, control: StepControl | None = None,
                  progress: Progress | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run `pipe.scheduler` over `steps` steps from `latents` (or from `control.resume`), calling
    `predict` once per step; the denoised latents. Raises `Stopped` when the control stops it."""
    scheduler, device = pipe.scheduler, latents.device
    scheduler.set_timesteps(steps, device=device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)    # as diffusers' Wan pipelines: no device sync to find the first index
    timesteps, since = scheduler.timesteps, sampler_state.fresh(scheduler)
    total = pipe._num_timesteps = len(timesteps)
    draws = generator if "generator" in inspect.signature(scheduler.step).parameters else None
    extra = {} if draws is None else {"generator": draws}
    start = 0
    if control is not None and control.resume is not None:
        latents, start = _resume(scheduler, control.resume, latents, draws)
        if progress is not None:
            progress(start, total)
    for i in range(start, total):
        t = timesteps[i]
        pipe._current_timestep = t
        latents = scheduler.step(predict(latents, t), t, latents, **extra, return_dict=False)[0]
        if progress is not None:
            progress(i + 1, total)
        if control is not None:
            _boundary(pipe, control, i + 1, total, lambda: _state(control.key, i + 1, total, latents, scheduler,
                                                                  since, draws))
    pipe._current_timestep = None
    return latents


def _resume(scheduler, state: StepState, latents: torch.Tensor,
            draws: torch.Generator | None) -> tuple[torch.Tensor, int]:
    sampler_state.restore(scheduler, state.scheduler, latents.device)
    if draws is not None:
        if state.generator is None:
            logger.warning("step checkpoint without the sampler's generator state: the noise it draws from "
                           "step %d on differs from an uninterrupted render", state.step)
        else:
            draws.set_state(torch.frombuffer(bytearray(state.generator), dtype=torch.uint8))
    logger.debug("resuming at step %d of %d", state.step, state.steps)
    return torch.from_numpy(state.latents).to(device=latents.device, dtype=latents.dtype), state.step


def _state(key: str, done: int, total: int, latents: torch.Tensor, scheduler, since: dict,
           draws: torch.Generator | None) -> StepState:
    """The checkpoint after step `done`: everything copied to the CPU, so later steps cannot change it."""
    return StepState(key=key, step=done, steps=total, latents=latents.detach().to("cpu", torch.float32, copy=True).numpy(),
                     scheduler=sampler_state.capture(scheduler, since),
                     generator=None if draws is None else draws.get_state().numpy().tobytes())


def _boundary(pipe, control: StepControl, done: int, total: int, take: Callable[[], StepState]) -> None:
    taken: list[StepState] = []

    def capture() -> StepState:        # at most one copy a step, however often it is asked
        if not taken:
            taken.append(take())
        return taken[0]

    if not control.boundary(done, total, capture):
        return
    if done == total:
        logger.debug("stop asked after the last step: the render finishes (a decode is cheaper than a restart)")
        return
    pipe._current_timestep = None
    pipe.maybe_free_model_hooks()      # speed caches reset, offloaded models back on the CPU, as at a normal end
    logger.debug("stopped after step %d of %d", done, total)
    raise Stopped(done, capture())
