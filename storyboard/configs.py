"""Named YAML configs in a folder (`configs/<kind>/<name>.yaml`), validated by a pydantic model.

Model presets (`presets.py`) were the first kind; upscaler presets and delivery profiles are read the
same way through `ConfigFolder`: a search path (folders in an environment variable, then the built-in
one; earlier folders win), the safe YAML reader that remembers every node's line and column, pydantic
for the schema, and `InputError`s at `FILE:LINE:COL` for everything a user can get wrong, including
a name that is not there (with the names that are).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from .adapters.yamlsource import load_yaml
from .document import Document, PathKey
from .errors import InputError, Problem
from .schema_errors import problems_from_validation

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
M = TypeVar("M", bound=BaseModel)


@cache
def _document(path: Path) -> Document:
    return load_yaml(path)


@dataclass(frozen=True)
class ConfigFolder(Generic[M]):
    kind: str                  # what one config is called in messages: "upscaler preset"
    folder: str                # under configs/: "upscalers"
    env: str                   # extra folders, os.pathsep-separated: "SAKUGA_UPSCALERS"
    model: type[M]             # has a `name` field equal to the file's stem

    def search_path(self) -> list[Path]:
        extra = [Path(p) for p in os.environ.get(self.env, "").split(os.pathsep) if p]
        return extra + [CONFIGS_DIR / self.folder]

    def available(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in reversed(self.search_path()):   # earlier entries win
            if folder.is_dir():
                found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
        return dict(sorted(found.items()))

    def load(self, name: str, named_at: Problem | None = None) -> M:
        """The config called `name`. An unknown name is an InputError at `named_at` (where the user
        wrote it: a storyboard field, a profile's field, or a command-line option) listing the known ones."""
        known = self.available()
        if name not in known:
            where = named_at or Problem(f"<{self.kind}>", 1, 1, "")
            message = f"unknown {self.kind} {name!r} (known: {', '.join(known) or 'none'})"
            raise InputError([Problem(where.file, where.line, where.col, message)])
        path = known[name].resolve()
        if not isinstance(_document(path).data, dict):
            raise InputError([Problem(str(path), 1, 1, f"a {self.kind} is a mapping of fields (`name: {name}`, ...)")])
        config = _validated(self.model, path)
        if getattr(config, "name", name) != name:
            raise InputError([self.problem(name, ("name",), f"the file is named {name!r} but says name: "
                                                            f"{config.name!r}")])
        return config

    def file(self, name: str) -> Path | None:
        return self.available().get(name)

    def problem(self, name: str, path: PathKey, message: str) -> Problem:
        """A problem at the line of `path` (e.g. ("size", "width")) in config `name`'s file."""
        file = self.file(name)
        if file is None:
            return Problem(f"<{self.kind} {name}>", 1, 1, message)
        return _document(file.resolve()).problem(path, message)


@cache
def _validated(model: type[M], path: Path) -> M:
    doc = _document(path)
    try:
        return model.model_validate(doc.data)
    except ValidationError as e:
        raise InputError(problems_from_validation(doc, e, model)) from None


def option_problem(option: str, message: str) -> Problem:
    """Where a command-line option is blamed (`--deliver:1:1: error: ...`): the CLI has no file."""
    return Problem(option, 1, 1, message)
