"""The ledger: a render's durable state in SQLite (WAL) at DIR/ledger.sqlite.

Jobs, segments, attempts and worker events. Every state change is its own committed transaction,
written before the farm acts on it, so a crash at any instant leaves a ledger that a resumed run can
trust: what it says is published is on disk, what it says is running is re-rendered.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, source TEXT, out TEXT, priority INT, status TEXT,
    config TEXT, created REAL, updated REAL, detail TEXT);
CREATE TABLE IF NOT EXISTS segments(job TEXT, id TEXT, shot TEXT, hash TEXT, deps TEXT, frames INT, model TEXT,
    estimate_s REAL, status TEXT, attempts INT, error TEXT, file_sha256 TEXT, record TEXT, updated REAL,
    PRIMARY KEY(job, id));
CREATE TABLE IF NOT EXISTS attempts(job TEXT, segment TEXT, n INT, worker TEXT, node TEXT, degree INT,
    offload INT, started REAL, ended REAL, status TEXT, error TEXT, PRIMARY KEY(job, segment, n));
CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, job TEXT, worker TEXT,
    kind TEXT, detail TEXT);
"""
_JSON = {"config", "deps", "record"}


class LedgerError(ValueError):
    pass


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise LedgerError(f"{self.path}: written by a newer sakuga (ledger version {version})")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version={VERSION}")
        except sqlite3.DatabaseError as e:
            raise LedgerError(f"{self.path}: not a sakuga ledger ({e})") from None

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, *args) -> sqlite3.Cursor:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute(sql, args)
                self.db.execute("COMMIT")
                return cur
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _many(self, statements: list[tuple[str, tuple]]) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self.db.execute(sql, args)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, *args) -> list[dict]:
        with self.lock:
            rows = self.db.execute(sql, args).fetchall()
        return [{k: (json.loads(r[k]) if k in _JSON and r[k] is not None else r[k]) for k in r.keys()} for r in rows]

    # -- jobs ---------------------------------------------------------------------------------------

    def upsert_job(self, job: str, *, source: str, out: str, priority: int = 0, config: dict | None = None,
                   status: str = "queued") -> None:
        now = time.time()
        self._write("INSERT INTO jobs(id, source, out, priority, status, config, created, updated) "
                    "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET source=excluded.source, "
                    "out=excluded.out, priority=excluded.priority, status=excluded.status, "
                    "config=excluded.config, updated=excluded.updated",
                    job, source, out, priority, status, json.dumps(config or {}), now, now)

    def set_job_status(self, job: str, status: str, detail: str | None = None) -> None:
        self._write("UPDATE jobs SET status=?, detail=?, updated=? WHERE id=?", status, detail, time.time(), job)

    def job(self, job: str) -> dict | None:
        rows = self._rows("SELECT * FROM jobs WHERE id=?", job)
        return rows[0] if rows else None

    def jobs(self) -> list[dict]:
        return self._rows("SELECT * FROM jobs ORDER BY created")

    # -- segments -----------------------------------------------------------------------------------

    def sync_segments(self, job: str, rows: list[dict]) -> dict[str, str]:
        """Make the job's segments those of `rows`: new and changed (other hash) ones are pending, a
        segment left 'running' by a crash is pending again, the rest keep their state."""
        now = time.time()
        old = {r["id"]: r for r in self._rows("SELECT id, hash, status FROM segments WHERE job=?", job)}
        statements = []
        for r in rows:
            values = (r["shot"], r["hash"], json.dumps(list(r["deps"])), r["frames"], r["model"], r["estimate_s"], now)
            before = old.get(r["id"])
            if before is None:
                statements.append(("INSERT INTO segments(shot, hash, deps, frames, model, estimate_s, updated, "
                                   "job, id, status, attempts) VALUES(?,?,?,?,?,?,?,?,?,'pending',0)",
                                   (*values, job, r["id"])))
            elif before["hash"] != r["hash"]:
                statements.append(("UPDATE segments SET shot=?, hash=?, deps=?, frames=?, model=?, estimate_s=?, "
                                   "updated=?, status='pending', attempts=0, error=NULL, file_sha256=NULL, "
                                   "record=NULL WHERE job=? AND id=?", (*values, job, r["id"])))
                statements.append(("DELETE FROM attempts WHERE job=? AND segment=?", (job, r["id"])))
            else:
                status = "pending" if before["status"] in ("running", "failed", "skipped") else before["status"]
                statements.append(("UPDATE segments SET shot=?, hash=?, deps=?, frames=?, model=?, estimate_s=?, "
                                   "updated=?, status=? WHERE job=? AND id=?", (*values, status, job, r["id"])))
        for gone in set(old) - {r["id"] for r in rows}:
            statements.append(("DELETE FROM segments WHERE job=? AND id=?", (job, gone)))
            statements.append(("DELETE FROM attempts WHERE job=? AND segment=?", (job, gone)))
        statements.append(("UPDATE attempts SET status='interrupted', ended=? WHERE job=? AND status='running'",
                           (now, job)))
        self._many(statements)
        return {r["id"]: r["status"] for r in self._rows("SELECT id, status FROM segments WHERE job=?", job)}

    def segments(self, job: str) -> list[dict]:
        return self._rows("SELECT * FROM segments WHERE job=? ORDER BY rowid", job)

    def segment(self, job: str, seg: str) -> dict | None:
        rows = self._rows("SELECT * FROM segments WHERE job=? AND id=?", job, seg)
        return rows[0] if rows else None

    def set_segment_status(self, job: str, seg: str, status: str, error: str | None = None) -> None:
        self._write("UPDATE segments SET status=?, error=?, updated=? WHERE job=? AND id=?",
                    status, error, time.time(), job, seg)

    def publish(self, job: str, seg: str, *, file_sha256: str, record: dict) -> None:
        self._write("UPDATE segments SET status='published', file_sha256=?, record=?, error=NULL, updated=? "
                    "WHERE job=? AND id=?", file_sha256, json.dumps(record), time.time(), job, seg)

    def counts(self, job: str) -> dict[str, int]:
        return {r["status"]: r["n"] for r in self._rows(
            "SELECT status, COUNT(*) AS n FROM segments WHERE job=? GROUP BY status", job)}

    # -- attempts -----------------------------------------------------------------------------------

    def start_attempt(self, job: str, seg: str, *, worker: str, node: str = "", degree: int = 1,
                      offload: bool = False) -> int:
        now = time.time()
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                n = self.db.execute("SELECT attempts FROM segments WHERE job=? AND id=?", (job, seg)).fetchone()[0] + 1
                self.db.execute("UPDATE segments SET attempts=?, status='running', updated=? WHERE job=? AND id=?",
                                (n, now, job, seg))
                self.db.execute("INSERT OR REPLACE INTO attempts(job, segment, n, worker, node, degree, offload, "
                                "started, status) VALUES(?,?,?,?,?,?,?,?,'running')",
                                (job, seg, n, worker, node, degree, int(offload), now))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return n

    def end_attempt(self, job: str, seg: str, n: int, status: str, error: str | None = None) -> None:
        now = time.time()
        statements = [("UPDATE attempts SET ended=?, status=?, error=? WHERE job=? AND segment=? AND n=?",
                       (now, status, error, job, seg, n))]
        if status != "done":
            statements.append(("UPDATE segments SET status='pending', error=?, updated=? WHERE job=? AND id=?",
                               (error, now, job, seg)))
        self._many(statements)

    def attempts(self, job: str, seg: str | None = None) -> list[dict]:
        if seg is None:
            return self._rows("SELECT * FROM attempts WHERE job=? ORDER BY started, n", job)
        return self._rows("SELECT * FROM attempts WHERE job=? AND segment=? ORDER BY n", job, seg)

    def interrupt_running(self, job: str) -> int:
        now = time.time()
        running = self._rows("SELECT segment FROM attempts WHERE job=? AND status='running'", job)
        self._many([("UPDATE attempts SET status='interrupted', ended=? WHERE job=? AND status='running'", (now, job)),
                    ("UPDATE segments SET status='pending', updated=? WHERE job=? AND status='running'", (now, job))])
        return len(running)

    # -- events -------------------------------------------------------------------------------------

    def event(self, kind: str, detail: str = "", *, job: str | None = None, worker: str | None = None) -> None:
        self._write("INSERT INTO events(ts, job, worker, kind, detail) VALUES(?,?,?,?,?)",
                    time.time(), job, worker, kind, detail)

    def events(self, job: str | None = None) -> list[dict]:
        if job is None:
            return self._rows("SELECT * FROM events ORDER BY seq")
        return self._rows("SELECT * FROM events WHERE job=? ORDER BY seq", job)
