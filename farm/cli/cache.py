"""`sakuga cache`: the content-addressed segment cache — how big it is, and pruning it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from storyboard.errors import InputError

from .options import Cache

app = typer.Typer(no_args_is_help=True, help="The segment cache.")
UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """Bytes from `500M`, `20G`, `1.5T` or a plain number of bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", text.lower())
    if not m:
        raise InputError.single("--max-size", f"{text!r} is not a size (e.g. 500M, 20G, 1.5T)")
    return int(float(m.group(1)) * UNITS[m.group(2)])


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
    max_size: Annotated[str, typer.Option("--max-size", help="Keep at most this much (500M, 20G...): the oldest segments go first.")],
    cache: Cache = None,
) -> None:
    """Remove the oldest cached segments until the cache holds at most --max-size."""
    limit = parse_size(max_size)
    store = _open(cache)
    removed = store.prune(limit)
    typer.echo(f"{store.root}: removed {removed} segments; {len(store.entries())} left, {_gb(store.size_bytes())}")
