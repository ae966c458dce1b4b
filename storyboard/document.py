"""A parsed input file before validation: plain data plus where every node came from.

Every adapter (YAML, PV script, AniSora prompt file) produces a `Document`; validation maps each
problem's path (e.g. ``("scenes", 0, "shots", 2, "start")``) back to a line and column through it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Problem

PathKey = tuple[str | int, ...]


@dataclass
class Document:
    file: Path                      # the input file as the user named it
    data: Any                       # plain dicts/lists/scalars
    locations: dict[PathKey, tuple[int, int]] = field(default_factory=dict)      # value nodes, 1-based
    key_locations: dict[PathKey, tuple[int, int]] = field(default_factory=dict)  # mapping keys, 1-based

    @property
    def base_dir(self) -> Path:
        """The real path of the folder that holds the file as the user named it (when the file is a
        link, its own folder, not the target's): relative paths start here and may not leave it."""
        return Path(os.path.realpath(self.file.parent))

    def where(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        """Line and column of the deepest known node on `path` (falls back to its ancestors)."""
        path = tuple(path)
        while True:
            if key and path in self.key_locations:
                return self.key_locations[path]
            if path in self.locations:
                return self.locations[path]
            if not path:
                return (1, 1)
            path = path[:-1]

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        line, col = self.where(path, key=key)
        return Problem(str(self.file), line, col, message)
