"""The studio cluster through Ray's Job API: submit, jobs, logs, cancel, and the hidden entrypoint
(`run-job`) a submitted job runs on the cluster."""
from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from farm.delivery.options import check_delivery, delivery
from storyboard.errors import InputError

from .options import (
    Address,
    Deliver,
    EngineAlias,
    Insecure,
    Model,
    Priority,
    Speed,
    Upscaler,
    load,
    model_name,
    priority,
)


def submit(
    file: Path,
    address: Address = None,
    priority_: Priority = "normal",
    out: Annotated[str | None, typer.Option("--out", help="Output folder on the cluster, inside your folder of the farm's root (default ~/sakuga/jobs/USER/JOB on the head).")] = None,
    model: Model = None,
    engine: EngineAlias = None,
    deliver: Deliver = None,
    upscaler: Upscaler = None,
    insecure: Insecure = False,
    speed: Speed = None,
) -> None:
    """Submit a render to the studio cluster's queue (Ray Job API); prints the job id."""
    from farm.cluster.client import submit as send

    level = priority(priority_)
    preset = model_name(model, engine)
    _, p = load(file, preset, None, speed=speed)
    check_delivery(p, delivery(deliver, upscaler), weights=False)   # the checkpoints are the cluster's
    typer.echo(send(file, p, address=address, priority=level, out=cluster_out(out), model=preset,
                    deliver=deliver or [], upscaler=upscaler, insecure=insecure, speed=speed or []))


def cluster_out(out: str | None) -> str | None:
    """Where the output goes on the cluster, said back to the user: inside the user's folder of the farm's
    root there (~/sakuga/jobs/USER/ unless the cluster sets $SAKUGA_FARM_ROOT), never under Ray's
    temporary folders; an absolute path must lie inside that folder (the entrypoint checks)."""
    if out is None:
        return None
    path = Path(out)
    if ".." in path.parts:
        raise InputError.single("--out", f"{out!r} leaves the farm's root: give an absolute path or a plain name")
    if not path.is_absolute():
        typer.echo(f"note: the output goes to {path.as_posix()} in your folder of the farm's root on the cluster "
                   f"(~/sakuga/jobs/{getpass.getuser()}/ unless it sets $SAKUGA_FARM_ROOT)", err=True)
    return out


def run_job(
    file: Path,
    job_id: Annotated[str, typer.Option("--job-id")],
    priority_: Annotated[int, typer.Option("--priority")] = 0,
    out: Annotated[str | None, typer.Option("--out")] = None,
    model: Model = None,
    engine: Annotated[str | None, typer.Option("--engine", hidden=True)] = None,   # jobs from older clients
    deliver: Deliver = None,
    upscaler: Upscaler = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    speed: Speed = None,
) -> None:
    """Entrypoint of a submitted job, on the cluster: hand the plan to the farm service and follow it."""
    preset = model or engine
    _, p = load(file, preset, None, speed=speed)
    delivered = delivery(deliver, upscaler)
    check_delivery(p, delivered)
    from farm.cluster.entrypoint import follow

    raise typer.Exit(follow(p, file, job_id, priority_, out, preset, delivered, owner))


def jobs(address: Address = None, insecure: Insecure = False) -> None:
    """List the cluster's sakuga jobs."""
    from farm.cluster.client import sakuga_jobs

    for j in sorted(sakuga_jobs(address, insecure), key=lambda j: j.start_time or 0):
        meta = j.metadata or {}
        typer.echo(f"{j.submission_id:<32} {str(j.status.value if hasattr(j.status, 'value') else j.status):<10} "
                   f"priority {meta.get('priority', '0'):>4}  {meta.get('source', '')}")


def logs(job: str, address: Address = None, insecure: Insecure = False) -> None:
    """Print a cluster job's log (its progress lines)."""
    from farm.cluster.client import call

    typer.echo(call(address, "get_job_logs", job, insecure=insecure), nl=False)


def cancel(job: str, address: Address = None, insecure: Insecure = False) -> None:
    """Cancel a cluster job: its running segments stop, published ones stay."""
    from farm.cluster.client import call

    stopped = call(address, "stop_job", job, insecure=insecure)
    typer.echo(f"{job}: {'cancelling' if stopped else 'already finished'}")


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command("run-job", hidden=True)(run_job)
    app.command()(jobs)
    app.command()(logs)
    app.command()(cancel)
