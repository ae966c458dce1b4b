"""A checkpoint layout against the transformer it must fill: which config builds the model, and which
tensors are missing, unexpected or of the wrong shape.

The model is instantiated with accelerate's `init_empty_weights` (parameters on the meta device: no
memory, no data), so comparing a 14B checkpoint's headers with its architecture costs milliseconds.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .layouts import Layout, naming

logger = logging.getLogger(__name__)
SHOWN = 3          # names listed per kind of mismatch; the count says how many more


@dataclass
class Fit:
    config: dict | None                  # the config the model is built from (diffusers terms)
    config_source: str                   # where it came from, for the report
    missing: list[str] = field(default_factory=list)        # architecture tensors not in the files (diffusers names)
    unexpected: list[str] = field(default_factory=list)     # file tensors the architecture lacks (file names)
    wrong_shape: list[tuple[str, tuple, tuple]] = field(default_factory=list)   # (file name, stored, expected)
    disagreements: list[str] = field(default_factory=list)      # own config vs the base's
    lost: int = 0                        # architecture tensors that are in missing shards


def base_config(base: Path, subfolder: str) -> tuple[dict | None, Path]:
    """The base folder's transformer config (`transformer_2/` falls back to `transformer/`)."""
    for sub in dict.fromkeys((subfolder, "transformer")):
        path = base / sub / "config.json"
        if path.is_file():
            try:
                return json.loads(path.read_text()), path
            except (OSError, ValueError):
                return None, path
    return None, base / subfolder / "config.json"


def empty_model(config: dict):
    """`WanTransformer3DModel` of `config` with its parameters on the meta device (buffers, such as the
    rotary tables, real: they are computed, not loaded)."""
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    from .. import logs  # noqa: F401  (quiet diffusers)

    with init_empty_weights():
        return WanTransformer3DModel.from_config(config)


def fit(layout: Layout, base: dict | None) -> Fit:
    """Compare `layout` with the architecture it is built into: its own config, else the base's.
    Tensors that sit in missing shards are counted (`lost`), not listed: the shard is the problem."""
    if layout.config is not None:
        result = Fit(layout.config, "its own config.json")
        if base is not None:
            result.disagreements = naming.disagreements(layout.config, base)
    elif base is not None:
        result = Fit(base, "the base's transformer config")
    else:
        return Fit(None, "none: the files carry no config and the base has no transformer/config.json")
    try:
        expected = {n: tuple(t.shape) for n, t in empty_model(result.config).state_dict().items()}
    except (TypeError, ValueError) as e:
        result.disagreements.append(f"the config does not build a WanTransformer3DModel ({e})")
        return result
    for name, stored in layout.tensors.items():
        if name not in expected:
            result.unexpected.append(stored.name)
        elif tuple(stored.shape) != expected[name]:
            result.wrong_shape.append((stored.name, tuple(stored.shape), expected[name]))
    absent = [n for n in expected if n not in layout.tensors]
    result.missing = [n for n in absent if n not in layout.lost]
    result.lost = len(absent) - len(result.missing)
    return result


def refusals(layout: Layout, result: Fit) -> list[tuple[Path, str]]:
    """Everything that stops `layout` from loading, as (file, message): the files' own faults, missing
    shards, no usable config, config disagreements and tensors that do not fit."""
    out = list(layout.problems)
    out += [(layout.path / name, f"shard {name} is missing (the index names it)") for name in layout.missing_files]
    if result.config is None:
        out.append((layout.path, f"no transformer config: {result.config_source}"))
    if result.disagreements:
        out.append((layout.path, "its config disagrees with the base's transformer: "
                                 + "; ".join(result.disagreements) + " (is the base the right model?)"))
    if result.missing:
        out.append((layout.path, f"missing {len(result.missing)} tensors of the transformer: {_few(result.missing)}"))
    if result.unexpected:
        out.append((layout.path, f"{len(result.unexpected)} tensors the transformer has no place for: "
                                 f"{_few(result.unexpected)}"))
    for name, stored, expected in result.wrong_shape[:SHOWN]:
        out.append((_file_of(layout, name), f"tensor {name} has shape {list(stored)}, the transformer expects "
                                            f"{list(expected)}"))
    if len(result.wrong_shape) > SHOWN:
        out.append((layout.path, f"{len(result.wrong_shape) - SHOWN} more tensors of the wrong shape"))
    return out


def _file_of(layout: Layout, file_name: str) -> Path:
    return next((s.file for s in layout.tensors.values() if s.name == file_name), layout.path)


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
