"""A diffusers sampler's mutable state between steps: taken out for a step checkpoint, put back to resume.

Generic over diffusers schedulers: `set_timesteps` makes a scheduler's schedule (timesteps, sigmas),
and `step` then changes a few attributes: UniPC's `model_outputs`, `timestep_list`, `lower_order_nums`,
`last_sample`, `this_order` and `_step_index`; flow-match Euler's `_step_index` alone. Rather than a
list per scheduler, `fresh` notes the attributes right after `set_timesteps`, and `capture` keeps those
that have changed since. Resuming is `set_timesteps` again (the same schedule), then `restore`.
"""
from __future__ import annotations

from typing import Any

import torch

_SKIP = ("config", "_internal_dict")   # the scheduler's frozen configuration, not state


def _storable(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_storable(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, torch.Tensor))


def fresh(scheduler) -> dict:
    """The scheduler's plain attributes now (call right after `set_timesteps`). Lists are copied
    (`step` changes them in place); tensors are referenced, not copied (it replaces them)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in vars(scheduler).items()
            if k not in _SKIP and _storable(v)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and (a is b or torch.equal(a.cpu(), b.cpu())))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def capture(scheduler, since: dict) -> dict:
    """The attributes that differ from `since` (what `fresh` noted), copied to the CPU."""
    now = vars(scheduler)
    return {k: _to_cpu(v) for k, v in now.items()
            if k not in _SKIP and _storable(v) and (k not in since or not _same(v, since[k]))}


def unknown(scheduler, state: dict) -> list[str]:
    """Names in `state` this scheduler does not have (a checkpoint of another sampler)."""
    return sorted(k for k in state if k in _SKIP or k not in vars(scheduler))


def _placed(value: Any, like: Any, device: torch.device) -> Any:
    """`value` on the device of what it replaces (sigmas stay on the CPU, as diffusers keeps them),
    or on the loop's device for what `set_timesteps` left empty (model outputs, last sample)."""
    if isinstance(value, torch.Tensor):
        return value.to(like.device if isinstance(like, torch.Tensor) else device, copy=True)   # the state stays reusable
    if isinstance(value, (list, tuple)):
        likes = list(like) if isinstance(like, (list, tuple)) and len(like) == len(value) else [None] * len(value)
        return type(value)(_placed(v, lk, device) for v, lk in zip(value, likes))
    return value


def restore(scheduler, state: dict, device: torch.device) -> None:
    """Put `state` back on a scheduler that has just had `set_timesteps` with the same step count."""
    for name, value in state.items():
        setattr(scheduler, name, _placed(value, getattr(scheduler, name, None), device))
