"""Commands on inputs, before any rendering: validate, plan, import, schema."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

from .options import AssetRoots, EngineAlias, Model, Size, duration, load, model_name


def validate(file: Path, asset_root: AssetRoots = None, model: Model = None, size: Size = None) -> None:
    """Parse and validate a storyboard (.yaml), PV script (.pv/.md/.txt) or AniSora prompt file."""
    loaded, plan = load(file, model, asset_root, size)
    sb = loaded.storyboard
    typer.echo(f"{file}: ok — {sb.title!r}: {len(sb.scenes)} scenes, {len(plan.shots)} shots, "
               f"{len(plan.segments)} segments, {plan.episode_frames} frames "
               f"({duration(plan.episode_frames, plan.fps)} at {plan.fps} fps, {plan.width}x{plan.height}), "
               f"model {plan.model}")


def plan(file: Path, as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
         model: Model = None, engine: EngineAlias = None, asset_root: AssetRoots = None, size: Size = None) -> None:
    """Show the render plan: shots, segments, dependencies, critical path, cost estimate."""
    _, p = load(file, model_name(model, engine), asset_root, size)
    data = p.to_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(emoji=False)   # a title's `:smile:` or `[bold` is text, not markup
    console.print(f"[bold]{escape(p.title)}[/bold] — model {p.model} ({p.engine}), {p.width}x{p.height} "
                  f"@ {p.fps} fps, {p.episode_frames} frames ({duration(p.episode_frames, p.fps)})")
    table = Table("shot", "scene", "frames", "segment", "seg frames", "deps", "conditions", "est. s")
    for shot in p.shots:
        for i, sid in enumerate(shot.segments):
            seg = p.segment(sid)
            conds = ", ".join(f"{c.frame}:{c.image.ref}" for c in seg.conditions) or "text only"
            table.add_row(shot.id if i == 0 else "", shot.scene if i == 0 else "",
                          str(shot.frames) if i == 0 else "", sid, str(seg.frames), ", ".join(seg.deps),
                          escape(conds), f"{seg.runtime(1):.1f}")
    console.print(table)
    console.print(f"critical path {data['critical_path_s']:.1f} s at 1 GPU per segment "
                  f"({data['critical_path_best_s']:.1f} s at the widest degree); "
                  f"estimated {data['estimated_gpu_s']:.1f} GPU-seconds ({p.model} cost model)")


def import_(file: Path, out: Annotated[Path, typer.Option("-o", "--out", help="Storyboard YAML to write.")],
            asset_root: AssetRoots = None) -> None:
    """Convert a PV script or AniSora prompt file into storyboard YAML."""
    from farm.job.publish import publish_bytes
    from storyboard.adapters.export import to_yaml
    from storyboard.load import read_document
    from storyboard.validate import validate as check

    if out.is_dir():
        raise InputError.single(out, "-o names a folder: give the storyboard file to write, e.g. -o storyboard.yaml")
    if out.exists() and file.exists() and out.resolve() == file.resolve():
        raise InputError.single(out, "-o is the file being imported: write the storyboard to another file")
    doc = read_document(file)
    check(doc, asset_roots=asset_root or [])
    text, absolute = to_yaml(doc, out.resolve().parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    publish_bytes(out, text.encode())
    typer.echo(f"wrote {out}")
    if absolute:
        typer.echo(f"note: {len(absolute)} path(s) lie outside {out.parent} and were written absolute; "
                   f"validate and render with --asset-root {os.path.commonpath(absolute)}", err=True)


def schema() -> None:
    """Print the storyboard JSON Schema (for editors' autocompletion)."""
    from storyboard.model import Storyboard

    typer.echo(json.dumps(Storyboard.model_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(plan)
    app.command("import")(import_)
    app.command()(schema)
