"""Pick the adapter for an input file and validate what it produces."""
from __future__ import annotations

from pathlib import Path

from .document import Document
from .errors import InputError
from .validate import LoadedStoryboard, validate
from .yamlsource import load_yaml, read_text

ANISORA_ENCODINGS = ("utf-8", "gbk")


def read_document(path: Path | str) -> Document:
    """Parse any supported input format into a Document (no validation yet)."""
    path = Path(path)
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


def load(path: Path | str, *, model: str | None = None, asset_roots: list[Path] = ()) -> LoadedStoryboard:
    return validate(read_document(path), model=model, asset_roots=asset_roots)
