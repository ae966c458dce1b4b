"""The ledger: a render's durable state (jobs, segments, attempts, events, takes) in SQLite at DIR/ledger.sqlite.

Every state change is its own committed transaction, on disk before the caller acts on it, so a crash
at any instant leaves a ledger a resumed run can trust: what it says is published is published, and
what it says is running was cut short and is rendered again.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from .states import ATTEMPT, JOB, SEGMENT

VERSION = 3   # 2: takes, 3: checkpoints (an older ledger gains the tables when opened)
SEGMENT_STATUSES = SEGMENT.states
JOB_STATUSES = JOB.states


class JobRow(TypedDict):
    id: str
    source: str
    out: str
    priority: int
    status: str
    config: dict
    created: float
    updated: float
    detail: str | None


class SegmentRow(TypedDict):
    job: str
    id: str
    shot: str
    hash: str
    deps: list[str]
    frames: int
    model: str
    estimate_s: float
    status: str
    attempts: int
    error: str | None
    file_sha256: str | None
    record: dict | None          # what the published segment's sidecar says (timings, worker, metrics...)
    updated: float


class AttemptRow(TypedDict):
    job: str
    segment: str
    n: int
    worker: str
    node: str
    degree: int
    offload: int
    started: float
    ended: float | None
    status: str
    error: str | None


class TakeRow(TypedDict):
    job: str
    shot: str
    take: int                    # 2, 3...: take 1 is the storyboard's and has no row
    overrides: dict
    created: float
    approved: int                # 1 for the take the cut uses (none: take 1)


class CheckpointRow(TypedDict):
    job: str
    segment: str
    step: int                    # steps done when it was taken, of `steps`
    steps: int
    key: str                     # the content key it was conditioned on (the segment's hash then)
    sha256: str                  # of the published file, OUT/checkpoints/<segment>.step
    bytes: int
    updated: float


class EventRow(TypedDict):
    seq: int
    ts: float
    job: str | None
    worker: str | None
    kind: str
    detail: str

SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, source TEXT, out TEXT, priority INT, status TEXT,
    config TEXT, created REAL, updated REAL, detail TEXT);
CREATE TABLE IF NOT EXISTS segments(job TEXT REFERENCES jobs(id) ON DELETE CASCADE, id TEXT, shot TEXT,
    hash TEXT, deps TEXT, frames INT, model TEXT, estimate_s REAL, status TEXT, attempts INT, error TEXT,
    file_sha256 TEXT, record TEXT, updated REAL, PRIMARY KEY(job, id));
CREATE TABLE IF NOT EXISTS attempts(job TEXT, segment TEXT, n INT, worker TEXT, node TEXT, degree INT,
    offload INT, started REAL, ended REAL, status TEXT, error TEXT, PRIMARY KEY(job, segment, n),
    FOREIGN KEY(job, segment) REFERENCES segments(job, id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, job TEXT, worker TEXT,
    kind TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS takes(job TEXT, shot TEXT, take INT, overrides TEXT, created REAL, approved INT,
    PRIMARY KEY(job, shot, take));
CREATE TABLE IF NOT EXISTS checkpoints(job TEXT, segment TEXT, step INT, steps INT, key TEXT, sha256 TEXT,
    bytes INT, updated REAL, PRIMARY KEY(job, segment),
    FOREIGN KEY(job, segment) REFERENCES segments(job, id) ON DELETE CASCADE);
PRAGMA user_version={VERSION};
COMMIT;
"""
_JSON = ("config", "deps", "record", "overrides")


# WAL keeps its index in shared memory, which does not work between machines: on network file systems
# the rollback journal is the safe mode (with the folder lock making the ledger's writer one process)
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs",
                                 "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.juicefs"})


