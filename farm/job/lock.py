"""One writer per output folder: an exclusive lock on `OUT/.sakuga.lock`, held by a job from opening
to closing (render, resume, a service job) and by `sakuga report` while it writes.

The lock is `flock(2)` on the file: the kernel releases it when the holder dies, so a crash never
leaves a folder locked. The file says who holds it (host, pid, since, command) for the message the
second writer gets. `flock` also works between machines on NFSv4 and most cluster file systems; on
others (old NFSv3 without lockd) it only excludes writers on the same machine — docs/farm.md.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".sakuga.lock"


class FolderBusy(RuntimeError):
    """Another sakuga is writing into this folder."""

    def __init__(self, folder: Path, holder: dict):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
        super().__init__(f"another sakuga is writing here (pid {holder.get('pid', '?')} on "
                         f"{holder.get('host', '?')}, since {since}: {holder.get('command', '?')}); wait for it to "
                         "finish, or pass --wait")
        self.folder, self.holder = folder, holder


class FolderLock:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, wait: bool = False) -> FolderLock:
        """Take the lock; FolderBusy if another writer holds it (or, with `wait`, block until it goes)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(self.folder, self.holder()) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return self

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)   # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
