"""Step checkpoints: a segment's denoising state at a step boundary, and how a render is told to take
one, stop, or start from one.

A `StepState` is everything the denoising loop needs to carry on from step `step` exactly as if it had
never stopped: the latents, the sampler's mutable state (UniPC keeps its last model outputs and sample),
the random generator where the sampler draws noise, and the caller's content `key` of what it was
conditioned on. The conditions themselves (prompt, pictures) are not in it: they are recomputed from the
segment, which the key stands for. Latents are the whole (1, C, F', h, w) tensor on every rank of a gang,
so a state taken at one gang width resumes at any other.

`to_bytes` writes one safetensors blob (tensors plus a JSON header in its metadata, no pickle) with a
sha256 over the header and every tensor, so a truncated or altered blob is refused by `from_bytes`.
torch is imported only to serialise, so the farm can import this module's types cheaply.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

FORMAT = "sakuga-step-state"
VERSION = 1
_HEADER_LIMIT = 1 << 20     # a state's JSON header is a few hundred bytes; more is not one of ours


@dataclass
class StepState:
    """A segment's denoising state at a step boundary."""

    key: str                     # what it was conditioned on: the caller's content key (farm: the segment's cache key)
    step: int                    # steps done, 0 < step <= steps
    steps: int                   # the segment's total steps
    latents: np.ndarray          # float32, the pipeline's latent shape (1, C, F', h, w): independent of the gang width
    scheduler: dict              # the sampler's mutable state: name -> tensor, list of tensors/None, or plain value
    generator: bytes | None      # torch.Generator state where the sampler draws noise (None when it draws none)

    def to_bytes(self) -> bytes:
        """One self-describing blob: safetensors, the JSON header and its digest in the metadata."""
        import torch
        from safetensors.torch import save

        tensors = {"latents": torch.from_numpy(np.ascontiguousarray(self.latents, np.float32))}
        layout = {name: _flatten(value, f"scheduler/{name}", tensors) for name, value in self.scheduler.items()}
        if self.generator is not None:
            tensors["generator"] = torch.frombuffer(bytearray(self.generator), dtype=torch.uint8)
        header = json.dumps({"format": FORMAT, "version": VERSION, "key": self.key, "step": self.step,
                             "steps": self.steps, "scheduler": layout, "generator": self.generator is not None},
                            sort_keys=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(tensors.items())}
        return save(tensors, metadata={"sakuga": header, "sha256": _digest(header, tensors)})

    @classmethod
    def from_bytes(cls, data: bytes) -> StepState:
        """The state `to_bytes` wrote; ValueError("damaged step checkpoint: ...") on anything else."""
        try:
            return _read(data)
        except ValueError as e:
            raise ValueError(f"damaged step checkpoint: {e}") from None
        except Exception as e:      # safetensors' own errors for a broken header or data area
            raise ValueError(f"damaged step checkpoint: {type(e).__name__}: {e}") from None

    @property
    def nbytes(self) -> int:
        """Roughly what the blob weighs: the latents and the sampler's tensors."""
        total = self.latents.nbytes + len(self.generator or b"")
        for value in self.scheduler.values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                total += item.numel() * item.element_size() if hasattr(item, "numel") else 0
        return total


class StepControl(Protocol):
    """What render() is given to checkpoint, stop and resume."""

    key: str
    resume: StepState | None     # start from here (ignored, with a log line, when its key/steps/shape do not match)

    def boundary(self, done: int, total: int, capture: Callable[[], StepState]) -> bool:
        """After each step (done = steps done). Call capture() to take a checkpoint; return True to stop here."""
        ...


class Stopped(Exception):
    """render() raises it after boundary() returned True (all ranks of a gang stop at the same step).
    `state` is the checkpoint at that step (the one boundary() captured, or taken then), so whoever
    asked for the stop has it even if it did not capture."""

    def __init__(self, step: int, state: StepState | None = None):
        super().__init__(f"stopped after step {step}")
        self.step = step
        self.state = state

    def __reduce__(self):        # pickled across processes (Ray) with its step and state, not its message
        return (Stopped, (self.step, self.state))


def usable(resume: StepState | None, key: str, steps: int, shape: tuple[int, ...]) -> StepState | None:
    """`resume` if it belongs to this render (same key, step count and latent shape), else None with
    a log line saying why: a stale or foreign checkpoint costs a full render, never wrong frames."""
    if resume is None:
        return None
    why = (f"its key {resume.key!r} is not this segment's {key!r}" if resume.key != key
           else f"it has {resume.steps} steps, this render {steps}" if resume.steps != steps
           else f"its step {resume.step} is outside 1..{steps}" if not 0 < resume.step <= steps
           else f"its latents are {tuple(resume.latents.shape)}, this render's {tuple(shape)}"
           if tuple(resume.latents.shape) != tuple(shape) else None)
    if why:
        logger.warning("step checkpoint ignored, rendering from step 0: %s", why)
        return None
    return resume


# -- the blob --------------------------------------------------------------------------------------

def _flatten(value: Any, name: str, tensors: dict) -> dict:
    """A scheduler value as JSON, its tensors moved into `tensors` under names derived from `name`."""
    if hasattr(value, "numel"):
        tensors[name] = value
        return {"tensor": name}
    if isinstance(value, (list, tuple)):
        return {"list": [_flatten(v, f"{name}/{i}", tensors) for i, v in enumerate(value)],
                "tuple": isinstance(value, tuple)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"step state: cannot store {name} of type {type(value).__name__}")


def _unflatten(spec: dict, tensors: dict) -> Any:
    if "tensor" in spec:
        return tensors[spec["tensor"]]
    if "list" in spec:
        items = [_unflatten(s, tensors) for s in spec["list"]]
        return tuple(items) if spec.get("tuple") else items
    return spec["value"]


def _digest(header: str, tensors: dict) -> str:
    import torch

    h = hashlib.sha256(header.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _metadata(data: bytes) -> dict:
    """The safetensors header's metadata. The library reads it from files only; a blob's header is
    8 bytes of little-endian length, then that much JSON (the format's own definition)."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes is too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if not 0 < n <= min(_HEADER_LIMIT, len(data) - 8):
        raise ValueError(f"header length {n} does not fit a {len(data)}-byte blob")
    meta = json.loads(data[8:8 + n]).get("__metadata__")
    if not isinstance(meta, dict) or "sakuga" not in meta or "sha256" not in meta:
        raise ValueError("no sakuga step-state metadata in the header")
    return meta


def _read(data: bytes) -> StepState:
    import torch
    from safetensors.torch import load

    meta = _metadata(bytes(data[:8 + _HEADER_LIMIT]))
    tensors = load(bytes(data))
    if _digest(meta["sakuga"], tensors) != meta["sha256"]:
        raise ValueError("its sha256 does not match its contents (altered or truncated)")
    head = json.loads(meta["sakuga"])
    if head.get("format") != FORMAT or head.get("version") != VERSION:
        raise ValueError(f"format {head.get('format')!r} version {head.get('version')!r}, "
                         f"not {FORMAT!r} version {VERSION}")
    latents = tensors.get("latents")
    if latents is None or latents.dtype != torch.float32 or latents.dim() != 5:
        raise ValueError("its latents are missing or not a float32 (1, C, F', h, w) tensor")
    generator = tensors["generator"].numpy().tobytes() if head["generator"] else None
    scheduler = {name: _unflatten(spec, tensors) for name, spec in head["scheduler"].items()}
    return StepState(key=head["key"], step=int(head["step"]), steps=int(head["steps"]),
                     latents=latents.numpy(), scheduler=scheduler, generator=generator)
