"""What several commands share: their options, loading a storyboard into a plan, priorities."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

AssetRoots = Annotated[list[Path] | None, typer.Option("--asset-root", help="Folder where absolute image paths may point (repeatable).")]
Model = Annotated[str | None, typer.Option("--model", help="Model preset, overriding the storyboard's.")]
EngineAlias = Annotated[str | None, typer.Option("--engine", hidden=True, help="Old name of --model.")]
Cache = Annotated[Path | None, typer.Option("--cache", help="Segment cache folder (default: the user's cache folder, or $SAKUGA_CACHE/segments).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither reuse nor store segments in the cache.")]
Wait = Annotated[bool, typer.Option("--wait", help="If another render is writing into OUT, wait for it to finish instead of stopping.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Address = Annotated[str | None, typer.Option("--address", help="Ray dashboard of the cluster (default $RAY_ADDRESS, else http://127.0.0.1:8265).")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Use a cluster that does not require a token (anyone who reaches it can run code there).")]
Priority = Annotated[str, typer.Option("--priority", help="low, normal, high, urgent or an integer (higher goes first).")]
Gpus = Annotated[int, typer.Option("--gpus", min=1, max=4096, help="GPU workers (logical GPUs on a CPU machine).")]
Size = Annotated[str | None, typer.Option("--size", help="Output WIDTHxHEIGHT (e.g. 1280x720), overriding the storyboard's "
                                                         "`output` and the model's native size.")]
Speed = Annotated[list[str] | None, typer.Option("--speed", help="A speed option over the preset's options.speed, "
                                                                 "KEY=VALUE (repeatable): attention=sage, fp8=layerwise, "
                                                                 "cache=fbc:0.05, compile=on, vae_tiling=off (docs/models.md).")]


Deliver = Annotated[list[str] | None, typer.Option(
    "--deliver", help="A delivery profile (configs/delivery/: broadcast-1080p2398, streaming-1080p24, "
                      "sns-vertical-1080x1920, web-720p16), written to OUT/deliver/PROFILE/; or a master beside "
                      "the episode: prores (episode.mov, ProRes 422 HQ with PCM sound) or png (episode_png/). "
                      "Repeatable.")]
Upscaler = Annotated[str | None, typer.Option(
    "--upscaler", help="Upscaler preset (configs/upscalers/: sr-tiny, realesr-animevideov3, ...) for every "
                       "--deliver profile, overriding the profiles' own.")]


def model_name(model: str | None, engine: str | None) -> str | None:
    """`--model`, or the old `--engine` with a one-line note."""
    if engine is not None:
        typer.echo("note: --engine is now --model (it names a model preset); --engine will go away", err=True)
        if model is not None and model != engine:
            raise InputError.single("--engine", f"--engine {engine!r} and --model {model!r} disagree: give --model only")
    return model if model is not None else engine


def load(file: Path, model: str | None, asset_roots: list[Path] | None, size: str | None = None,
         speed: list[str] | None = None):
    """The storyboard at `file` and its plan (`farm/job/source.py`)."""
    from farm.job.source import load_storyboard

    return load_storyboard(file, model, asset_roots, size, speed)


def priority(text: str) -> int:
    from farm.scheduling.priority import parse_priority

    try:
        return parse_priority(text)
    except ValueError as e:
        raise InputError.single("--priority", str(e)) from None


def duration(frames: int, fps: int) -> str:
    return f"{frames / fps:.1f}s"
