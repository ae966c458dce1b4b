"""Format adapters onto the storyboard model, and the one place that picks an adapter for a file.

Each reader (`yamlsource`, `pvscript`, `anisora`) turns a file into a `Document` in the storyboard's
shape whose every value points back at its line and column; `export` writes storyboard YAML from any
`Document`. Adding a format means adding one module here and one branch in `read_document`.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..document import Document
from ..errors import InputError
from .textfile import read_text
from .yamlsource import load_yaml

ANISORA_ENCODINGS = ("utf-8", "gbk")   # prompt files written by other tools may be GBK


def read_document(path: Path | str) -> Document:
    """Parse any supported input format into a Document (no validation yet)."""
    path = Path(path)
    _refuse_a_link_out(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_yaml(path)
    if suffix == ".txt":
        text = read_text(path, encodings=ANISORA_ENCODINGS)
        from . import anisora, pvscript

        if "@@" in text:
            return anisora.parse(path, text)
        return pvscript.parse(path, text)
    if suffix in (".md", ".pv"):
        from . import pvscript

        return pvscript.parse(path, read_text(path))
    raise InputError.single(path, f"unknown file type {suffix or '(none)'!r}: expected .yaml, .pv, .md or .txt")


def _refuse_a_link_out(path: Path) -> None:
    """A storyboard may be a symbolic link only to a file inside its own folder (the folder of the path
    as given, which is also where its pictures must lie): a link to anywhere else is not read at all,
    so no error message can quote a file the storyboard's folder does not hold (`/etc/passwd`)."""
    if not path.is_symlink():
        return
    folder = Path(os.path.realpath(path.parent))
    if not Path(os.path.realpath(path)).is_relative_to(folder):
        raise InputError.single(path, "the storyboard is a symbolic link to a file outside its folder; sakuga "
                                      "reads only files inside the folder of the storyboard named: name the "
                                      "file itself, or copy it here")
