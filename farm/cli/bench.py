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
    preempt: Annotated[bool, typer.Option("--preempt", help="Let the policy stop lower-priority tasks at a step "
                                                            "boundary (checkpointed) for urgent work, and regrow gangs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedule as JSON.")] = False,
    check: Annotated[Path | None, typer.Option("--check", help="Validate this schedule JSON against the workload "
                                                               "instead of running a policy (exit 1 if invalid).")] = None,
) -> None:
    """Run a scheduling policy on a workload in virtual time and print the schedule."""
    from farm.scheduling.check import check_schedule, flow, load_schedule, lower_bound, urgent_job
    from farm.scheduling.policy import POLICIES
    from farm.scheduling.policy import policy as make
    from farm.scheduling.sim import simulate
    from farm.scheduling.workload import load_workload

    if policy not in POLICIES:
        raise InputError.single("--policy", f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    w = load_workload(workload)
    if check is not None:
        schedule = load_schedule(check)
        problems = check_schedule(w, schedule)
        for p in problems:
            typer.echo(f"{check}: invalid: {p}", err=True)
        if problems:
            raise typer.Exit(1)
        typer.echo(f"{check}: valid schedule of {len(w.tasks)} tasks, makespan {schedule.makespan:.1f} s")
        return
    schedule = simulate(w, make(policy), preempt=preempt)
    problems = check_schedule(w, schedule)
    if problems:   # a bug in the policy or the simulator, never in the input
        raise RuntimeError(f"policy {policy} made an invalid schedule: {problems[0]}")
    if as_json:
        typer.echo(json.dumps(schedule.to_json()))
        return
    bound = lower_bound(w)
    gpu_s = sum(len(a.gpus) * (a.end - a.start) for a in schedule.assignments)
    stopped = len({a.id for a in schedule.assignments if a.steps is not None})
    typer.echo(f"{workload}: {len(w.tasks)} tasks on {len(w.cluster.gpus)}x{w.cluster.widest} GPUs, policy {policy}"
               + (", preemptive" if preempt else ""))
    typer.echo(f"makespan {schedule.makespan:.1f} s; lower bound {bound['lower_bound']:.1f} s "
               f"(critical path {bound['critical_path']:.1f}, area {bound['area']:.1f}); "
               f"bound/makespan {bound['lower_bound'] / schedule.makespan:.3f}; "
               f"GPU busy {gpu_s / (schedule.makespan * w.cluster.total):.0%}")
    job = urgent_job(w)
    if job is not None:
        f = flow(w, schedule, job)
        typer.echo(f"job {job} (most urgent): flow {f['flow']:.1f} s, {f['ratio']:.2f}x its standalone "
                   f"bound {f['standalone_bound']:.1f} s")
    if preempt:
        typer.echo(f"{stopped} tasks stopped at a step boundary and resumed (restart {w.restart_s:g} s each)")
