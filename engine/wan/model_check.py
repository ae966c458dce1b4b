"""`sakuga models check PRESET`: what each component of a `wan` preset's weights is, whether it would
load, and the GPU memory it needs per rank, from file headers and the meta device alone.

Components are the base folder's parts (`model_index.json`: text encoder, VAE, image encoder...) and
the `transformer:` / `transformer_2:` checkpoints. For each: the layout, stored dtypes, parameter
count, shards present or missing, and for transformers the tensors and config against the
architecture. No tensor is read, so checking a 14B checkpoint costs what checking a tiny one does.
`render` runs the same check before it starts Ray (`engine.registry.check`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from storyboard.errors import InputError, Problem
from storyboard.presets import Preset

from .architecture import Fit, base_config, fit, refusals
from .layouts import UnknownLayout, detect
from .layouts.stored import read_shards
from .memory_estimate import per_gpu_gb
from .options import check_weights, expand, options

logger = logging.getLogger(__name__)
TRANSFORMERS = ("transformer", "transformer_2")
ARCHITECTURE_KEYS = ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "in_channels")
NOT_WEIGHTS = ("tokenizer", "scheduler", "image_processor", "feature_extractor")
WAN_ORIGINAL = ("Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth")   # Wan's own release folder, not diffusers'


@dataclass
class Component:
    name: str                      # "text_encoder", "transformer"...
    path: Path
    layout: str                    # the checkpoint layout, or "diffusers model" for a base part
    dtypes: dict[str, int] = field(default_factory=dict)
    parameters: int = 0
    shards: tuple[int, int] = (0, 0)          # present, named
    missing_shards: list[str] = field(default_factory=list)
    fit: Fit | None = None                    # transformers: against the architecture
    notes: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    on_gpu: bool = True                       # counted in the GPU estimate


@dataclass
class Report:
    preset: Preset
    components: list[Component]
    memory_gb: dict[int, float]               # degree -> per GPU (GiB when planned from an architecture)

    @property
    def problems(self) -> list[Problem]:
        return [Problem(str(file), 1, 1, message) for c in self.components for file, message in c.problems]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(preset: Preset) -> Report:
    """The report of `preset`'s weights; raises InputError (at the preset's lines) for paths that are
    not there at all, as `check_weights` always has."""
    check_weights(preset)
    opts = options(preset)
    base = expand(opts.base)
    overridden = {k for k in TRANSFORMERS if getattr(opts, k)}
    components = base_components(base, overridden) if base.exists() else []
    for key in TRANSFORMERS:
        if getattr(opts, key):
            components.append(transformer(key, expand(getattr(opts, key)), base))
    return Report(preset, components, memory(preset, components, base))


def transformer(key: str, path: Path, base: Path) -> Component:
    """A `transformer:` / `transformer_2:` checkpoint against the architecture."""
    try:
        layout = detect(path)
    except UnknownLayout as e:
        return Component(key, path, "unknown", problems=[(path, str(e))])
    config, config_path = base_config(base, key)
    result = fit(layout, config)
    present = len(layout.files)
    return Component(key, path, layout.kind, layout.dtypes(), layout.parameters,
                     (present, present + len(layout.missing_files)), list(layout.missing_files), result,
                     list(layout.notes), refusals(layout, result))


def base_components(base: Path, overridden: set[str]) -> list[Component]:
    """The parts `model_index.json` names, each a diffusers (or transformers) model folder, read from its
    safetensors headers; a transformer the preset replaces is left to its checkpoint's row."""
    index = base / "model_index.json"
    if not index.is_file():
        return [Component("base", base, "not a diffusers folder", problems=[(base, _not_diffusers(base))])]
    try:
        parts = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        return [Component("base", base, "unreadable", problems=[(index, f"not readable JSON ({e})")])]
    out = []
    for name, spec in parts.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None or name in NOT_WEIGHTS:
            continue
        folder = base / name
        if name in overridden:     # only its config.json is read, and the checkpoint's row says so
            continue
        if not folder.is_dir():
            out.append(Component(name, folder, "missing",
                                 problems=[(index, f"model_index.json names {name}/, which is not in {base}")]))
        else:
            out.append(_model_folder(name, folder))
    return out


def _model_folder(name: str, folder: Path) -> Component:
    shards = read_shards(folder)
    part = Component(name, folder, "diffusers model", problems=list(shards.problems))
    part.parameters = sum(s.numel for s in shards.tensors.values())
    part.dtypes = _count(s.dtype for s in shards.tensors.values())
    part.shards = (len(shards.files), len(shards.files) + len(shards.missing))
    part.missing_shards = list(shards.missing)
    part.problems += [(folder / m, f"{name}: shard {m} is missing (the index names it)") for m in shards.missing]
    if not shards.tensors and not shards.missing and not shards.problems:
        part.problems.append((folder, f"{name}/ holds no .safetensors weights"))
    return part


