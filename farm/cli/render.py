"""Rendering here (a local Ray, or a cluster joined as a driver): render, resume, batch, and reading a
render's folder back: status, report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from farm.delivery.options import check_delivery, delivery
from farm.job.folder import JobFolder
from storyboard.errors import InputError

from .options import (
    Address,
    AssetRoots,
    Cache,
    Deliver,
    EngineAlias,
    Gpus,
    Insecure,
    Model,
    NoCache,
    Priority,
    Quiet,
    Size,
    Speed,
    Upscaler,
    Wait,
    load,
    model_name,
    priority,
)

MAX_LOCAL_GPUS = 64   # logical GPUs of a local farm: one worker process each, started up front


def render(
    file: Path,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    model: Model = None,
    engine: EngineAlias = None,
    gpus: Gpus = 1,
    address: Annotated[str | None, typer.Option("--address", help="Join this Ray cluster instead of starting one.")] = None,
    asset_root: AssetRoots = None,
    quiet: Quiet = False,
    offload: Annotated[bool, typer.Option("--offload", help="Keep model parts in CPU memory (model or group offload) even where the memory plan would hold them on the GPU.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the render recorded in OUT's ledger (OUT must hold one).")] = False,
    cache: Cache = None,
    no_cache: NoCache = False,
    deliver: Deliver = None,
    upscaler: Upscaler = None,
    wait: Wait = False,
    size: Size = None,
    speed: Speed = None,
) -> None:
    """Render everything and deliver the cut into OUT. Segments already published in OUT, or in the
    segment cache, with the same content hash are reused, not rendered again."""
    config = {"source": str(file.resolve()), "engine": model_name(model, engine), "gpus": gpus, "address": address,
              "asset_roots": [str(p.resolve()) for p in asset_root or []], "offload": offload,
              "cache": None if no_cache else str(cache.resolve()) if cache else "default",
              **delivery(deliver, upscaler), "size": size, "speed": speed or []}
    if resume and not JobFolder(out).has_ledger():
        raise InputError.single(out, "--resume: this folder has no ledger.sqlite, so there is nothing to resume")
    _render(config, out, quiet, wait)


def resume(
    out: Annotated[Path, typer.Argument(help="Output folder of an interrupted render.")],
    quiet: Quiet = False,
    wait: Wait = False,
    address: Annotated[str | None, typer.Option("--address", help="Join this Ray cluster (the ledger's is not used unless given again).")] = None,
    asset_root: AssetRoots = None,
    cache: Cache = None,
    no_cache: NoCache = False,
) -> None:
    """Continue an interrupted render from OUT/ledger.sqlite: only segments not published are rendered.
    The storyboard, model, GPUs and masters come from the ledger; where to connect, which folders
    pictures may come from and which cache to use come from this command line only (a ledger is a file
    anyone who can write the folder can edit)."""
    from farm.job.recorded import last_job

    folder = JobFolder(out)
    if not folder.has_ledger():
        raise InputError.single(out, "no ledger.sqlite here: not the output folder of a sakuga render")
    recorded = last_job(folder)
    config = dict((recorded.job.get("config") or {}) if recorded else {})
    if not config.get("source"):
        raise InputError.single(folder.ledger, "the ledger records no render to resume")
    if not Path(config["source"]).is_file():
        raise InputError.single(config["source"], f"the storyboard this render was started from is gone "
                                                  f"(recorded in {folder.ledger})")
    given = {"address": address, "asset_roots": [str(p.resolve()) for p in asset_root or []],
             "cache": None if no_cache else str(cache.resolve()) if cache else
             config.get("cache") if config.get("cache") in (None, "default") else "default"}
    for key, value in given.items():
        if config.get(key) not in (None, [], "default", value):
            typer.echo(f"note: the ledger recorded {key} {config.get(key)!r}; resume uses only what this command "
                       f"line gives ({value!r})", err=True)
    config.update(given)
    _render(config, out, quiet, wait)


def _render(config: dict, out: Path, quiet: bool, wait: bool = False) -> None:
    """Plan `config["source"]`, check it can load here, render into `out`; exits 1 if shots failed."""
    from farm.job.recorded import last_job

    file, address = Path(config["source"]), config.get("address")
    if not address and config.get("gpus", 1) > MAX_LOCAL_GPUS:
        raise InputError.single("--gpus", f"{config['gpus']} workers on one machine: a local farm runs at most "
                                          f"{MAX_LOCAL_GPUS} (a cluster gets as many as it has, with --address)")
    loaded, p = load(file, config.get("engine"), [Path(r) for r in config.get("asset_roots", [])],
                     size=config.get("size"), speed=config.get("speed"))
    last_job(JobFolder(out))   # a ledger sakuga cannot read is exit 2 before Ray starts (the farm continues its job)
    p = _with_takes(loaded, p, JobFolder(out))
    check_delivery(p, config, weights=not address)
    _check_out(JobFolder(out), file, wait)
    if not address:   # a local run loads the weights here; a cluster's workers are asked instead
        from farm.workers.engines import check_presets

        check_presets(p.presets.values())
    from farm.api.embedded import render as run  # Ray, PyAV: only once the input is known to be good

    outcome = run(p, out, gpus=config.get("gpus", 1), address=address, show_progress=not quiet,
                  offload=config.get("offload", False), cache=_cache(config.get("cache")),
                  config=config, wait=wait)
    if outcome.episode:
        typer.echo(str(outcome.episode.resolve()))
    if outcome.error:
        typer.echo(f"error: {outcome.error}", err=True)
    elif not outcome.ok:
        typer.echo(f"error: {len(outcome.failed_shots)} shot(s) failed: {', '.join(outcome.failed_shots)} "
                   f"(see {JobFolder(out).manifest})", err=True)
    if not outcome.ok:
        raise typer.Exit(1)


def _with_takes(loaded, plan, folder: JobFolder):
    """The plan with the takes and approvals the folder's ledger records (they survive resume)."""
    from farm.job.takes import recorded_takes
    from storyboard.plan import build_plan

    takes = recorded_takes(folder)
    return build_plan(loaded, takes) if takes else plan


