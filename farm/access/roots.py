"""Where each user's outputs may go: under the farm's output root, in a folder named for the user.

`$SAKUGA_FARM_ROOT` (default `~/sakuga/jobs` on the head) holds one folder per user. A relative output
means "under my folder"; an absolute one must lie inside it. Resolved with symlinks followed, so a link
planted inside a user's folder cannot lead out of it, and `..` is refused outright.
"""
from __future__ import annotations

import os
from pathlib import Path

from storyboard.errors import InputError

from .users import check_name


def farm_root() -> Path:
    return Path(os.environ.get("SAKUGA_FARM_ROOT") or Path.home() / "sakuga" / "jobs").expanduser()


def user_root(user: str, root: Path | None = None) -> Path:
    return (root or farm_root()) / check_name(user, "owner")


def confine(out: str | Path | None, user: str, default: str, root: Path | None = None) -> Path:
    """The absolute output folder for `out` (None: `default`, a job id) of `user`, or InputError naming
    the user's root. Nothing is created."""
    home = user_root(user, root)
    path = Path(out if out is not None else default).expanduser()
    if ".." in path.parts:
        raise InputError.single("--out", f"{str(out)!r} has '..': give a path inside {home}")
    path = path if path.is_absolute() else home / path
    resolved, base = path.resolve(), home.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise InputError.single("--out", f"{str(out)!r} is outside {user}'s output root {home}: give a name or a "
                                         "path inside it")
    return resolved