def memory(preset: Preset, components: list[Component], base: Path) -> dict[int, float]:
    """Per degree: planned from the preset's real configs (engine/memory/plan.py, GiB) when the weights
    are that architecture; else (no `architecture:`, or weights of another shape, noted on their row)
    estimated from the files."""
    if preset.architecture is not None and not _other_architecture(preset, components, base):
        from engine.memory.plan import whole_model_gib

        return whole_model_gib(preset, preset.degrees)
    params = sum(c.parameters for c in components if c.on_gpu)
    arch = next((c.fit.config for c in components if c.fit is not None and c.fit.config), None)
    if arch is None:
        arch, _ = base_config(base, "transformer")
    return {d: per_gpu_gb(preset, params, arch, d) for d in preset.degrees}


def _other_architecture(preset: Preset, components: list[Component], base: Path) -> bool:
    """Whether a transformer's own config disagrees with the one the preset's `architecture:` names (its
    memory plan would then describe other weights); says so on that component's row."""
    from engine.memory.components import read_config

    for c in components:
        name = getattr(preset.architecture, c.name, None) if c.name in TRANSFORMERS else None
        found = c.fit.config if c.fit is not None and c.fit.config else (base_config(base, c.name)[0] if name else None)
        if not name or not found:
            continue
        wanted = read_config(name, "transformer")
        differ = [f"{k} {found.get(k)} (architecture: {wanted.get(k)})" for k in ARCHITECTURE_KEYS
                  if found.get(k) != wanted.get(k)]
        if differ:
            c.notes.append(f"not the preset's architecture {name}: {', '.join(differ)}; memory estimated "
                           "from the files")
            return True
    return False


def raise_problems(report: Report) -> None:
    if report.problems:
        raise InputError(report.problems)


def verify(preset: Preset) -> None:
    """Raise InputError when `preset`'s weights would not load (what `render` checks before Ray)."""
    raise_problems(check(preset))


def _not_diffusers(base: Path) -> str:
    if any((base / f).exists() for f in WAN_ORIGINAL):
        return (f"{base} is Wan's original release folder (.pth files); sakuga takes the text encoder, VAE and "
                f"image encoder from the diffusers version of it (e.g. Wan-AI/Wan2.1-I2V-14B-720P-Diffusers): "
                f"point options.base at that folder")
    return f"{base} has no model_index.json: options.base must be a diffusers Wan pipeline folder"


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def table(report: Report) -> str:
    """The report as text: one row per component, its notes and problems, then memory per degree."""
    opts = report.preset.options
    rows = [f"preset {report.preset.name} (weights at {opts.get('dtype', 'bfloat16')})",
            f"{'component':<14} {'layout':<18} {'stored':<22} {'params':>8}  {'shards':<7} tensors / config"]
    for c in report.components:
        stored = ", ".join(f"{d} ×{n}" for d, n in list(c.dtypes.items())[:2]) or "-"
        shards = f"{c.shards[0]}/{c.shards[1]}" if c.shards[1] else "-"
        rows.append(f"{c.name:<14} {c.layout:<18} {stored:<22} {_billions(c.parameters):>8}  {shards:<7} {_fit(c)}")
        rows += [f"{'':<14} note: {n}" for n in c.notes]
        rows += [f"{'':<14} error: {m}" for _, m in c.problems]
    if report.preset.architecture is not None:
        w, h = getattr(report.preset, "native_size", None) or (1280, 720)
        how = (f"planned from configs/architectures, whole model at {w}x{h}, {report.preset.max_frames} frames; "
               "smaller GPUs keep parts on the CPU or shard: docs/models.md")
    else:
        how = f"estimate: weights + activations at 1280x720, {report.preset.max_frames} frames"
    unit = "GiB" if report.preset.architecture is not None else "GB"
    rows.append(f"GPU memory per GPU ({how}): "
                + ", ".join(f"degree {d}: {gb:.1f} {unit}" if gb >= 1 else f"degree {d}: {gb:.3f} {unit}"
                         for d, gb in report.memory_gb.items()))
    rows.append("would load" if report.ok else f"would NOT load: {len(report.problems)} problem(s)")
    return "\n".join(rows)


def _fit(c: Component) -> str:
    if c.fit is None:
        return "-"
    f = c.fit
    tensors = ("ok" if not (f.missing or f.unexpected or f.wrong_shape or f.lost) else
               f"{len(f.missing)} missing, {len(f.unexpected)} unexpected, {len(f.wrong_shape)} wrong shape"
               + (f", {f.lost} in the missing shards" if f.lost else ""))
    if f.disagreements:
        config = "disagrees with the base's"
    elif f.config_source == "its own config.json":
        config = "its own, agrees with the base's"
    else:
        config = f.config_source
    return f"{tensors}; config: {config}"


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M" if n >= 1e5 else str(n)
