"""An FP8-scaled single file, as Kijai's `*_fp8_e4m3fn_scaled_KJ.safetensors` and ComfyUI's
`scaled_fp8` checkpoints are: the large weights stored as float8 (e4m3fn), each with a float32 scale
`<layer>.scale_weight` (ComfyUI's newer spelling: `<layer>.weight_scale`, with a `<layer>.comfy_quant`
marker), the true weight being `weight * scale`; a `scaled_fp8` marker tensor; `scale_input` tensors
for FP8 matmuls, not needed to rebuild the weights. Norms, biases and modulations stay in a float dtype.

Told from the file by its float8 tensors, never by its name. The weights are rebuilt (`weight * scale`
in float32, then the preset's dtype) one tensor at a time while loading.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import naming
from .layout import Layout
from .stored import FP8, Stored, private, read_safetensors

logger = logging.getLogger(__name__)
MARKERS = ("scaled_fp8",)
SCALES = (".scale_weight", ".weight_scale")
SKIPPED = (".scale_input", ".input_scale", ".comfy_quant")     # FP8-matmul inputs and format markers


def is_fp8(tensors: dict[str, Stored]) -> bool:
    return any(s.dtype in FP8 for s in tensors.values())


@dataclass
class Fp8Layout(Layout):
    scales: dict[str, Stored] | None = None       # model tensor (diffusers name) -> its scale

    def read(self, dtype_of) -> Iterator[tuple[str, object]]:
        import torch

        name_of = {id(s): n for n, s in self.tensors.items()}
        scales = self.scales or {}
        scale_values = {id(s): t.float() for s, t in read_safetensors(scales.values())}   # scalars: tiny
        for stored, tensor in read_safetensors(self.tensors.values()):
            name = name_of[id(stored)]
            if stored.dtype in FP8:
                scale = scale_values.get(id(scales[name])) if name in scales else None
                tensor = tensor.to(torch.float32)
                if scale is not None:
                    tensor = tensor * _broadcastable(scale, tensor)
            yield name, private(tensor, dtype_of(name))


def _broadcastable(scale, weight):
    """A per-tensor scale (shape () or (1,)) as it is; a per-output-row one ((rows,) or (rows, 1)) shaped
    to broadcast over the weight's other axes."""
    if scale.numel() == 1:
        return scale.reshape(())
    return scale.reshape(weight.shape[0], *([1] * (weight.dim() - 1)))


def layout(path: Path, tensors: dict[str, Stored], file_naming: str) -> Fp8Layout:
    model, auxiliary = {}, {}
    for name, stored in tensors.items():
        bare = name.removeprefix(naming.COMFY_PREFIX)
        is_aux = bare in MARKERS or bare.endswith(SCALES) or bare.endswith(SKIPPED)
        (auxiliary if is_aux else model)[name] = stored
    renamed = naming.to_diffusers(model, file_naming)
    found = Fp8Layout("fp8-scaled-file", path, file_naming, {new: model[old] for new, old in renamed.items()},
                      files=[path], auxiliary=auxiliary, scales={})
    unscaled = []
    for new, old in renamed.items():
        stored = model[old]
        if stored.dtype not in FP8:
            continue
        layer = old.removesuffix(".weight")
        scale = next((tensors[layer + s] for s in SCALES if layer + s in tensors), None)
        if scale is None:
            unscaled.append(old)
        elif scale.numel not in (1, stored.shape[0]):
            found.problems.append((path, f"scale of {old} has shape {list(scale.shape)}: neither one value "
                                         f"nor one per row of the weight's {list(stored.shape)}"))
        else:
            found.scales[new] = scale
    if unscaled:
        found.notes.append(f"{len(unscaled)} float8 weights have no scale (e.g. {unscaled[0]}): read as stored")
    return found
