"""The ledger: WAL on disk, segment sync across edits and crashes, attempts, and durability under SIGKILL."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from farm.job.ledger import VERSION, Ledger, LedgerError

ROOT = Path(__file__).resolve().parents[3]


def seg(id: str, hash: str = "h", deps: tuple[str, ...] = ()) -> dict:
    return {"id": id, "shot": id.split(".")[0], "hash": hash, "deps": list(deps), "frames": 33, "model": "m",
            "estimate_s": 1.5}


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.upsert_job("j", source="sb.yaml", out=str(tmp_path))
        yield ledger


def test_the_database_is_in_wal_mode_with_full_sync(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 2   # FULL
        assert ledger.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    # WAL is a property of the file: a plain connection sees it too
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_job_round_trips_and_upsert_keeps_its_creation_time(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.upsert_job("a", source="a.yaml", out="/o/a", priority=2, config={"gpus": 4})
        ledger.upsert_job("b", source="b.yaml", out="/o/b")
        first = ledger.job("a")
        assert first["source"] == "a.yaml" and first["out"] == "/o/a" and first["priority"] == 2
        assert first["config"] == {"gpus": 4} and first["status"] == "queued"

        ledger.upsert_job("a", source="a2.yaml", out="/o/a2", priority=5, config={"gpus": 1}, status="running")
        again = ledger.job("a")
        assert (again["source"], again["out"], again["priority"], again["config"], again["status"]) == \
            ("a2.yaml", "/o/a2", 5, {"gpus": 1}, "running")
        assert again["created"] == first["created"] and again["updated"] >= first["updated"]

        ledger.set_job_status("a", "failed", "1 shot(s) failed: s2")
        assert ledger.job("a")["status"] == "failed" and ledger.job("a")["detail"] == "1 shot(s) failed: s2"
        assert [j["id"] for j in ledger.jobs()] == ["a", "b"]
        assert ledger.job("nope") is None
        with pytest.raises(ValueError, match="unknown status"):
            ledger.set_job_status("a", "finished")


def test_sync_segments_inserts_new_segments_as_pending(ledger):
    status = ledger.sync_segments("j", [seg("s1.0"), seg("s1.1", deps=("s1.0",)), seg("s2.0")])
    assert status == {"s1.0": "pending", "s1.1": "pending", "s2.0": "pending"}
    rows = ledger.segments("j")
    assert [r["id"] for r in rows] == ["s1.0", "s1.1", "s2.0"]
    assert rows[1]["deps"] == ["s1.0"] and rows[1]["shot"] == "s1" and rows[1]["attempts"] == 0
    assert ledger.counts("j") == {"pending": 3}


def test_sync_keeps_published_segments_and_resets_edited_ones(ledger):
    ledger.sync_segments("j", [seg("a", "h1"), seg("b", "h2")])
    for s in ("a", "b"):
        n = ledger.start_attempt("j", s, worker="w0")
        ledger.end_attempt("j", s, n, "done")
        ledger.publish("j", s, file_sha256=f"sha-{s}", record={"seconds": 1.0})

    status = ledger.sync_segments("j", [seg("a", "h1"), seg("b", "h2-edited")])
    assert status == {"a": "published", "b": "pending"}
    a, b = ledger.segment("j", "a"), ledger.segment("j", "b")
    assert a["file_sha256"] == "sha-a" and a["record"] == {"seconds": 1.0} and a["attempts"] == 1
    assert b["hash"] == "h2-edited" and b["file_sha256"] is None and b["record"] is None and b["attempts"] == 0
    assert [t["segment"] for t in ledger.attempts("j")] == ["a"]   # the old content's history went with it
    assert ledger.start_attempt("j", "b", worker="w1") == 1


def test_sync_turns_a_crashed_running_segment_pending_and_its_attempt_interrupted(ledger):
    ledger.sync_segments("j", [seg("a"), seg("b")])
    ledger.set_segment_status("j", "b", "failed", "boom")
    ledger.start_attempt("j", "a", worker="w0")           # ... and the driver dies here

    assert ledger.sync_segments("j", [seg("a"), seg("b")]) == {"a": "pending", "b": "failed"}
    [attempt] = ledger.attempts("j", "a")
    assert attempt["status"] == "interrupted" and attempt["ended"] is not None
    assert ledger.start_attempt("j", "a", worker="w1") == 2   # numbering carries on, no clash


def test_sync_deletes_segments_no_longer_in_the_plan_with_their_attempts(ledger):
    ledger.sync_segments("j", [seg("a"), seg("b"), seg("c")])
    ledger.start_attempt("j", "b", worker="w0")
    assert ledger.sync_segments("j", [seg("a"), seg("c")]) == {"a": "pending", "c": "pending"}
    assert ledger.segment("j", "b") is None
    assert ledger.attempts("j", "b") == [] and ledger.attempts("j") == []


def test_sync_is_per_job(ledger, tmp_path):
    ledger.upsert_job("k", source="k.yaml", out=str(tmp_path))
    ledger.sync_segments("j", [seg("a")])
    ledger.sync_segments("k", [seg("x")])
    assert [s["id"] for s in ledger.segments("j")] == ["a"]
    assert [s["id"] for s in ledger.segments("k")] == ["x"]


def test_attempts_are_numbered_per_segment_and_keep_how_they_ended(ledger):
    ledger.sync_segments("j", [seg("a"), seg("b")])
    n1 = ledger.start_attempt("j", "a", worker="w0", node="n0", degree=2, offload=True)
    assert n1 == 1 and ledger.segment("j", "a")["status"] == "running"
    ledger.end_attempt("j", "a", n1, "oom", "CUDA out of memory")
    a = ledger.segment("j", "a")
    assert a["status"] == "pending" and a["error"] == "CUDA out of memory" and a["attempts"] == 1

    n2 = ledger.start_attempt("j", "a", worker="w1")
    nb = ledger.start_attempt("j", "b", worker="w0")
    assert (n2, nb) == (2, 1)
    ledger.end_attempt("j", "a", n2, "done")
    assert ledger.segment("j", "a")["status"] == "running"    # done, not yet published
    ledger.publish("j", "a", file_sha256="abc", record={"k": 1})
    a = ledger.segment("j", "a")
    assert a["status"] == "published" and a["error"] is None and a["file_sha256"] == "abc"

    tries = ledger.attempts("j", "a")
    assert [(t["n"], t["status"], t["worker"]) for t in tries] == [(1, "oom", "w0"), (2, "done", "w1")]
    assert (tries[0]["node"], tries[0]["degree"], tries[0]["offload"]) == ("n0", 2, 1)
    assert tries[0]["error"] == "CUDA out of memory" and tries[1]["error"] is None
    assert all(t["ended"] >= t["started"] for t in tries)
    assert [(t["segment"], t["n"]) for t in ledger.attempts("j")] == [("a", 1), ("a", 2), ("b", 1)]
    assert ledger.counts("j") == {"published": 1, "running": 1}


def test_start_attempt_on_an_unknown_segment_raises(ledger):
    with pytest.raises(KeyError):
        ledger.start_attempt("j", "ghost", worker="w0")


def test_interrupt_running_marks_running_attempts_and_frees_their_segments(ledger):
    ledger.sync_segments("j", [seg("a"), seg("b"), seg("c")])
    ledger.start_attempt("j", "a", worker="w0")
    ledger.start_attempt("j", "b", worker="w1")
    n = ledger.start_attempt("j", "c", worker="w2")
    ledger.end_attempt("j", "c", n, "done")
    ledger.publish("j", "c", file_sha256="x", record={})

    assert ledger.interrupt_running("j") == 2
    assert ledger.counts("j") == {"pending": 2, "published": 1}
    assert {t["segment"]: t["status"] for t in ledger.attempts("j")} == \
        {"a": "interrupted", "b": "interrupted", "c": "done"}
    assert all(t["ended"] is not None for t in ledger.attempts("j"))
    assert ledger.interrupt_running("j") == 0


def test_events_are_kept_in_order_and_filtered_by_job(ledger):
    ledger.event("worker_lost", "w3 died", job="j", worker="w3")
    ledger.event("pool", "scaled to 4")
    ledger.event("corrupt", "a.0", job="j")
    assert [e["kind"] for e in ledger.events()] == ["worker_lost", "pool", "corrupt"]
    assert [(e["kind"], e["worker"]) for e in ledger.events("j")] == [("worker_lost", "w3"), ("corrupt", None)]
    assert ledger.events("j")[0]["detail"] == "w3 died"


def test_what_was_committed_survives_a_sigkill_with_the_connection_open(tmp_path):
    path = tmp_path / "ledger.sqlite"
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from farm.job.ledger import Ledger
        ledger = Ledger({str(path)!r})
        ledger.upsert_job("j", source="sb.yaml", out="o", status="running")
        ledger.sync_segments("j", [{{"id": s, "shot": "s", "hash": "h" + s, "deps": [], "frames": 9,
                                    "model": "m", "estimate_s": 1.0}} for s in ("a", "b", "c", "d")])
        for s in ("a", "b", "c"):
            ledger.publish("j", s, file_sha256="sha-" + s, record={{"seg": s}})
        ledger.start_attempt("j", "d", worker="w0")
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
    assert result.returncode == -9                            # really killed, no clean close
    assert (tmp_path / "ledger.sqlite-wal").exists()          # the commits were still in the WAL

    with Ledger(path) as ledger:
        assert ledger.counts("j") == {"published": 3, "running": 1}
        assert {s["id"]: s["file_sha256"] for s in ledger.segments("j")} == \
            {"a": "sha-a", "b": "sha-b", "c": "sha-c", "d": None}
        assert ledger.segment("j", "b")["record"] == {"seg": "b"}
        assert ledger.job("j")["status"] == "running"
        # the resumed run: the crashed attempt is pending again, the published stay published
        assert ledger.sync_segments("j", [seg(s, "h" + s) for s in "abcd"]) == \
            {"a": "published", "b": "published", "c": "published", "d": "pending"}


def test_a_file_that_is_not_sqlite_is_refused_naming_it(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(LedgerError, match=str(path)):
        Ledger(path)
    assert issubclass(LedgerError, ValueError)


def test_a_ledger_from_a_newer_sakuga_is_refused_naming_it(tmp_path):
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(LedgerError, match="newer") as info:
        Ledger(path)
    assert str(path) in str(info.value)


def test_two_ledgers_on_one_file_see_each_others_commits(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as writer, Ledger(path) as reader:
        writer.upsert_job("j", source="sb.yaml", out="o")
        writer.sync_segments("j", [seg("a"), seg("b")])
        assert [s["id"] for s in reader.segments("j")] == ["a", "b"]
        n = writer.start_attempt("j", "a", worker="w0")
        assert reader.segment("j", "a")["status"] == "running"
        writer.end_attempt("j", "a", n, "done")
        writer.publish("j", "a", file_sha256="s", record={})
        assert reader.counts("j") == {"published": 1, "pending": 1}
        reader.event("note", "from the reader", job="j")          # and the other way round
        assert [e["detail"] for e in writer.events("j")] == ["from the reader"]


def test_a_ledger_on_network_storage_uses_the_rollback_journal_and_wal_elsewhere(tmp_path):
    from farm.job.ledger import filesystem_type, journal_mode

    mounts = ("/dev/sda1 / ext4 rw 0 0\n"
              "server:/export /studio nfs4 rw,vers=4.2 0 0\n"
              "tmpfs /studio/scratch tmpfs rw 0 0\n"
              "//nas/share /mnt/my\\040share cifs rw 0 0\n")
    assert filesystem_type(Path("/studio/ep1/out"), mounts) == "nfs4"
    assert filesystem_type(Path("/studio/scratch/out"), mounts) == "tmpfs"     # the longest mount point wins
    assert filesystem_type(Path("/studiox/out"), mounts) == "ext4"             # a prefix of a name is not inside
    assert filesystem_type(Path("/mnt/my share/out"), mounts) == "cifs"
    assert journal_mode(Path("/studio/ep1/out/ledger.sqlite"), mounts) == "DELETE"
    assert journal_mode(Path("/home/a/out/ledger.sqlite"), mounts) == "WAL"
    with Ledger(tmp_path / "ledger.sqlite") as ledger:    # this machine's tmp: a local file system
        assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == journal_mode(tmp_path / "ledger.sqlite").lower()
