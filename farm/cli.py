"""`sakuga` command line. Input errors become `FILE:LINE:COL: error:` lines and exit code 2 here, and
only here."""
from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="sakuga: render AI anime storyboards on a GPU cluster.")
models_app = typer.Typer(no_args_is_help=True, help="Model presets.")
app.add_typer(models_app, name="models")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that need no GPU.")
app.add_typer(bench_app, name="bench")
selftest_app = typer.Typer(no_args_is_help=True, help="Check the parallel paths against one process.")
app.add_typer(selftest_app, name="selftest")

AssetRoots = Annotated[list[Path] | None, typer.Option("--asset-root", help="Folder where absolute image paths may point (repeatable).")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model preset, overriding the storyboard's.")]


def _fail(error: InputError) -> None:
    for problem in error.problems:
        typer.echo(str(problem), err=True)
    raise typer.Exit(2)


def _load(file: Path, model: str | None, asset_roots: list[Path] | None):
    from storyboard.load import load
    from storyboard.plan import build_plan

    loaded = load(file, model=model, asset_roots=asset_roots or [])
    return loaded, build_plan(loaded)


def _duration(frames: int, fps: int) -> str:
    return f"{frames / fps:.1f}s"


@app.command()
def validate(file: Path, asset_root: AssetRoots = None) -> None:
    """Parse and validate a storyboard (.yaml), PV script (.pv/.md/.txt) or AniSora prompt file."""
    try:
        loaded, plan = _load(file, None, asset_root)
    except InputError as e:
        _fail(e)
    sb = loaded.storyboard
    typer.echo(f"{file}: ok — {sb.title!r}: {len(sb.scenes)} scenes, {len(plan.shots)} shots, "
               f"{len(plan.segments)} segments, {plan.episode_frames} frames "
               f"({_duration(plan.episode_frames, plan.fps)} at {plan.fps} fps, {plan.width}x{plan.height}), "
               f"model {plan.model}")


@app.command()
def plan(file: Path, as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
         model: ModelOpt = None, asset_root: AssetRoots = None) -> None:
    """Show the render plan: shots, segments, dependencies, critical path, cost estimate."""
    try:
        _, p = _load(file, model, asset_root)
    except InputError as e:
        _fail(e)
    data = p.to_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{p.title}[/bold] — model {p.model} ({p.engine}), {p.width}x{p.height} @ {p.fps} fps, "
                  f"{p.episode_frames} frames ({_duration(p.episode_frames, p.fps)})")
    table = Table("shot", "scene", "frames", "segment", "seg frames", "deps", "conditions", "est. s")
    for shot in p.shots:
        for i, sid in enumerate(shot.segments):
            seg = p.segment(sid)
            conds = ", ".join(f"{c.frame}:{c.image.ref}" for c in seg.conditions) or "text only"
            table.add_row(shot.id if i == 0 else "", shot.scene if i == 0 else "",
                          str(shot.frames) if i == 0 else "", sid, str(seg.frames), ", ".join(seg.deps),
                          conds, f"{seg.runtime(1):.1f}")
    console.print(table)
    console.print(f"critical path {data['critical_path_s']:.1f} s at 1 GPU per segment "
                  f"({data['critical_path_best_s']:.1f} s at the widest degree); "
                  f"estimated {data['estimated_gpu_s']:.1f} GPU-seconds ({p.model} cost model)")


@app.command("import")
def import_(file: Path, out: Annotated[Path, typer.Option("-o", "--out", help="Storyboard YAML to write.")],
            asset_root: AssetRoots = None) -> None:
    """Convert a PV script or AniSora prompt file into storyboard YAML."""
    from storyboard.export import to_yaml
    from storyboard.load import read_document
    from storyboard.validate import validate as check

    from .publish import publish_bytes

    try:
        doc = read_document(file)
        check(doc, asset_roots=asset_root or [])
        text, absolute = to_yaml(doc, out.resolve().parent)
    except InputError as e:
        _fail(e)
    out.parent.mkdir(parents=True, exist_ok=True)
    publish_bytes(out, text.encode())
    typer.echo(f"wrote {out}")
    if absolute:
        typer.echo(f"note: {len(absolute)} path(s) lie outside {out.parent} and were written absolute; "
                   f"validate and render with --asset-root {os.path.commonpath(absolute)}", err=True)


CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Segment cache folder (default: the user's cache folder, or $SAKUGA_CACHE/segments).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither reuse nor store segments in the cache.")]


class Master(str, Enum):
    prores = "prores"
    png = "png"


def _masters(deliver: list[Master] | None) -> list[str]:
    return sorted({m.value for m in deliver or []})


DeliverOpt = Annotated[list[Master] | None, typer.Option(
    "--deliver", help="Also write a master for editors: prores (episode.mov, ProRes 422 HQ with PCM sound) "
                      "or png (episode_png/, a numbered PNG sequence). Repeatable.")]


@app.command()
def render(
    file: Path,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    engine: Annotated[str | None, typer.Option("--engine", help="Model preset to render with (overrides the storyboard's).")] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=1, max=4096, help="GPU workers (logical GPUs on a CPU machine).")] = 1,
    address: Annotated[str | None, typer.Option("--address", help="Join this Ray cluster instead of starting one.")] = None,
    asset_root: AssetRoots = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    offload: Annotated[bool, typer.Option("--offload", help="Keep model parts in CPU memory between uses (GPUs with less memory than the preset's estimate).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the render recorded in OUT's ledger (OUT must hold one).")] = False,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    deliver: DeliverOpt = None,
) -> None:
    """Render everything and deliver the cut into OUT. Segments already published in OUT, or in the
    segment cache, with the same content hash are reused, not rendered again."""
    config = {"source": str(file.resolve()), "engine": engine, "gpus": gpus, "address": address,
              "asset_roots": [str(p.resolve()) for p in asset_root or []], "offload": offload,
              "cache": None if no_cache else str(cache.resolve()) if cache else "default",
              "deliver": _masters(deliver)}
    try:
        if resume and not (out / "ledger.sqlite").is_file():
            raise InputError.single(out, "--resume: this folder has no ledger.sqlite, so there is nothing to resume")
        _render(config, out, quiet)
    except InputError as e:
        _fail(e)