def _check_out(folder: JobFolder, source: Path, wait: bool) -> None:
    """The output folder's problems, before Ray starts: one it must not write into, or one that another
    render is writing into now (unless --wait)."""
    from farm.job.lock import FolderBusy, FolderLock

    refusal = folder.refusal(source)
    if refusal:
        raise InputError.single(folder.root, refusal)
    if folder.lock.is_file() and not wait:
        try:
            FolderLock(folder.root).acquire().release()
        except FolderBusy as e:
            raise InputError.single(folder.root, str(e)) from None


def _cache(setting: str | Path | None):
    """The segment cache a setting names: None (no cache), "default", or a folder."""
    from farm.job.cache import SegmentCache, default_cache_dir

    if setting is None:
        return None
    return SegmentCache(default_cache_dir() if setting == "default" else Path(setting))


def batch(
    files: Annotated[list[Path], typer.Argument(help="Storyboards, PV scripts or AniSora prompt files.")],
    out: Annotated[Path, typer.Option("--out", help="Folder; each file renders into OUT/<file stem>.")],
    priority_: Priority = "low",
    address: Annotated[str | None, typer.Option("--address", help="Submit each file to this cluster's queue instead of rendering here.")] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=1, max=4096, help="GPU workers for a local batch.")] = 1,
    model: Model = None,
    engine: EngineAlias = None,
    quiet: Quiet = False,
    cache: Cache = None,
    no_cache: NoCache = False,
    deliver: Deliver = None,
    upscaler: Upscaler = None,
    insecure: Insecure = False,
    speed: Speed = None,
) -> None:
    """Queue many files (overnight PV batches). With --address they join the cluster's queue at
    PRIORITY, filling idle GPUs while more urgent jobs go first; else they render here together."""
    level = priority(priority_)
    preset = model_name(model, engine)
    if not address and gpus > MAX_LOCAL_GPUS:
        raise InputError.single("--gpus", f"{gpus} workers on one machine: a local batch runs at most {MAX_LOCAL_GPUS}")
    plans, problems = [], []
    stems = [f.stem for f in files]
    delivered = delivery(deliver, upscaler)
    for f in files:
        try:
            plans.append(load(f, preset, None, speed=speed)[1])
            check_delivery(plans[-1], delivered, weights=not address)
        except InputError as e:
            problems += e.problems
    for f in files:
        if stems.count(f.stem) > 1:
            problems += InputError.single(f, f"two files named {f.stem!r}: each renders into OUT/{f.stem}").problems
    if problems:
        raise InputError(problems)
    if address:
        from farm.cluster.client import submit as send

        from .cluster import cluster_out

        for f, p in zip(files, plans):
            typer.echo(send(f, p, address=address, priority=level, out=cluster_out(str(out / f.stem)), model=preset,
                            deliver=deliver or [], upscaler=upscaler, insecure=insecure, speed=speed or []))
        return
    configs = [{"source": str(f.resolve()), "engine": preset, "gpus": gpus, **delivered, "speed": speed or []}
               for f in files]
    _local_batch(files, plans, configs, out, level, gpus, quiet, None if no_cache else cache or "default")


