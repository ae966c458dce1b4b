"""The farm service's queue, durable: every job it has accepted and not finished, in SQLite on the head's
local disk (`$SAKUGA_FARM_HOME`, default `~/.sakuga/farm`). A restarted service (Ray restarts the actor)
submits them again; each job's own ledger says what was published, so nothing published is rendered
again. The rollback journal, not WAL: this file is on local disk; the jobs' ledgers are in their
output folders (docs/farm.md says which journal mode is safe where)."""
from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from pathlib import Path

from farm.api.protocol import JobRequest


def farm_home() -> Path:
    return Path(os.environ.get("SAKUGA_FARM_HOME") or Path.home() / ".sakuga" / "farm").expanduser()


class Registry:
    def __init__(self, path: Path | None = None):
        self.path = path or farm_home() / "registry.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, request BLOB, submitted REAL, "
                        "finished REAL)")

    def put(self, job_id: str, request: JobRequest) -> None:
        """Accepted: `request` (the plan and the pictures' bytes) is kept until the job finishes. Pickled:
        only the service writes and reads this file, on its own disk."""
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO jobs(id, request, submitted, finished) VALUES(?,?,?,NULL)",
                            (job_id, pickle.dumps(request), time.time()))

    def done(self, job_id: str) -> None:
        """Finished (delivered, failed or cancelled): nothing to resume, and the bytes go."""
        with self.lock:
            self.db.execute("UPDATE jobs SET finished=?, request=NULL WHERE id=?", (time.time(), job_id))

    def unfinished(self) -> list[tuple[str, JobRequest]]:
        with self.lock:
            rows = self.db.execute("SELECT id, request FROM jobs WHERE finished IS NULL ORDER BY submitted").fetchall()
        return [(job_id, pickle.loads(blob)) for job_id, blob in rows]
