"""`sakuga bench`: benchmarks that need no GPU."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

app = typer.Typer(no_args_is_help=True, help="Benchmarks that need no GPU.")


@app.command("schedule")
def bench_schedule(
    workload: Path,
    policy: Annotated[str, typer.Option("--policy", help="Scheduling policy: moldable (default), fifo1 or node.")] = "moldable",
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedule as JSON.")] = False,
) -> None:
    """Run a scheduling policy on a workload in virtual time and print the schedule."""
    from farm.scheduling.check import lower_bound
    from farm.scheduling.policy import POLICIES
    from farm.scheduling.policy import policy as make
    from farm.scheduling.sim import simulate
    from farm.scheduling.workload import load_workload

    if policy not in POLICIES:
        raise InputError.single("--policy", f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    w = load_workload(workload)
    schedule = simulate(w, make(policy))
    if as_json:
        typer.echo(json.dumps(schedule.to_json()))
        return
    bound = lower_bound(w)
    gpu_s = sum(len(a.gpus) * (a.end - a.start) for a in schedule.assignments)
    typer.echo(f"{workload}: {len(w.tasks)} tasks on {len(w.cluster.gpus)}x{w.cluster.widest} GPUs, policy {policy}")
    typer.echo(f"makespan {schedule.makespan:.1f} s; lower bound {bound['lower_bound']:.1f} s "
               f"(critical path {bound['critical_path']:.1f}, area {bound['area']:.1f}); "
               f"bound/makespan {bound['lower_bound'] / schedule.makespan:.3f}; "
               f"GPU busy {gpu_s / (schedule.makespan * w.cluster.total):.0%}")
