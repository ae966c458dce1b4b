"""A GGUF file, as QuantStack and city96's converter publish Wan transformers (`Q8_0` and smaller):
Wan's tensor names, large weights block-quantised, small ones and norms in F32/F16, shapes in GGML's
order (reversed), a 5-D `patch_embedding.weight` kept whole, and `comfy.gguf.orig_shape.<name>` where the
converter reshaped a tensor. Read with the `gguf` package (the header and a memory map: nothing is read
until a tensor is asked for); each tensor is dequantised by `gguf.quants.dequantize`, one at a time,
straight to the preset's dtype.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

from . import naming
from .layout import Layout
from .stored import READ_WINDOW_BYTES, Stored, private

logger = logging.getLogger(__name__)
MAGIC = b"GGUF"
ORIG_SHAPE = "comfy.gguf.orig_shape."


def is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


def _reader(path: Path):
    from gguf import GGUFReader

    return GGUFReader(str(path))


def _shape(reader, tensor) -> tuple[int, ...]:
    field = reader.get_field(ORIG_SHAPE + tensor.name)
    if field is not None:
        return tuple(int(field.parts[i][0]) for i in field.data)
    return tuple(int(d) for d in reversed(tensor.shape.tolist()))


def header(path: Path) -> dict[str, Stored]:
    """The tensors of a GGUF file by name, from its header."""
    reader = _reader(path)
    return {t.name: Stored(t.name, path, t.tensor_type.name, _shape(reader, t), int(t.n_bytes))
            for t in reader.tensors}


class GgufLayout(Layout):
    def read(self, dtype_of) -> Iterator[tuple[str, object]]:
        import torch
        from gguf.quants import dequantize

        by_file_name = {s.name: n for n, s in self.tensors.items()}
        reader, read = None, 0
        names = [t.name for t in _reader(self.path).tensors if t.name in by_file_name]
        for file_name in names:
            if reader is None or read >= READ_WINDOW_BYTES:   # a fresh map lets the pages read so far go
                reader, read = _reader(self.path), 0
                tensors = {t.name: t for t in reader.tensors}
            tensor = tensors[file_name]
            name = by_file_name[file_name]
            values = dequantize(tensor.data, tensor.tensor_type).reshape(self.tensors[name].shape)
            with warnings.catch_warnings():     # F32 tensors come back as read-only views of the map
                warnings.simplefilter("ignore", UserWarning)
                yield name, private(torch.from_numpy(values), dtype_of(name))
            read += int(tensor.n_bytes)


def layout(path: Path, tensors: dict[str, Stored]) -> GgufLayout:
    file_naming = naming.naming(tensors)
    renamed = naming.to_diffusers(tensors, file_naming) if file_naming else {}
    found = GgufLayout("gguf-file", path, file_naming, {new: tensors[old] for new, old in renamed.items()},
                       files=[path])
    if file_naming is None:
        found.problems.append((path, f"its {len(tensors)} tensors are not named as a Wan transformer's "
                                     f"(is it a text encoder or another model's GGUF?)"))
    return found