def _local_batch(files: list[Path], plans: list, configs: list[dict], out: Path, level: int, gpus: int,
                 quiet: bool, cache) -> None:
    """Render a batch here, together on one pool; exits 1 if any render lost shots."""
    from farm.api.embedded import render_jobs
    from farm.api.protocol import JobRequest
    from farm.job.job import Job

    requests = [JobRequest(p, out / f.stem, level, config, None, Job.new_id(f.stem))
                for f, p, config in zip(files, plans, configs)]
    outcomes = render_jobs(requests, gpus=gpus, show_progress=not quiet, cache=_cache(cache))
    failed = [o for o in outcomes if not o.ok]
    for o in outcomes:
        typer.echo(str(o.episode.resolve()) if o.episode else f"{o.out}: nothing delivered"
                   + (f" ({o.error})" if o.error else ""))
    if failed:
        typer.echo(f"error: {len(failed)} of {len(outcomes)} renders had failed shots", err=True)
        raise typer.Exit(1)


def report(
    out: Annotated[Path, typer.Argument(help="Output folder of a render.")],
    min_similarity: Annotated[float, typer.Option("--min-similarity", help="Flag shots where a character's similarity to its bank is below this.")] = 0.80,
    max_flicker: Annotated[float, typer.Option("--max-flicker", help="Flag shots whose mean frame-to-frame change (0..1) is above this.")] = 0.08,
    max_jump: Annotated[float, typer.Option("--max-jump", help="Flag shots with a single frame-to-frame change (0..1) above this.")] = 0.25,
) -> None:
    """Rebuild OUT/report.html and OUT/contact_sheet.png from OUT's plan, manifest, ledger and shots,
    without rendering; prints the report's path."""
    from farm.job.lock import FolderBusy, FolderLock
    from farm.report.report import Thresholds, write_report

    thresholds = Thresholds(min_similarity, max_flicker, max_jump)
    if not JobFolder(out).has_ledger():   # not a render: the report says what is missing, writing nothing
        write_report(out, thresholds)
    try:
        with FolderLock(out):   # not while a render writes here
            path = write_report(out, thresholds)
    except FolderBusy as e:
        raise InputError.single(out, str(e)) from None
    typer.echo(str(path.resolve()))


def status(
    target: Annotated[str, typer.Argument(help="A render's output folder (reads its ledger), or a cluster job id.")],
    address: Address = None,
    insecure: Insecure = False,
) -> None:
    """Per-job and per-segment state with ETA: from OUT/ledger.sqlite, or from the cluster for a job id."""
    if JobFolder(Path(target)).has_ledger():
        from farm.job.status import ledger_status

        typer.echo(ledger_status(Path(target)))
        return
    from farm.cluster.status import cluster_status

    typer.echo(cluster_status(address, target, insecure))


def register(app: typer.Typer) -> None:
    app.command()(render)
    app.command()(resume)
    app.command()(batch)
    app.command()(report)
    app.command()(status)

