"""`sakuga cache`: the content-addressed segment cache — how big it is, and pruning it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

from .options import Cache

app = typer.Typer(no_args_is_help=True, help="The segment cache.")
DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds from `90s`, `12h`, `30d`, `2w`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not m:
        raise InputError.single("--older-than", f"{text!r} is not a duration (e.g. 12h, 30d, 2w)")
    return float(m.group(1)) * DURATION[m.group(2)]


def _open(cache: Path | None):
    from farm.job.cache import SegmentCache, default_cache_dir

    return SegmentCache(cache or default_cache_dir())


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


@app.command("info")
def cache_info(cache: Cache = None) -> None:
    """Where the segment cache is, how many segments it holds and how much space they take."""
    store = _open(cache)
    typer.echo(f"{store.root}: {len(store.entries())} segments, {_gb(store.size_bytes())}")


@app.command("prune")
def cache_prune(
    max_size: Annotated[str | None, typer.Option("--max-size", help="Keep at most this much (500M, 20G...): the oldest segments go first.")] = None,
    older_than: Annotated[str | None, typer.Option("--older-than", help="Remove segments cached longer ago than this (12h, 30d, 2w).")] = None,
    cache: Cache = None,
) -> None:
    """Remove cached segments older than --older-than, then the oldest until the cache holds at most
    --max-size. Renders that used a segment keep their own copy."""
    if max_size is None and older_than is None:
        raise InputError.single("--max-size", "say what to prune: --max-size SIZE and/or --older-than AGE")
    from farm.job.cache import parse_size

    try:
        limit = parse_size(max_size) if max_size is not None else None
    except ValueError as e:
        raise InputError.single("--max-size", str(e)) from None
    age = parse_duration(older_than) if older_than is not None else None
    store = _open(cache)
    removed = store.prune(limit, age)
    typer.echo(f"{store.root}: removed {removed} segments; {len(store.entries())} left, {_gb(store.size_bytes())}")
