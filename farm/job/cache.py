"""Content-addressed segment cache: a rendered segment filed under the planner's content hash.

An edited storyboard re-renders only the segments whose hash changed (the edited shots and their
continuity descendants). Entries appear by renaming a finished folder, so concurrent renders can
share one cache and a crash never leaves half an entry.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from farm.job.publish import (
    TEMP_PREFIX,
    _fsync_dir,
    json_bytes,
    link_or_copy,
    publish_many,
)

logger = logging.getLogger(__name__)

_HASH = re.compile(r"[0-9a-f]{64}")
FILES = {".mp4": "segment.mp4", ".png": "segment.png"}
ENTRY = "entry.json"
STALE_TEMP_S = 24 * 3600


def parse_size(text: str) -> int:
    """Bytes from `500M`, `20G`, `1.5T` or a plain number of bytes; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 20G, 1.5T)")
    return int(float(m.group(1)) * 1000 ** " kmgt".index(m.group(2) or " "))


def default_cache_cap() -> int:
    """The cache's automatic cap: $SAKUGA_CACHE_MAX_SIZE, else 200 GB (pruned oldest first after each job)."""
    return parse_size(os.environ.get("SAKUGA_CACHE_MAX_SIZE", "200G"))


def trim_to_cap(cache: SegmentCache) -> None:
    """The cache's automatic cap (oldest entries first), after each job; it never fails a render."""
    try:
        removed = cache.prune(default_cache_cap())
    except (OSError, ValueError) as e:
        logger.warning("segment cache %s not trimmed: %s", cache.root, e)
        return
    if removed:
        logger.info("segment cache %s: %d oldest segments removed to stay under its cap", cache.root, removed)


def default_cache_dir() -> Path:
    """`$SAKUGA_CACHE/segments`, else `$XDG_CACHE_HOME/sakuga/segments`, else `~/.cache/sakuga/segments`."""
    if os.environ.get("SAKUGA_CACHE"):
        return Path(os.environ["SAKUGA_CACHE"]).expanduser() / "segments"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec says a relative value is invalid and must be ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "sakuga" / "segments"


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class SegmentCache:
    """Entries live at `root/<hash[:2]>/<hash>/` as `segment.mp4`, `segment.png` and `entry.json`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, hash: str) -> Path:
        # the hash becomes a path, so only a well-formed digest may get that far
        if not isinstance(hash, str) or not _HASH.fullmatch(hash):
            raise ValueError(f"not a segment content hash: {hash!r}")
        return self.root / hash[:2] / hash

    def put(self, hash: str, files: dict[str, bytes], record: dict) -> None:
        """File a segment under `hash`; if an entry is already there, keep it and discard this one."""
        final = self._dir(hash)
        unknown = sorted(set(files) - set(FILES))
        if unknown:
            raise ValueError(f"cache entries hold {', '.join(FILES)} files, not {unknown}")
        if final.is_dir():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=TEMP_PREFIX))
        placed = False
        try:
            entry = {"hash": hash, "files": {ext: bytes_sha256(d) for ext, d in files.items()},
                     "record": record, "created": time.time()}
            contents = {tmp / FILES[ext]: data for ext, data in files.items()}
            contents[tmp / ENTRY] = json_bytes(entry)
            publish_many(contents)
            try:
                os.rename(tmp, final)
                placed = True
            except OSError:
                if not final.is_dir():
                    raise
                # another render filed the same segment first; its entry is as good as ours
        finally:
            if not placed:
                shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(final.parent)

    def get(self, hash: str) -> dict | None:
        """The entry's record, file paths and digests, or None; a damaged entry is removed."""
        folder = self._dir(hash)
        if not folder.is_dir():
            return None
        try:
            entry = json.loads((folder / ENTRY).read_text())
            sha256 = entry["files"]
            paths = {ext: folder / FILES[ext] for ext in sha256}
            if entry["hash"] != hash or any(file_sha256(p) != sha256[ext] for ext, p in paths.items()):
                raise ValueError("damaged")
            record = entry["record"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            shutil.rmtree(folder, ignore_errors=True)   # damaged: the segment is rendered again
            return None
        except OSError as e:   # EIO, a permission, a stale NFS handle: maybe transient, the entry may be fine
            logger.warning("%s: not readable now (%s); rendering instead, the entry is kept", folder, e)
            return None
        return {"record": record, "files": paths, "sha256": sha256}

    def link_into(self, hash: str, dest: dict[str, Path]) -> dict | None:
        """Place the entry's files at `dest[ext]` (hard link, else copy), each complete or absent."""
        unknown = sorted(set(dest) - set(FILES))
        if unknown:
            raise ValueError(f"cache entries hold {', '.join(FILES)} files, not {unknown}")
        entry = self.get(hash)
        if entry is None or set(dest) - set(entry["files"]):
            return None
        for ext, target in dest.items():
            source = entry["files"][ext]
            try:
                link_or_copy(source, Path(target))
            except FileNotFoundError:
                if source.exists():
                    raise
                return None   # pruned or found damaged by another process since get()
        return entry

    def entries(self) -> list[Path]:
        return [p for p in self.root.glob("??/*") if p.is_dir() and _HASH.fullmatch(p.name)]

    def size_bytes(self) -> int:
        return sum(_entry_size(e) for e in self.entries())

    def prune(self, max_bytes: int | None = None, older_than_s: float | None = None) -> int:
        """Remove entries created more than `older_than_s` ago, then the oldest until the cache holds at
        most `max_bytes`; returns how many went. Renders that took an entry keep their own links."""
        self._remove_stale_temps()
        entries = sorted((_created(e), e) for e in self.entries())
        sizes = {e: _entry_size(e) for _, e in entries}
        size, removed = sum(sizes.values()), 0
        cutoff = time.time() - older_than_s if older_than_s is not None else None
        for created, e in entries:
            old = cutoff is not None and created < cutoff
            if not old and (max_bytes is None or size <= max_bytes):
                continue
            shutil.rmtree(e, ignore_errors=True)
            size -= sizes[e]
            removed += 1
        return removed

    def _remove_stale_temps(self) -> None:
        # folders of puts that crashed before their rename; a day old cannot still be in progress
        cutoff = time.time() - STALE_TEMP_S
        for p in self.root.glob(f"??/{TEMP_PREFIX}*"):
            try:
                if p.is_dir() and p.stat().st_mtime < cutoff:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def _entry_size(folder: Path) -> int:
    total = 0
    for f in folder.iterdir():
        try:
            total += f.stat().st_size if f.is_file() else 0
        except OSError:
            pass   # removed by another process meanwhile
    return total


def _created(folder: Path) -> float:
    try:
        return float(json.loads((folder / ENTRY).read_text())["created"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return folder.stat().st_mtime
        except OSError:
            return 0.0
