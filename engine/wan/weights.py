"""Loading a `transformer:` / `transformer_2:` checkpoint in any layout users have (engine/wan/layouts).

The model is built on the meta device from the checkpoint's own config (or the base folder's), the
files are checked against it from their headers (a missing, extra or wrongly shaped tensor, a missing
shard: refused, naming it, before anything is read), then tensors are read one at a time, each cast to
the preset's dtype as it is read and put in place. Peak host memory stays near one copy of the model at
that dtype: never the stored FP32 (or FP8, GGUF) original plus a converted copy.

As diffusers' `from_pretrained` does, the modules `WanTransformer3DModel._keep_in_fp32_modules` names
(time embedder, norms, modulation tables) stay in float32 whatever the preset's dtype, so a diffusers
folder loads here into exactly what `from_pretrained` gives.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard.errors import InputError, Problem

from .architecture import base_config, empty_model, fit, refusals
from .layouts import UnknownLayout, detect

if TYPE_CHECKING:
    from diffusers import WanTransformer3DModel

logger = logging.getLogger(__name__)


def load_transformer(checkpoint: Path, base: Path, dtype, subfolder: str = "transformer") -> WanTransformer3DModel:
    """The transformer stored at `checkpoint` (any layout), in `dtype`; raises InputError naming the file
    and what is wrong with it when it does not fit the architecture."""
    import torch
    from accelerate.utils import set_module_tensor_to_device

    started = time.perf_counter()
    try:
        layout = detect(Path(checkpoint))
    except UnknownLayout as e:
        raise InputError.single(checkpoint, str(e)) from None
    config, _ = base_config(Path(base), subfolder)
    result = fit(layout, config)
    refused = refusals(layout, result)
    if refused:
        raise InputError([Problem(str(file), 1, 1, message) for file, message in refused])
    for note in layout.notes:
        logger.info("%s: %s", checkpoint, note)
    model = empty_model(result.config)
    keep = tuple(model._keep_in_fp32_modules or ())

    def dtype_of(name: str):
        return torch.float32 if any(part in keep for part in name.split(".")) else dtype

    for name, tensor in layout.read(dtype_of):
        set_module_tensor_to_device(model, name, "cpu", value=tensor, dtype=tensor.dtype)
    model.eval()
    logger.debug("loaded %s (%s, %d tensors, stored %s) in %.1f s", checkpoint, layout.kind, len(layout.tensors),
                 ", ".join(layout.dtypes()), time.perf_counter() - started)
    return model