def filesystem_type(path: Path, mounts: str | None = None) -> str:
    """The type of the file system `path` is on, from /proc/mounts (the longest mount point that holds it)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return "unknown"
    target, best, kind = str(Path(path).resolve()), "", "unknown"
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def journal_mode(path: Path, mounts: str | None = None) -> str:
    return "DELETE" if filesystem_type(Path(path).parent, mounts) in NETWORK_FILESYSTEMS else "WAL"


class LedgerError(ValueError):
    """The file is not a ledger this version of sakuga can read."""


class LedgerWriteError(RuntimeError):
    """The ledger could not record a change (disk full, read-only, I/O error): the job cannot go on
    durably. `path` names the ledger, so the farm knows whose job it is."""

    def __init__(self, path: Path, error: Exception):
        super().__init__(f"{path}: cannot record the job's state ({error})")
        self.path = path


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.closed = False
        # autocommit at the driver level: each write opens its own BEGIN IMMEDIATE (see _tx);
        # timeout is the busy timeout, for the other processes (CLI, status) reading the same file
        self.db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise LedgerError(f"{self.path}: ledger version {version} was written by a newer sakuga "
                                  f"(this one reads version {VERSION})")
            self.db.execute(f"PRAGMA journal_mode={journal_mode(self.path)}")
            self.db.execute("PRAGMA synchronous=FULL")   # each commit survives power loss, not just a crash
            self.db.execute("PRAGMA foreign_keys=ON")
            if version < VERSION:
                self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise LedgerError(f"{self.path}: not a sakuga ledger ({e})") from None
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        with self.lock:
            self.db.close()
            self.closed = True

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction. IMMEDIATE takes the write lock up front, so a read-modify-write is
        atomic across processes too; `with self.db` commits on success and rolls back on error."""
        try:
            with self.lock, self.db:
                self.db.execute("BEGIN IMMEDIATE")
                yield self.db
        except sqlite3.OperationalError as e:   # "database or disk is full", "disk I/O error", read-only
            raise LedgerWriteError(self.path, e) from e

    def _rows(self, sql: str, *args: Any) -> list[dict]:
        with self.lock:
            rows = self.db.execute(sql, args).fetchall()
        return [{k: json.loads(r[k]) if k in _JSON and r[k] is not None else r[k] for k in r.keys()}
                for r in rows]

    # -- jobs ---------------------------------------------------------------------------------------

    def upsert_job(self, job: str, *, source: str, out: str, priority: int = 0, config: dict | None = None,
                   status: str = "queued") -> None:
        _check(status, JOB_STATUSES)
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO jobs(id, source, out, priority, status, config, created, updated) "
                       "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET source=excluded.source, "
                       "out=excluded.out, priority=excluded.priority, status=excluded.status, "
                       "config=excluded.config, updated=excluded.updated",
                       (job, source, out, priority, status, json.dumps(config or {}), now, now))

    def set_job_status(self, job: str, status: str, detail: str | None = None) -> None:
        _check(status, JOB_STATUSES)
        with self._tx() as db:
            db.execute("UPDATE jobs SET status=?, detail=?, updated=? WHERE id=?", (status, detail, time.time(), job))

    def set_priority(self, job: str, priority: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET priority=?, updated=? WHERE id=?", (priority, time.time(), job))

    def job(self, job: str) -> JobRow | None:
        rows = self._rows("SELECT * FROM jobs WHERE id=?", job)
        return rows[0] if rows else None

    def jobs(self) -> list[JobRow]:
        return self._rows("SELECT * FROM jobs ORDER BY created, rowid")

    # -- segments -----------------------------------------------------------------------------------

    def sync_segments(self, job: str, rows: list[dict]) -> dict[str, str]:
        """Make the job's segments exactly `rows`. New ones are pending; one whose hash changed is new
        content, so it starts over (pending, no file, no attempts); one left running by a crashed run is
        pending again and its attempt interrupted; the rest keep their state."""
        now = time.time()
        wanted = {r["id"] for r in rows}
        with self._tx() as db:
            old = {r["id"]: r for r in db.execute("SELECT id, hash, status FROM segments WHERE job=?", (job,))}
            db.execute("UPDATE attempts SET status='interrupted', ended=? WHERE job=? AND status='running'",
                       (now, job))
            for gone in set(old) - wanted:
                db.execute("DELETE FROM attempts WHERE job=? AND segment=?", (job, gone))
                db.execute("DELETE FROM segments WHERE job=? AND id=?", (job, gone))
            for r in rows:
                values = (r["shot"], r["hash"], json.dumps(list(r["deps"])), r["frames"], r["model"],
                          r["estimate_s"], now, job, r["id"])
                before = old.get(r["id"])
                if before is None:
                    db.execute("INSERT INTO segments(shot, hash, deps, frames, model, estimate_s, updated, job, id, "
                               "status, attempts) VALUES(?,?,?,?,?,?,?,?,?,'pending',0)", values)
                elif before["hash"] != r["hash"]:
                    db.execute("DELETE FROM attempts WHERE job=? AND segment=?", (job, r["id"]))
                    db.execute("UPDATE segments SET shot=?, hash=?, deps=?, frames=?, model=?, estimate_s=?, "
                               "updated=?, status='pending', attempts=0, error=NULL, file_sha256=NULL, record=NULL "
                               "WHERE job=? AND id=?", values)
                else:
                    status = "pending" if before["status"] == "running" else before["status"]
                    db.execute("UPDATE segments SET shot=?, hash=?, deps=?, frames=?, model=?, estimate_s=?, "
                               "updated=?, status=? WHERE job=? AND id=?", (*values[:7], status, job, r["id"]))
            return {r["id"]: r["status"] for r in db.execute("SELECT id, status FROM segments WHERE job=?", (job,))}

    def segments(self, job: str) -> list[SegmentRow]:
        return self._rows("SELECT * FROM segments WHERE job=? ORDER BY rowid", job)

    def segment(self, job: str, seg: str) -> SegmentRow | None:
        rows = self._rows("SELECT * FROM segments WHERE job=? AND id=?", job, seg)
        return rows[0] if rows else None

    def set_segment_status(self, job: str, seg: str, status: str, error: str | None = None) -> None:
        _check(status, SEGMENT_STATUSES)
        with self._tx() as db:
            db.execute("UPDATE segments SET status=?, error=?, updated=? WHERE job=? AND id=?",
                       (status, error, time.time(), job, seg))

    def publish(self, job: str, seg: str, *, file_sha256: str, record: dict, attempt: int | None = None) -> None:
        """Mark a segment published (its files are already in place); with `attempt`, that attempt is
        closed as done in the same transaction."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE segments SET status='published', file_sha256=?, record=?, error=NULL, updated=? "
                       "WHERE job=? AND id=?", (file_sha256, json.dumps(record), now, job, seg))
            if attempt is not None:
                db.execute("UPDATE attempts SET ended=?, status='done', error=NULL WHERE job=? AND segment=? AND n=?",
                           (now, job, seg, attempt))

    def counts(self, job: str) -> dict[str, int]:
        rows = self._rows("SELECT status, COUNT(*) AS n FROM segments WHERE job=? GROUP BY status", job)
        return {r["status"]: r["n"] for r in rows}

    # -- attempts -----------------------------------------------------------------------------------

    def start_attempt(self, job: str, seg: str, *, worker: str, node: str = "", degree: int = 1,
                      offload: bool = False) -> int:
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE segments SET attempts=attempts+1, status='running', updated=? WHERE job=? AND id=?",
                       (now, job, seg))
            row = db.execute("SELECT attempts FROM segments WHERE job=? AND id=?", (job, seg)).fetchone()
            if row is None:
                raise KeyError(f"no segment {seg!r} in job {job!r}")
            n = row[0]
            db.execute("INSERT INTO attempts(job, segment, n, worker, node, degree, offload, started, status) "
                       "VALUES(?,?,?,?,?,?,?,?,'running')", (job, seg, n, worker, node, degree, int(offload), now))
        return n

    def end_attempt(self, job: str, seg: str, n: int, status: str, error: str | None = None) -> None:
        ATTEMPT.move("running", status, f"{job}/{seg}#{n}")
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE attempts SET ended=?, status=?, error=? WHERE job=? AND segment=? AND n=?",
                       (now, status, error, job, seg, n))
            if status != "done":   # the caller decides later whether the segment has failed for good
                db.execute("UPDATE segments SET status='pending', error=?, updated=? WHERE job=? AND id=?",
                           (error, now, job, seg))

    def attempts(self, job: str, seg: str | None = None) -> list[AttemptRow]:
        sql = ("SELECT a.* FROM attempts a LEFT JOIN segments s ON s.job=a.job AND s.id=a.segment "
               "WHERE a.job=?{} ORDER BY s.rowid, a.n")
        if seg is None:
            return self._rows(sql.format(""), job)
        return self._rows(sql.format(" AND a.segment=?"), job, seg)

    def interrupt_running(self, job: str) -> int:
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE segments SET status='pending', updated=? WHERE job=? AND status='running' AND id IN "
                       "(SELECT segment FROM attempts WHERE job=? AND status='running')", (now, job, job))
            return db.execute("UPDATE attempts SET status='interrupted', ended=? WHERE job=? AND status='running'",
                              (now, job)).rowcount

    # -- takes --------------------------------------------------------------------------------------

    def add_take(self, job: str, shot: str, overrides: dict) -> int:
        """Record a new take of `shot` (the next number after the last; take 1 is the storyboard's)."""
        with self._tx() as db:
            last = db.execute("SELECT MAX(take) FROM takes WHERE job=? AND shot=?", (job, shot)).fetchone()[0]
            n = (last or 1) + 1
            db.execute("INSERT INTO takes(job, shot, take, overrides, created, approved) VALUES(?,?,?,?,?,0)",
                       (job, shot, n, json.dumps(overrides), time.time()))
        return n

    def approve_take(self, job: str, shot: str, take: int) -> None:
        """The cut uses `take` of `shot` (1: the storyboard's, which no row marks)."""
        with self._tx() as db:
            db.execute("UPDATE takes SET approved=(take=?) WHERE job=? AND shot=?", (take, job, shot))

    def takes(self, job: str) -> list[TakeRow]:
        return self._rows("SELECT * FROM takes WHERE job=? ORDER BY shot, take", job)

    # -- checkpoints (farm/job/checkpoints.py) --------------------------------------------------------

    def save_checkpoint(self, job: str, seg: str, *, step: int, steps: int, key: str, sha256: str, size: int) -> None:
        """The segment's latest checkpoint (its file already published), replacing the one before."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO checkpoints(job, segment, step, steps, key, sha256, bytes, updated) "
                       "VALUES(?,?,?,?,?,?,?,?)", (job, seg, step, steps, key, sha256, size, time.time()))

    def drop_checkpoint(self, job: str, seg: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM checkpoints WHERE job=? AND segment=?", (job, seg))

    def checkpoints(self, job: str) -> list[CheckpointRow]:
        return self._rows("SELECT * FROM checkpoints WHERE job=? ORDER BY segment", job)

    # -- events -------------------------------------------------------------------------------------

    def event(self, kind: str, detail: str = "", *, job: str | None = None, worker: str | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events(ts, job, worker, kind, detail) VALUES(?,?,?,?,?)",
                       (time.time(), job, worker, kind, detail))

    def events(self, job: str | None = None) -> list[EventRow]:
        if job is None:
            return self._rows("SELECT * FROM events ORDER BY seq")
        return self._rows("SELECT * FROM events WHERE job=? ORDER BY seq", job)


def _check(status: str, allowed: tuple[str, ...]) -> None:
    if status not in allowed:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(allowed)}")
