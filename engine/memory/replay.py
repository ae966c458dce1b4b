"""Replaying diffusers' own code on fake tensors to see how many bytes it keeps alive.

Under torch's `FakeTensorMode` every tensor has a shape, a dtype and a device but no storage, and no
kernel runs: a real-size 14B transformer forward at 75,600 tokens replays on a laptop in seconds.
`LiveBytes` sits above it and counts each new storage's bytes until the storage is freed (a weak
reference's finalizer), so `peak` is what an allocator would have had to hold at once, before its
rounding and caching. That is what `activations.py`'s formulas are checked against (tests and
`bench/memory_table.py --replay`): a check of the formulas against the real code's allocation
pattern, not a measurement on a GPU (fused CUDA kernels may keep less alive than the eager ops).
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages created inside it and still alive: `live` now, `peak` at most."""

    def __init__(self, ignore: Iterable[torch.Tensor] = ()):
        super().__init__()
        self.live = self.peak = 0
        self._seen: dict[int, int] = {}
        self._kept = []                      # storages not to count (weights, inputs), kept alive
        for tensor in ignore:
            storage = tensor.untyped_storage()
            self._kept.append(storage)
            self._seen[id(storage)] = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self._count(tensor.untyped_storage())
        self.peak = max(self.peak, self.live)
        return out

    def _count(self, storage) -> None:
        key = id(storage)
        if key in self._seen:
            return
        size = storage.nbytes()
        self._seen[key] = size
        self.live += size
        weakref.finalize(storage, self._freed, key, size)

    def _freed(self, key: int, size: int) -> None:
        self.live -= size
        self._seen.pop(key, None)


def fake_build(build: Callable[[], torch.nn.Module], dtype: torch.dtype) -> tuple[FakeTensorMode, torch.nn.Module]:
    """A module built on fake tensors with parameters of `dtype` (built in it: fake parameters cannot be
    cast afterwards)."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    default = torch.get_default_dtype()
    with mode:
        torch.set_default_dtype(dtype)
        try:
            module = build()
        finally:
            torch.set_default_dtype(default)
    return mode, module


def peak_bytes(mode: FakeTensorMode, module: torch.nn.Module, run: Callable[[], object],
               inputs: Iterable[torch.Tensor] = ()) -> int:
    """The live-bytes peak of `run()` (no autograd), not counting `module`'s weights nor `inputs`."""
    with mode, torch.no_grad():
        counter = LiveBytes([*module.parameters(), *module.buffers(), *inputs])
        with counter:
            out = run()
        del out
    return counter.peak
