"""`sakuga models`: the model presets, whether their weights are here and would load, the tiny model."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

app = typer.Typer(no_args_is_help=True, help="Model presets.")


@app.command("list")
def models_list() -> None:
    """Show the model presets."""
    from storyboard.presets import available, load_preset

    for name in available():
        try:
            p = load_preset(name)
            typer.echo(f"{name:<22} {p.engine:<9} {p.fps} fps, ≤{p.max_frames} frames/segment, "
                       f"{_memory(p)}  {p.description}")
            typer.echo(f"{'':<22} weights: {_weights_state(p)}")
        except InputError as e:
            typer.echo(f"{name:<22} invalid preset: {e.problems[0]}")


def _memory(preset) -> str:
    """The GPU memory the preset needs whole, for one segment of its longest length: planned from its
    real configs (engine/memory/plan.py) when it names them, else its `memory_gb`."""
    if preset.architecture is None:
        return f"~{preset.memory_gb:g} GB"
    from engine.memory.plan import whole_model_gib

    return f"~{whole_model_gib(preset, [1])[1]:.0f} GiB whole"


def _weights_state(preset) -> str:
    if preset.engine != "wan":
        return "none needed"
    from engine.wan.options import expand, missing_weights, options, weight_paths

    opts = options(preset)
    missing = missing_weights(preset)
    if missing:
        return "MISSING " + ", ".join(f"{k}={v}" for k, v in missing.items())
    if opts.build_tiny and not weight_paths(preset)["base"].exists():
        return f"built on first use at {expand(opts.base)}"
    return "present (" + ", ".join(str(v) for v in weight_paths(preset).values()) + ")"


@app.command("check")
def models_check(name: Annotated[str, typer.Argument(help="Model preset, e.g. anisora-v3.")]) -> None:
    """What each component's weights are (layout, stored dtype, parameters, shards, tensors and config
    against the architecture) and the GPU memory per degree, from file headers alone: nothing is loaded.
    Exit 0 when the preset would load, 2 when not (each problem as FILE:LINE:COL: error:)."""
    from storyboard.presets import load_preset

    try:
        preset = load_preset(name)
    except KeyError as e:
        raise InputError.single(f"<preset {name}>", str(e.args[0])) from None
    if preset.engine != "wan":
        typer.echo(f"preset {name} (engine {preset.engine}) loads no weights")
        return
    from engine.wan.model_check import check, raise_problems, table

    report = check(preset)
    typer.echo(table(report))
    raise_problems(report)


@app.command("build-tiny")
def models_build_tiny(directory: Annotated[Path, typer.Argument(help="Folder to write (must not exist, or be empty).")]) -> None:
    """Build the tiny random-weight Wan I2V pipeline (diffusers layout) offline, deterministically."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError.single(directory, "build-tiny writes a new folder: this one exists and is not empty")
    from engine.wan import tiny

    tiny.ensure(directory.resolve())
    typer.echo(str(directory))