@app.command("resume")
def resume_(
    out: Annotated[Path, typer.Argument(help="Output folder of an interrupted render.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Continue an interrupted render from OUT/ledger.sqlite: only segments not published are rendered."""
    try:
        config = _recorded_config(out)
        _render(config, out, quiet)
    except InputError as e:
        _fail(e)


def _recorded_config(out: Path) -> dict:
    from .ledger import Ledger, LedgerError

    path = out / "ledger.sqlite"
    if not path.is_file():
        raise InputError.single(out, "no ledger.sqlite here: not the output folder of a sakuga render")
    try:
        with Ledger(path) as ledger:
            jobs = ledger.jobs()
    except LedgerError as e:
        raise InputError.single(path, str(e)) from None
    if not jobs or not jobs[-1].get("config", {}).get("source"):
        raise InputError.single(path, "the ledger records no render to resume")
    config = jobs[-1]["config"]
    if not Path(config["source"]).is_file():
        raise InputError.single(config["source"], f"the storyboard this render was started from is gone (recorded in {path})")
    return config


def _render(config: dict, out: Path, quiet: bool) -> None:
    """Plan `config["source"]`, check it can load here, render into `out`; exits 1 if shots failed."""
    file, address = Path(config["source"]), config.get("address")
    loaded, p = _load(file, config.get("engine"), [Path(r) for r in config.get("asset_roots", [])])
    if out.exists() and not out.is_dir():
        raise InputError.single(out, "--out must be a folder")
    if not address:   # a local run loads the weights here; a cluster's workers are asked instead
        from engine.base import check

        problems = []
        for preset in p.presets.values():
            try:
                check(preset)
            except InputError as e:
                problems += e.problems
        if problems:
            raise InputError(problems)
    job_id = _existing_job(out)
    from .cache import SegmentCache, default_cache_dir
    from .driver import render as run   # Ray, PyAV: only once the input is known to be good

    cache = None if config.get("cache") is None else SegmentCache(
        default_cache_dir() if config["cache"] == "default" else Path(config["cache"]))
    outcome = run(p, out, gpus=config.get("gpus", 1), address=address, show_progress=not quiet,
                  offload=config.get("offload", False), cache=cache, job_id=job_id, config=config,
                  log=lambda line: typer.echo(line, err=True))
    if outcome.episode:
        typer.echo(str(outcome.episode.resolve()))
    if not outcome.ok:
        typer.echo(f"error: {len(outcome.failed_shots)} shot(s) failed: {', '.join(outcome.failed_shots)} "
                   f"(see {out / 'manifest.parquet'})", err=True)
        raise typer.Exit(1)


def _existing_job(out: Path) -> str | None:
    """One output folder holds one job: a second render into it continues that job's ledger."""
    if not (out / "ledger.sqlite").is_file():
        return None
    from .ledger import Ledger, LedgerError

    try:
        with Ledger(out / "ledger.sqlite") as ledger:
            jobs = ledger.jobs()
    except LedgerError as e:
        raise InputError.single(out / "ledger.sqlite", str(e)) from None
    return jobs[-1]["id"] if jobs else None


AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray dashboard of the cluster (default $RAY_ADDRESS, else http://127.0.0.1:8265).")]
PriorityOpt = Annotated[str, typer.Option("--priority", help="low, normal, high, urgent or an integer (higher goes first).")]


def _priority(text: str) -> int:
    from .job import parse_priority

    try:
        return parse_priority(text)
    except ValueError as e:
        raise InputError.single("--priority", str(e)) from None


def _cluster_call(fn):
    """Run a cluster request; an unreachable or refusing cluster is exit 1 with one line, no traceback."""
    from .cluster import ClusterError

    try:
        return fn()
    except ClusterError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@app.command()
def submit(
    file: Path,
    address: AddressOpt = None,
    priority: PriorityOpt = "normal",
    out: Annotated[str | None, typer.Option("--out", help="Output folder on the cluster (default ~/sakuga/jobs/JOB on the head).")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="Model preset (overrides the storyboard's).")] = None,
    deliver: DeliverOpt = None,
) -> None:
    """Submit a render to the studio cluster's queue (Ray Job API); prints the job id."""
    from .cluster import submit as send

    try:
        level = _priority(priority)
        _, p = _load(file, engine, None)
    except InputError as e:
        _fail(e)
    try:
        job = _cluster_call(lambda: send(file, p, address=address, priority=level, out=out, engine=engine,
                                         deliver=_masters(deliver)))
    except InputError as e:
        _fail(e)
    typer.echo(job)


@app.command()
def batch(
    files: Annotated[list[Path], typer.Argument(help="Storyboards, PV scripts or AniSora prompt files.")],
    out: Annotated[Path, typer.Option("--out", help="Folder; each file renders into OUT/<file stem>.")],
    priority: PriorityOpt = "low",
    address: Annotated[str | None, typer.Option("--address", help="Submit each file to this cluster's queue instead of rendering here.")] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=1, max=4096, help="GPU workers for a local batch.")] = 1,
    engine: Annotated[str | None, typer.Option("--engine", help="Model preset (overrides each file's).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    deliver: DeliverOpt = None,
) -> None:
    """Queue many files (overnight PV batches). With --address they join the cluster's queue at
    PRIORITY, filling idle GPUs while more urgent jobs go first; else they render here together."""
    plans, problems = [], []
    try:
        level = _priority(priority)
    except InputError as e:
        _fail(e)
    stems = [f.stem for f in files]
    for f in files:
        try:
            plans.append(_load(f, engine, None)[1])
        except InputError as e:
            problems += e.problems
    for f in files:
        if stems.count(f.stem) > 1:
            problems.append(InputError.single(f, f"two files named {f.stem!r}: each renders into OUT/{f.stem}").problems[0])
    if problems:
        _fail(InputError(problems))
    masters = _masters(deliver)
    if address:
        from .cluster import submit as send

        for f, p in zip(files, plans):
            job = _cluster_call(lambda f=f, p=p: send(f, p, address=address, priority=level,
                                                      out=str(out / f.stem), engine=engine, deliver=masters))
            typer.echo(job)
        return
    from .cache import SegmentCache, default_cache_dir
    from .driver import render_jobs
    from .job import Job

    jobs = [Job(Job.new_id(f.stem), p, out / f.stem, level,
                {"source": str(f.resolve()), "engine": engine, "gpus": gpus, "deliver": masters})
            for f, p in zip(files, plans)]
    store = None if no_cache else SegmentCache(cache or default_cache_dir())
    outcomes = render_jobs(jobs, gpus=gpus, show_progress=not quiet, cache=store,
                           log=lambda line: typer.echo(line, err=True))
    failed = [o for o in outcomes if not o.ok]
    for o in outcomes:
        typer.echo(str(o.episode.resolve()) if o.episode else f"{o.out}: nothing delivered")
    if failed:
        typer.echo(f"error: {len(failed)} of {len(outcomes)} renders had failed shots", err=True)
        raise typer.Exit(1)


@app.command("run-job", hidden=True)
def run_job(
    file: Path,
    job_id: Annotated[str, typer.Option("--job-id")],
    priority: Annotated[int, typer.Option("--priority")] = 0,
    out: Annotated[str | None, typer.Option("--out")] = None,
    engine: Annotated[str | None, typer.Option("--engine")] = None,
    deliver: Annotated[list[Master] | None, typer.Option("--deliver")] = None,
) -> None:
    """Entrypoint of a submitted job, on the cluster: hand the plan to the farm service and follow it."""
    try:
        _, p = _load(file, engine, None)
    except InputError as e:
        _fail(e)
    from .submitted import follow

    raise typer.Exit(follow(p, file, job_id, priority, out, engine, _masters(deliver)))


@app.command()
def report(
    out: Annotated[Path, typer.Argument(help="Output folder of a render.")],
    min_similarity: Annotated[float, typer.Option("--min-similarity", help="Flag shots where a character's similarity to its bank is below this.")] = 0.80,
    max_flicker: Annotated[float, typer.Option("--max-flicker", help="Flag shots whose mean frame-to-frame change (0..1) is above this.")] = 0.08,
    max_jump: Annotated[float, typer.Option("--max-jump", help="Flag shots with a single frame-to-frame change (0..1) above this.")] = 0.25,
) -> None:
    """Rebuild OUT/report.html and OUT/contact_sheet.png from OUT's plan, manifest, ledger and shots,
    without rendering; prints the report's path."""
    from .report import Thresholds, write_report

    try:
        path = write_report(out, Thresholds(min_similarity, max_flicker, max_jump))
    except InputError as e:
        _fail(e)
    typer.echo(str(path.resolve()))


@app.command()
def jobs(address: AddressOpt = None) -> None:
    """List the cluster's sakuga jobs."""
    from .cluster import sakuga_jobs

    for j in sorted(_cluster_call(lambda: sakuga_jobs(address)), key=lambda j: j.start_time or 0):
        meta = j.metadata or {}
        typer.echo(f"{j.submission_id:<32} {str(j.status.value if hasattr(j.status, 'value') else j.status):<10} "
                   f"priority {meta.get('priority', '0'):>4}  {meta.get('source', '')}")


@app.command()
def status(
    target: Annotated[str, typer.Argument(help="A render's output folder (reads its ledger), or a cluster job id.")],
    address: AddressOpt = None,
) -> None:
    """Per-job and per-segment state with ETA: from OUT/ledger.sqlite, or from the cluster for a job id."""
    from .status import cluster_status, ledger_status

    folder = Path(target)
    if (folder / "ledger.sqlite").is_file():
        try:
            typer.echo(ledger_status(folder))
        except InputError as e:
            _fail(e)
        return
    typer.echo(_cluster_call(lambda: cluster_status(address, target)))


@app.command()
def logs(job: str, address: AddressOpt = None) -> None:
    """Print a cluster job's log (its progress lines)."""
    from .cluster import call

    typer.echo(_cluster_call(lambda: call(address, "get_job_logs", job)), nl=False)


@app.command()
def cancel(job: str, address: AddressOpt = None) -> None:
    """Cancel a cluster job: its running segments stop, published ones stay."""
    from .cluster import call

    stopped = _cluster_call(lambda: call(address, "stop_job", job))
    typer.echo(f"{job}: {'cancelling' if stopped else 'already finished'}")


@app.command()
def schema() -> None:
    """Print the storyboard JSON Schema (for editors' autocompletion)."""
    from storyboard.model import Storyboard

    typer.echo(json.dumps(Storyboard.model_json_schema(), indent=2))


@models_app.command("list")
def models_list() -> None:
    """Show the model presets."""
    from storyboard.presets import available, load_preset

    for name in available():
        try:
            p = load_preset(name)
            typer.echo(f"{name:<22} {p.engine:<9} {p.fps} fps, ≤{p.max_frames} frames/segment, "
                       f"~{p.memory_gb:g} GB  {p.description}")
            typer.echo(f"{'':<22} weights: {_weights_state(p)}")
        except InputError as e:
            typer.echo(f"{name:<22} invalid preset: {e.problems[0]}")


def _weights_state(preset) -> str:
    if preset.engine != "wan":
        return "none needed"
    from engine.wan_options import expand, missing_weights, options, weight_paths

    opts = options(preset)
    missing = missing_weights(preset)
    if missing:
        return "MISSING " + ", ".join(f"{k}={v}" for k, v in missing.items())
    if opts.build_tiny and not weight_paths(preset)["base"].exists():
        return f"built on first use at {expand(opts.base)}"
    return "present (" + ", ".join(str(v) for v in weight_paths(preset).values()) + ")"


@models_app.command("build-tiny")
def models_build_tiny(directory: Annotated[Path, typer.Argument(help="Folder to write (must not exist, or be empty).")]) -> None:
    """Build the tiny random-weight Wan I2V pipeline (diffusers layout) offline, deterministically."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        _fail(InputError.single(directory, "build-tiny writes a new folder: this one exists and is not empty"))
    from engine import tiny

    tiny.ensure(directory.resolve())
    typer.echo(str(directory))


@bench_app.command("schedule")
def bench_schedule(
    workload: Path,
    policy: Annotated[str, typer.Option("--policy", help="Scheduling policy: moldable (default), fifo1 or node.")] = "moldable",
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedule as JSON.")] = False,
) -> None:
    """Run a scheduling policy on a workload in virtual time and print the schedule."""
    from .policy import POLICIES
    from .policy import policy as make
    from .sim import load_workload, lower_bound, simulate

    try:
        if policy not in POLICIES:
            raise InputError.single("--policy", f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
        w = load_workload(workload)
    except InputError as e:
        _fail(e)
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


@selftest_app.command("sp")
def selftest_sp(
    world: Annotated[int, typer.Option("--world", min=1, max=64, help="Gang size (processes, logical GPUs on CPU).")] = 2,
    ulysses: Annotated[int, typer.Option("--ulysses", min=1, max=64, help="Ulysses degree.")] = 2,
    ring: Annotated[int, typer.Option("--ring", min=1, max=64, help="Ring degree.")] = 1,
    latent: Annotated[str, typer.Option("--latent", help="Latent frames x height x width (tokens = F*H*W/4).")] = "5x16x16",
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest accepted absolute difference.")] = 1e-5,
    backend: Annotated[str, typer.Option("--backend", help="diffusers, or xfuser (GPU only; bf16 kernels: "
                                                           "loosen --tolerance).")] = "diffusers",
) -> None:
    """Run the tiny Wan transformer (fp32) sharded over a gang of WORLD farm workers (Ray actors in a
    placement group, one torch.distributed group) and compare with one process; the last line is
    max_abs_err=<float>."""
    if ulysses * ring != world:
        _fail(InputError.single("--world", f"--ulysses {ulysses} x --ring {ring} = {ulysses * ring}, not --world {world}"))
    try:
        size = tuple(int(x) for x in latent.lower().split("x"))
        if len(size) != 3 or min(size) < 1 or size[1] % 2 or size[2] % 2 or max(size) > 64:
            raise ValueError
    except ValueError:
        _fail(InputError.single("--latent", f"{latent!r} is not FxHxW with even H and W, each 1..64"))
    tokens = size[0] * size[1] * size[2] // 4
    if backend not in ("diffusers", "xfuser"):
        _fail(InputError.single("--backend", f"{backend!r} is not diffusers or xfuser"))
    if backend == "xfuser":
        from engine.xfuser_sp import unavailable

        why = unavailable()
        if why:
            _fail(InputError.single("--backend", why))
    if tokens % world and ulysses > 1 and ring > 1:
        _fail(InputError.single("--latent", f"{tokens} tokens do not divide by {world}: uneven shares need pure "
                                            "Ulysses or pure ring (diffusers pads those, not both at once)"))
    import numpy as np
    import ray

    from engine import sp

    from .pool import WorkerPool

    transformer, inputs = sp.selftest_case(ulysses, 0, size)
    reference = sp.forward(transformer, inputs).numpy()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=os.cpu_count() or 1, num_gpus=world, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
    pool = WorkerPool(world, threads=max(1, (os.cpu_count() or 1) // world))
    try:
        members = pool.gang(pool.slots)
        out = ray.get([s.actor.sp_selftest.remote(spec, ulysses, ring, 0, size, backend) for s, spec in members])[0]
    finally:
        pool.shutdown()
    err = float(np.abs(out - reference).max())
    typer.echo(f"world {world} = ulysses {ulysses} x ring {ring}, {tokens} tokens"
               f"{' (uneven shares, padded)' if tokens % world else ''}; output {tuple(out.shape)}")
    typer.echo(f"max_abs_err={err:.3e}")
    raise typer.Exit(0 if err <= tolerance else 1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted: the ledger is saved; `sakuga resume OUT` continues", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
