"""Takes of a rendered shot: list them, render a new one with a changed prompt, seed, motion or aesthetic
score, approve the one the cut uses. The takes live in OUT's ledger; rendering goes as `sakuga resume`."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from farm.job.folder import JobFolder
from storyboard.errors import InputError

from .options import AssetRoots, Quiet

Out = Annotated[Path, typer.Argument(help="Output folder of a render.")]
ShotId = Annotated[str, typer.Argument(help="A shot of that render.")]
_TAKE = re.compile(r"~(\d+)\.\d+$")


def _recorded(out: Path, shot: str, planning: bool = True):
    from farm.job.recorded import require_job

    recorded = require_job(JobFolder(out), "no ledger.sqlite here: not the output folder of a sakuga render")
    if shot not in {s["shot"] for s in recorded.segments}:
        raise InputError.single(JobFolder(out).ledger, f"this render has no shot {shot!r}")
    source = (recorded.job.get("config") or {}).get("source")
    if planning and (not source or not Path(source).is_file()):   # a take is planned from there: checked first
        raise InputError.single(source or JobFolder(out).ledger, "the storyboard this render was started from is gone")
    return recorded


def takes(out: Out, shot: ShotId) -> None:
    """List SHOT's takes: number, overrides, state, and which one the cut uses (*)."""
    from farm.job.ledger import Ledger
    from farm.job.takes import shot_takes, take_status

    recorded = _recorded(out, shot, planning=False)
    with Ledger(JobFolder(out).ledger) as ledger:
        mine = shot_takes(ledger.takes(recorded.job["id"])).get(shot)
    by_take: dict[int, list[str]] = {}
    for row in recorded.segments:
        if row["shot"] == shot:
            match = _TAKE.search(row["id"])
            by_take.setdefault(int(match.group(1)) if match else 1, []).append(row["status"])
    numbers = mine.numbers() if mine else [1]
    for n in numbers:
        overrides = (mine.overrides.get(n) if mine else None) or {}
        approved = (mine.approved if mine else 1) == n
        typer.echo(f"{'*' if approved else ' '} {n}  {take_status(by_take.get(n, [])):8} "
                   f"{json.dumps(overrides, ensure_ascii=False) if overrides else '(storyboard)'}")


def retake(
    out: Out,
    shot: ShotId,
    prompt: Annotated[str | None, typer.Option("--prompt", help="The shot's prompt for this take.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="The shot's seed for this take.")] = None,
    motion: Annotated[float | None, typer.Option("--motion", help="AniSora motion score (0..10).")] = None,
    aesthetic: Annotated[float | None, typer.Option("--aesthetic", help="AniSora aesthetic score (0..10).")] = None,
    quiet: Quiet = False,
    asset_root: AssetRoots = None,
) -> None:
    """Render SHOT again as a new take with what is given changed; the earlier takes are kept and the cut
    keeps its approved take (`sakuga approve`). Prints the new take's number."""
    from farm.job.ledger import Ledger
    from storyboard.takes import check_overrides

    from .render import _check_out, resume

    recorded = _recorded(out, shot)
    given = check_overrides({"prompt": prompt, "seed": seed, "motion": motion, "aesthetic": aesthetic})
    _check_out(JobFolder(out), Path((recorded.job.get("config") or {}).get("source", "")), wait=False)
    with Ledger(JobFolder(out).ledger) as ledger:
        n = ledger.add_take(recorded.job["id"], shot, given)
    typer.echo(f"take {n}")
    resume(out, quiet=quiet, wait=False, address=None, asset_root=asset_root, cache=None, no_cache=False)


def approve(
    out: Out,
    shot: ShotId,
    take: Annotated[int, typer.Argument(help="The take the cut uses.")],
    quiet: Quiet = False,
    asset_root: AssetRoots = None,
) -> None:
    """Make TAKE the one the cut uses and deliver again; prints the episode's path."""
    from farm.job.ledger import Ledger
    from farm.job.takes import shot_takes

    from .render import _check_out, resume

    recorded = _recorded(out, shot)
    _check_out(JobFolder(out), Path((recorded.job.get("config") or {}).get("source", "")), wait=False)
    with Ledger(JobFolder(out).ledger) as ledger:
        mine = shot_takes(ledger.takes(recorded.job["id"])).get(shot)
        numbers = mine.numbers() if mine else [1]
        if take not in numbers:
            raise InputError.single(JobFolder(out).ledger, f"shot {shot!r} has no take {take} "
                                                           f"(its takes: {', '.join(map(str, numbers))})")
        ledger.approve_take(recorded.job["id"], shot, take)
    resume(out, quiet=quiet, wait=False, address=None, asset_root=asset_root, cache=None, no_cache=False)


def register(app: typer.Typer) -> None:
    app.command()(takes)
    app.command()(retake)
    app.command()(approve)
