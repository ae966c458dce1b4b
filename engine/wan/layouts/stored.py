"""What a weight file holds, read from its header alone: names, stored dtypes, shapes, and the files a
sharded checkpoint is split into.

safetensors' own `safe_open` reads the header (`get_slice(...).get_shape()` and `get_dtype()` touch no
tensor data), so describing a 14B checkpoint costs the same as describing a tiny one. Tensors are read
later, one at a time (`read_safetensors`), by whichever layout owns them.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# Bytes per element of the dtypes safetensors names (GGUF's block-quantised types carry their own size).
ELEMENT_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                 "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FP8 = ("F8_E4M3", "F8_E5M2")
INDEX_SUFFIX = ".safetensors.index.json"
# A safe_open handle maps its file: pages it has read stay in this process's resident memory until it
# is closed. Reopening after this many bytes keeps a one-file FP32 checkpoint from piling up in RAM.
READ_WINDOW_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Stored:
    """One tensor as a file stores it (the file's own name for it, its own dtype)."""

    name: str
    file: Path
    dtype: str                  # "F32", "BF16", "F8_E4M3"... or a GGUF type ("Q8_0")
    shape: tuple[int, ...]      # the logical shape (a GGUF block-quantised tensor's unpacked shape)
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Shards:
    """The safetensors files of a checkpoint: what the index names, what is here, what they hold."""

    tensors: dict[str, Stored] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)          # present and readable
    missing: list[str] = field(default_factory=list)         # named by the index, not on disk
    lost: list[str] = field(default_factory=list)            # tensors the index places in missing shards
    problems: list[tuple[Path, str]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)   # the first file's `__metadata__`


class NotSafetensors(ValueError):
    """The file is not a safetensors file (or is cut short)."""


def header(path: Path) -> tuple[dict[str, Stored], dict[str, str]]:
    """The tensors a safetensors file holds, from its header; raises NotSafetensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            found = {}
            for name in f.keys():
                piece = f.get_slice(name)
                shape, dtype = tuple(piece.get_shape()), piece.get_dtype()
                found[name] = Stored(name, path, dtype, shape, math.prod(shape) * ELEMENT_BYTES.get(dtype, 1))
            return found, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:   # wrong magic, a cut header, a file shorter than it says
        raise NotSafetensors(f"not a readable safetensors file ({str(e).splitlines()[0] if str(e) else e})") from None


def index_file(folder: Path) -> Path | None:
    """The folder's `*.safetensors.index.json` (diffusers and Wan name it
    `diffusion_pytorch_model.safetensors.index.json`), if it has exactly one."""
    found = sorted(folder.glob(f"*{INDEX_SUFFIX}"))
    return found[0] if len(found) == 1 else None


def read_shards(folder: Path) -> Shards:
    """Every tensor of the checkpoint in `folder`: the shards its index names (missing ones listed), or
    without an index every `*.safetensors` file there."""
    shards = Shards()
    index = index_file(folder)
    if index is not None:
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            shards.problems.append((index, f"not a readable index: no weight_map ({e})"))
            return shards
        files = [folder / n for n in names]
    else:
        weight_map, files = None, sorted(folder.glob("*.safetensors"))
    for file in files:
        if not file.is_file():
            shards.missing.append(file.name)
            continue
        try:
            held, metadata = header(file)
        except NotSafetensors as e:
            shards.problems.append((file, str(e)))
            continue
        shards.files.append(file)
        shards.metadata = shards.metadata or metadata
        for name, stored in held.items():
            if name in shards.tensors:
                shards.problems.append((file, f"tensor {name} is also in {shards.tensors[name].file.name}"))
            shards.tensors[name] = stored
    if weight_map is not None:
        _check_index(index, weight_map, shards)
        shards.lost = sorted(n for n, f in weight_map.items() if f in set(shards.missing))
    return shards


def _check_index(index: Path, weight_map: dict[str, str], shards: Shards) -> None:
    """Tensors the index places in a shard that is here but does not hold them (a shard from another
    download, or a corrupt one)."""
    present = {f.name for f in shards.files}
    absent = sorted(n for n, f in weight_map.items() if f in present and n not in shards.tensors)
    if absent:
        shards.problems.append((index, f"{len(absent)} tensors the index names are not in their shard, "
                                       f"e.g. {absent[0]} (in {weight_map[absent[0]]})"))


def read_safetensors(tensors: Iterable[Stored], window: int = READ_WINDOW_BYTES) -> Iterator[tuple[Stored, object]]:
    """(stored, torch tensor) one at a time, file by file. A tensor may be a view of the mapped file:
    keep only what `private` makes of it. The handle is reopened every `window` bytes so the pages
    already read are let go."""
    from safetensors import safe_open

    by_file: dict[Path, list[Stored]] = {}
    for stored in tensors:
        by_file.setdefault(stored.file, []).append(stored)
    for file, todo in by_file.items():
        handle, read = None, 0
        try:
            for stored in todo:
                if handle is None or read >= window:
                    if handle is not None:
                        handle.__exit__(None, None, None)
                    handle, read = safe_open(str(file), framework="pt").__enter__(), 0
                yield stored, handle.get_tensor(stored.name)
                read += stored.nbytes
        finally:
            if handle is not None:
                handle.__exit__(None, None, None)


def private(tensor, dtype):
    """`tensor` as a fresh allocation of `dtype`: never a view of a mapped file (whose pages would stay
    resident), and aligned as torch aligns its own memory whatever the tensor's offset in the file (CPU
    kernels may round differently for other alignments, so equal bytes must get equal placement)."""
    return tensor.to(dtype) if tensor.dtype != dtype else tensor.clone()
