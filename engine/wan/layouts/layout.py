"""A transformer checkpoint as found on disk: which layout, which tensors (by diffusers name), the config
the files carry, what is missing or wrong with the files themselves, and how to read them.

A `Layout` is built from headers only. `read(dtype)` then yields the model's tensors one at a time,
already in the wanted dtype, so a loader keeps one copy of the model at that dtype and never the file's
(FP32, FP8, GGUF) original next to it.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .stored import Stored, private, read_safetensors

logger = logging.getLogger(__name__)


@dataclass
class Layout:
    kind: str                          # "wan-folder", "diffusers-folder", "wan-file", "fp8-scaled-file", "gguf-file"...
    path: Path
    naming: str | None                 # "wan" or "diffusers"; None: not recognisably a Wan transformer
    tensors: dict[str, Stored]         # model tensors by diffusers name
    config: dict | None = None         # the transformer config the files carry (diffusers terms); None: the base's
    files: list[Path] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)   # the files' own faults, by file
    notes: list[str] = field(default_factory=list)
    auxiliary: dict[str, Stored] = field(default_factory=dict)       # scales, markers: used while reading
    lost: set[str] = field(default_factory=set)      # diffusers names of tensors in missing shards

    @property
    def parameters(self) -> int:
        return sum(s.numel for s in self.tensors.values())

    @property
    def stored_bytes(self) -> int:
        return sum(s.nbytes for s in self.tensors.values()) + sum(s.nbytes for s in self.auxiliary.values())

    def dtypes(self) -> dict[str, int]:
        """Stored dtypes of the model tensors, most common first, with their counts."""
        return dict(Counter(s.dtype for s in self.tensors.values()).most_common())

    def read(self, dtype_of) -> Iterator[tuple[str, object]]:
        """(diffusers name, tensor) for every model tensor, one at a time, each a fresh tensor of
        `dtype_of(name)` (a torch dtype)."""
        by_stored = {id(s): name for name, s in self.tensors.items()}
        for stored, tensor in read_safetensors(self.tensors.values()):
            name = by_stored[id(stored)]
            yield name, private(tensor, dtype_of(name))
