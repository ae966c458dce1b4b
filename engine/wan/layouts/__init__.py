"""Transformer checkpoints as users have them, told apart by their files (never by their names):

| layout | what is on disk | told by |
|---|---|---|
| `wan-folder` | Wan `config.json` (`dim`, `num_heads`...) + shards + index, Wan tensor names (AniSora V3/V3.1, each V3.2 expert) | a folder whose tensors have Wan names |
| `diffusers-folder` | diffusers `config.json` + `diffusion_pytorch_model*.safetensors` (sharded or not) | a folder whose tensors have diffusers names |
| `wan-file`, `diffusers-file` | one `.safetensors`, float dtypes | a file whose header names tensors the Wan or diffusers way |
| `fp8-scaled-file` | one `.safetensors` with float8 weights and per-weight scales (Kijai's `*_fp8_e4m3fn_scaled_KJ`) | float8 dtypes in the header |
| `gguf-file` | one GGUF file (QuantStack `Q8_0`...) | the `GGUF` magic bytes |

`detect(path)` reads headers only; `engine.wan.weights` loads a layout, `engine.wan.model_check`
describes one against the architecture.
"""
from __future__ import annotations

from pathlib import Path

from . import diffusers_folder, fp8_scaled, gguf_file, naming, single_file, wan_folder
from .layout import Layout
from .stored import NotSafetensors, header, index_file, read_shards

__all__ = ["Layout", "detect", "UnknownLayout"]


class UnknownLayout(ValueError):
    """The path holds no transformer checkpoint sakuga can read; the message says what it found."""


def detect(path: Path) -> Layout:
    """The layout of the transformer checkpoint at `path` (a file or a folder), from headers alone."""
    path = Path(path)
    if path.is_dir():
        return _folder(path)
    if not path.is_file():
        raise UnknownLayout(f"{path}: no such file or folder")
    if gguf_file.is_gguf(path):
        return gguf_file.layout(path, gguf_file.header(path))
    try:
        tensors, _ = header(path)
    except NotSafetensors as e:
        raise UnknownLayout(f"{path}: neither a GGUF file nor a safetensors file: {e}") from None
    file_naming = naming.naming(tensors)
    if file_naming is None:
        raise UnknownLayout(f"{path}: its {len(tensors)} tensors are not named as a Wan transformer's "
                            f"(Wan's `blocks.0.self_attn.q.weight` or diffusers' `blocks.0.attn1.to_q.weight`)")
    if fp8_scaled.is_fp8(tensors):
        return fp8_scaled.layout(path, tensors, file_naming)
    return single_file.layout(path, tensors, file_naming)


def _folder(folder: Path) -> Layout:
    shards = read_shards(folder)
    if not shards.tensors and not shards.missing and not shards.problems:
        raise UnknownLayout(_empty_folder(folder))
    file_naming = naming.naming([*shards.tensors, *shards.lost])   # an index names even the missing shards' tensors
    if file_naming is None and shards.tensors:
        raise UnknownLayout(f"{folder}: its {len(shards.tensors)} tensors are not named as a Wan transformer's")
    if file_naming == naming.DIFFUSERS:
        return diffusers_folder.layout(folder, shards)
    return wan_folder.layout(folder, shards)


def _empty_folder(folder: Path) -> str:
    """Why a folder holds no checkpoint, pointing at subfolders that do (AniSora V3.2's root folder)."""
    inside = sorted(p.name + "/" for p in folder.iterdir()
                    if p.is_dir() and (index_file(p) is not None or any(p.glob("*.safetensors"))))
    if inside:
        return (f"{folder}: no safetensors files here, but in {', '.join(inside)}: point the option at one of "
                f"them (AniSora V3.2: transformer at high_noise_model/, transformer_2 at low_noise_model/)")
    gguf = sorted(p.name for p in folder.glob("*.gguf"))
    if gguf:
        return f"{folder}: a folder of GGUF files ({', '.join(gguf)}): point the option at one file"
    return f"{folder}: no safetensors files (and no *.safetensors.index.json) in this folder"
