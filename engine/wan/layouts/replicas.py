"""Writing a transformer in each published layout, from its diffusers state dict: the replicas tests and
benches load back (AniSora V3's sharded Wan folder, V3.2's expert folders, Wan single files, Kijai's
FP8-scaled files, GGUF Q8_0, diffusers folders) and sparse files whose headers claim a full-size model.

The formats follow what the publishers' tools write: Wan's `WanModel.save_pretrained` (config + shards +
index), ComfyUI's `scaled_fp8` convention (float8 weight, float32 `scale_weight`, a `scaled_fp8`
marker), city96's GGUF converter (Q8_0 for large matrices, F32 for vectors and small tensors, shapes in
GGML order, Wan's names, architecture `wan`).
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from . import naming
from .stored import ELEMENT_BYTES, INDEX_SUFFIX

WEIGHTS = "diffusion_pytorch_model"
GGUF_QUANTISE_FROM = 1024      # city96's converter keeps smaller tensors in F32 (its threshold is larger)


def wan_state_dict(state_dict: dict) -> dict:
    """The same tensors under Wan's names."""
    return {wan: state_dict[d].detach().contiguous() for wan, d in naming.to_wan(state_dict).items()}


def shard_plan(names: list[str], shards: int) -> list[list[str]]:
    """`names` cut into `shards` consecutive runs, as Wan's sharded saves cut them (whole blocks)."""
    size = math.ceil(len(names) / shards)
    return [names[i:i + size] for i in range(0, len(names), size)]


def write_wan_folder(state_dict: dict, config: dict, folder: Path, shards: int = 3,
                     with_config: bool = True, dtype=None) -> Path:
    """A Wan-format folder as AniSora publishes V3/V3.1 and each V3.2 expert: Wan's config.json (unless
    `with_config` is false, as some V3.2 downloads), `diffusion_pytorch_model-0000K-of-0000N.safetensors`
    shards and their index, tensors in `dtype` (default: as given)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    wan = wan_state_dict(state_dict)
    if dtype is not None:
        wan = {k: v.to(dtype) for k, v in wan.items()}
    runs = shard_plan(list(wan), shards)
    weight_map = {}
    for k, names in enumerate(runs, start=1):
        file = f"{WEIGHTS}-{k:05d}-of-{len(runs):05d}.safetensors"
        save_file({n: wan[n] for n in names}, folder / file, metadata={"format": "pt"})
        weight_map.update({n: file for n in names})
    total = sum(v.numel() * v.element_size() for v in wan.values())
    (folder / f"{WEIGHTS}{INDEX_SUFFIX}").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    if with_config:
        (folder / "config.json").write_text(json.dumps(naming.wan_config(config), indent=2))
    return folder


def write_single_file(state_dict: dict, path: Path, file_naming: str = naming.WAN) -> Path:
    from safetensors.torch import save_file

    tensors = wan_state_dict(state_dict) if file_naming == naming.WAN else \
        {k: v.detach().contiguous() for k, v in state_dict.items()}
    save_file(tensors, path)
    return path


def fp8_scaled(state_dict: dict) -> dict:
    """Wan-named tensors as an FP8-scaled file holds them: every 2-D weight of the blocks as float8_e4m3fn
    scaled to its largest magnitude (`scale_weight` = absmax / 448, float32), the rest as given, and the
    `scaled_fp8` marker."""
    import torch

    out = {"scaled_fp8": torch.zeros(2, dtype=torch.float8_e4m3fn)}
    top = torch.finfo(torch.float8_e4m3fn).max
    for name, tensor in wan_state_dict(state_dict).items():
        if name.startswith("blocks.") and name.endswith(".weight") and tensor.dim() == 2:
            scale = tensor.float().abs().max().clamp(min=1e-12) / top
            out[name] = (tensor.float() / scale).clamp(-top, top).to(torch.float8_e4m3fn)
            out[name.removesuffix(".weight") + ".scale_weight"] = scale.reshape(1)
        else:
            out[name] = tensor
    return out


def write_fp8_scaled(state_dict: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file(fp8_scaled(state_dict), path)
    return path


def write_gguf(state_dict: dict, path: Path, quantise_from: int = GGUF_QUANTISE_FROM) -> Path:
    """A GGUF file as city96's converter writes a Wan transformer: Wan's names, Q8_0 for matrices of at
    least `quantise_from` values whose rows split into 32-value blocks, F32 for the rest (vectors, small
    tensors, the 5-D patch embedding)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path=None, arch="wan")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, tensor in wan_state_dict(state_dict).items():
        data = tensor.float().numpy()
        qtype = gguf.GGMLQuantizationType.F32
        if data.ndim == 2 and data.shape[-1] % 32 == 0 and data.size >= quantise_from:
            qtype = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(np.ascontiguousarray(data), qtype), raw_dtype=qtype)
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_sparse_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> Path:
    """A safetensors file whose header describes `tensors` ({name: (dtype, shape)}) and whose data is a
    hole: the file has its full size but takes no disk (a model-size fixture for header-only checks).
    No library writes a header without the data, so the header is laid out here by the format's rule:
    8-byte little-endian header length, the JSON header padded to 8 bytes, then the tensors in order."""
    entries, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * ELEMENT_BYTES[dtype]
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + offset)
    return path


def write_sparse_wan_folder(config: dict, folder: Path, shards: int = 6, dtype: str = "F32") -> Path:
    """A full-size Wan-format folder (config, index, shards) of `config`'s architecture, all holes."""
    from ..architecture import empty_model

    folder.mkdir(parents=True, exist_ok=True)
    shapes = {n: tuple(t.shape) for n, t in empty_model(config).state_dict().items()}
    wan = {w: shapes[d] for w, d in naming.to_wan(shapes).items()}
    runs = shard_plan(list(wan), shards)
    weight_map = {}
    for k, names in enumerate(runs, start=1):
        file = f"{WEIGHTS}-{k:05d}-of-{len(runs):05d}.safetensors"
        write_sparse_safetensors(folder / file, {n: (dtype, wan[n]) for n in names})
        weight_map.update({n: file for n in names})
    (folder / f"{WEIGHTS}{INDEX_SUFFIX}").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(naming.wan_config(config), indent=2))
    return folder


