"""Atomic publishing: a file in the output folder is either complete or absent.

Everything is written to a temporary name in the target's own folder (so the rename never crosses a
file system), flushed to disk, renamed over the target with `os.replace`, and the folder entry itself
flushed. A crash at any instant leaves the old state or the new one, plus at worst a `.tmp-*` file
that `remove_stale_temps` clears on the next run.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on a clean exit publish what was written there as `path`.

    The caller must create the temporary file. On an exception the temporary file is removed and the
    target is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real name (and suffix) at the end so tools that look at extensions still work
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like `atomic_path` for a folder: fill the yielded temporary folder; on a clean exit it replaces
    `path`. The old folder is first renamed aside, so a crash between the two renames leaves no
    `path` (and a `.tmp-*` folder for `remove_stale_temps`), never a mixture of old and new files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            _fsync(f)
        _fsync_dir(tmp)
        if path.exists():
            old = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-old-{path.name}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


def publish_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def publish_json(path: str | os.PathLike, obj: object) -> None:
    publish_bytes(path, json_bytes(obj))


def json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def publish_many(files: dict[Path, bytes]) -> None:
    """Publish several files of one folder, each atomically, flushing the folder entry once."""
    folders = set()
    for path, data in files.items():
        path = Path(path)
        tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        folders.add(path.parent)
    for folder in folders:
        _fsync_dir(folder)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temporaries left by an interrupted run in `folder`; return how many there were. Only the
    folder's one writer may call it (the folder lock), or it could take another's file mid-write."""
    stale = list(Path(folder).glob(f"{TEMP_PREFIX}*"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link (same file system) or copy `source` to `target`, atomically."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:   # another file system, or links not supported
            shutil.copyfile(source, tmp)
    # rename() between two links to one file does nothing, leaving tmp behind (a repeated link_into)
    tmp.unlink(missing_ok=True)

