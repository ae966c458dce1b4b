"""Content-addressed segment cache: a rendered segment filed under the planner's content hash.

An edited storyboard re-renders only the segments whose hash changed (the edited shots and their
continuity descendants). Entries appear by renaming a finished folder, so concurrent renders can
share one cache and a crash never leaves half an entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

_HASH = re.compile(r"[0-9a-f]{64}")
FILES = {".mp4": "segment.mp4", ".png": "segment.png"}


def default_cache_dir() -> Path:
    if os.environ.get("SAKUGA_CACHE"):
        return Path(os.environ["SAKUGA_CACHE"]) / "segments"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sakuga" / "segments"


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class SegmentCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, hash: str) -> Path:
        if not isinstance(hash, str) or not _HASH.fullmatch(hash):
            raise ValueError(f"not a segment content hash: {hash!r}")
        return self.root / hash[:2] / hash

    def put(self, hash: str, files: dict[str, bytes], record: dict) -> None:
        final = self._dir(hash)
        if set(files) - set(FILES):
            raise ValueError(f"cache entries hold {', '.join(FILES)} files, not {sorted(set(files) - set(FILES))}")
        if final.is_dir():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        try:
            for ext, data in files.items():
                _fsync_write(tmp / FILES[ext], data)
            entry = {"hash": hash, "files": {ext: bytes_sha256(d) for ext, d in files.items()},
                     "record": record, "created": time.time()}
            _fsync_write(tmp / "entry.json", json.dumps(entry).encode())
            os.rename(tmp, final)
        except OSError:
            if final.is_dir():   # another render filed the same segment first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def get(self, hash: str) -> dict | None:
        folder = self._dir(hash)
        if not folder.is_dir():
            return None
        try:
            entry = json.loads((folder / "entry.json").read_text())
            paths = {ext: folder / FILES[ext] for ext in entry["files"]}
            if entry["hash"] != hash or any(file_sha256(p) != entry["files"][ext] for ext, p in paths.items()):
                raise ValueError("damaged")
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(folder, ignore_errors=True)   # damaged: render it again
            return None
        return {"record": entry["record"], "files": paths, "sha256": entry["files"]}

    def link_into(self, hash: str, dest: dict[str, Path]) -> dict | None:
        entry = self.get(hash)
        if entry is None or set(dest) - set(entry["files"]):
            return None
        for ext, target in dest.items():
            _place(entry["files"][ext], Path(target))
        return entry

    def entries(self) -> list[Path]:
        return [p for p in self.root.glob("??/*") if p.is_dir() and _HASH.fullmatch(p.name)]

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for e in self.entries() for f in e.iterdir() if f.is_file())

    def prune(self, max_bytes: int) -> int:
        """Remove the oldest entries until the cache is under `max_bytes`; returns how many went."""
        entries = sorted(self.entries(), key=lambda e: e.stat().st_mtime)
        size, removed = self.size_bytes(), 0
        for e in entries:
            if size <= max_bytes:
                break
            size -= sum(f.stat().st_size for f in e.iterdir() if f.is_file())
            shutil.rmtree(e, ignore_errors=True)
            removed += 1
        return removed


def _place(source: Path, target: Path) -> None:
    """Hard-link (same filesystem) or copy `source` to `target`, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
