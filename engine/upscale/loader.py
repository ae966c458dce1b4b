"""A checkpoint into a super-resolution model through spandrel, which detects the architecture
(ESRGAN/RRDBNet, SRVGGNetCompact, SPAN, ...) and its hyper-parameters from the tensors alone.

spandrel's registry imports torchvision for two architectures sakuga never loads (LaMa inpainting,
RestoreFormer face restoration). On CPU-only installs torchvision is often absent (PyPI has CUDA builds
only, and `make install` keeps torch's CPU build), so when it cannot be imported spandrel gets a
stand-in for `torchvision.transforms.functional` while its registry is built, removed again right
after (nothing else in the process sees it); calling into it raises.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
from functools import cache

from storyboard.errors import InputError

from .presets import UPSCALERS, UpscalerPreset, check_weights

logger = logging.getLogger(__name__)
_STAND_IN = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def _needs_torchvision(*args, **kwargs):
    raise RuntimeError("this spandrel architecture needs torchvision, which is not installed")


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: _needs_torchvision    # InterpolationMode, rotate, normalize ...
    return module


def _torchvision_usable() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision.transforms.functional")
        return True
    except Exception:   # a torchvision built for another torch (e.g. CUDA's beside torch+cpu) fails here
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return False


@cache
def spandrel():
    """The spandrel module (imported once, with the torchvision stand-in when needed)."""
    if importlib.util.find_spec("spandrel") is None:
        raise RuntimeError("upscaling needs spandrel: pip install 'sakuga[upscale]' (with a CPU-only torch: "
                           "pip install --no-deps spandrel einops)")
    if _torchvision_usable():
        return importlib.import_module("spandrel")
    sys.modules.update({name: _stand_in(name) for name in _STAND_IN})
    try:
        return importlib.import_module("spandrel")
    finally:
        for name in _STAND_IN:
            sys.modules.pop(name, None)


def load_model(preset: UpscalerPreset, device: str = "cpu"):
    """spandrel's `ImageModelDescriptor` for the preset's checkpoint, in eval mode on `device`.

    Input errors, at the preset's `weights` (or `scale`) line: the file is missing, is not a model
    spandrel knows, is not a super-resolution net, or has another scale than the preset says."""
    if preset.build_tiny is not None:
        from . import tiny

        t = preset.build_tiny
        tiny.ensure(preset.weights_path(), preset.scale, t.features, t.convs, t.seed)
    check_weights(preset)
    path = preset.weights_path()
    lib = spandrel()
    try:
        model = lib.ModelLoader(device=device).load_from_file(path)
    except (lib.UnsupportedModelError, ValueError, RuntimeError, OSError, KeyError) as e:
        raise _problem(preset, "weights", f"{path} is not a super-resolution checkpoint spandrel can load "
                                          f"({type(e).__name__}: {e})") from None
    if not isinstance(model, lib.ImageModelDescriptor) or model.purpose not in ("SR", "Restoration"):
        raise _problem(preset, "weights", f"{path} is a {model.architecture.name} model for "
                                          f"{getattr(model, 'purpose', '?')}, not super-resolution")
    if model.scale != preset.scale:
        raise _problem(preset, "scale", f"upscaler {preset.name!r} says scale: {preset.scale}, but "
                                        f"{path.name} is a x{model.scale} {model.architecture.name} net")
    logger.debug("loaded %s: %s x%d on %s", preset.name, model.architecture.name, model.scale, device)
    return model.eval()


def _problem(preset: UpscalerPreset, field: str, message: str) -> InputError:
    return InputError([UPSCALERS.problem(preset.name, (field,), f"upscaler {preset.name!r}: {message}")])
