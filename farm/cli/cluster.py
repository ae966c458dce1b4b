"""The studio cluster through Ray's Job API: submit, jobs, logs, cancel, and the hidden entrypoint
(`run-job`) a submitted job runs on the cluster."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import (
    Address,
    Deliver,
    EngineAlias,
    Master,
    Model,
    Priority,
    load,
    masters,
    model_name,
    priority,
)


def submit(
    file: Path,
    address: Address = None,
    priority_: Priority = "normal",
    out: Annotated[str | None, typer.Option("--out", help="Output folder on the cluster (default ~/sakuga/jobs/JOB on the head).")] = None,
    model: Model = None,
    engine: EngineAlias = None,
    deliver: Deliver = None,
) -> None:
    """Submit a render to the studio cluster's queue (Ray Job API); prints the job id."""
    from farm.cluster.client import submit as send

    level = priority(priority_)
    preset = model_name(model, engine)
    _, p = load(file, preset, None)
    typer.echo(send(file, p, address=address, priority=level, out=out, model=preset, deliver=masters(deliver)))


def run_job(
    file: Path,
    job_id: Annotated[str, typer.Option("--job-id")],
    priority_: Annotated[int, typer.Option("--priority")] = 0,
    out: Annotated[str | None, typer.Option("--out")] = None,
    model: Model = None,
    engine: Annotated[str | None, typer.Option("--engine", hidden=True)] = None,   # jobs from older clients
    deliver: Annotated[list[Master] | None, typer.Option("--deliver")] = None,
) -> None:
    """Entrypoint of a submitted job, on the cluster: hand the plan to the farm service and follow it."""
    preset = model or engine
    _, p = load(file, preset, None)
    from farm.cluster.entrypoint import follow

    raise typer.Exit(follow(p, file, job_id, priority_, out, preset, masters(deliver)))


def jobs(address: Address = None) -> None:
    """List the cluster's sakuga jobs."""
    from farm.cluster.client import sakuga_jobs

    for j in sorted(sakuga_jobs(address), key=lambda j: j.start_time or 0):
        meta = j.metadata or {}
        typer.echo(f"{j.submission_id:<32} {str(j.status.value if hasattr(j.status, 'value') else j.status):<10} "
                   f"priority {meta.get('priority', '0'):>4}  {meta.get('source', '')}")


def logs(job: str, address: Address = None) -> None:
    """Print a cluster job's log (its progress lines)."""
    from farm.cluster.client import call

    typer.echo(call(address, "get_job_logs", job), nl=False)


def cancel(job: str, address: Address = None) -> None:
    """Cancel a cluster job: its running segments stop, published ones stay."""
    from farm.cluster.client import call

    stopped = call(address, "stop_job", job)
    typer.echo(f"{job}: {'cancelling' if stopped else 'already finished'}")


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command("run-job", hidden=True)(run_job)
    app.command()(jobs)
    app.command()(logs)
    app.command()(cancel)
