"""The one state machine, and the job that walks it: every legal change is written to the ledger and
told to observers; an illegal one is refused before anything is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.job.job import MAX_ATTEMPTS, Job
from farm.job.ledger import Ledger
from farm.job.results import SegmentResult
from farm.job.states import ATTEMPT, JOB, SEGMENT, IllegalTransition
from farm.media.encode import encode_mp4_bytes, png_bytes
from storyboard.load import load
from storyboard.plan import build_plan


def test_the_machines_allow_the_documented_moves_and_nothing_else():
    assert SEGMENT.allowed("pending", "running") and SEGMENT.allowed("running", "published")
    assert SEGMENT.allowed("running", "pending")          # a failed attempt, retried
    assert SEGMENT.allowed("published", "pending")        # its file changed on disk
    for old, new in [("published", "running"), ("published", "failed"), ("failed", "published"),
                     ("skipped", "running"), ("pending", "pending")]:
        assert not SEGMENT.allowed(old, new), (old, new)
        with pytest.raises(IllegalTransition, match=f"from '{old}' to '{new}'"):
            SEGMENT.move(old, new, "s.0")
    for end in ("done", "died", "error", "oom", "timeout", "interrupted", "cancelled"):
        assert ATTEMPT.allowed("running", end) and not ATTEMPT.allowed(end, "running")
    assert JOB.allowed("interrupted", "running") and not JOB.allowed("queued", "done")
    with pytest.raises(IllegalTransition, match="unknown status 'exploded'"):
        JOB.move("running", "exploded")


@pytest.fixture
def job(tmp_path: Path) -> Job:
    (tmp_path / "sb.yaml").write_text(
        "sakuga: 1\ntitle: States\noutput: {width: 64, height: 64, fps: 16}\nscenes:\n  - id: one\n    shots:\n"
        "      - {id: a, frames: 17, prompt: a}\n      - {id: b, frames: 17, prompt: b, start: previous}\n")
    job = Job("j", build_plan(load(tmp_path / "sb.yaml")), tmp_path / "out")
    job.events = []
    job.observe(lambda j, e: j.events.append((e.kind, e.segment, e.status)))
    job.open(None)
    yield job
    job.close()


def result(seg) -> SegmentResult:
    frames = np.zeros((seg.frames, seg.height, seg.width, 3), np.uint8)
    return SegmentResult(encode_mp4_bytes(frames, seg.fps, seg.width, seg.height, preset="ultrafast"),
                         png_bytes(frames[-1]), {}, 0.0, 0.1, 0.1, "w", "node")


def segments(job: Job) -> dict[str, str]:
    with Ledger(job.folder.ledger) as ledger:
        return {s["id"]: s["status"] for s in ledger.segments(job.id)}


def test_an_attempt_then_publish_walks_the_machine_writes_the_ledger_and_tells_observers(job):
    a = job.by_id["a.0"]
    n = job.start_attempt(a, worker="w", node="node", degree=1, offload=False)
    assert segments(job)["a.0"] == "running" and job.state["a.0"].status == "running"
    job.publish(a, result(a), n, worker="w", degree=1, cache=None)
    assert segments(job)["a.0"] == "published" and job.is_ready(job.by_id["b.0"])
    assert job.folder.segment("a.0", ".mp4").is_file()
    assert ("attempt_started", "a.0", "running") in job.events and ("published", "a.0", "published") in job.events


def test_illegal_changes_are_refused_before_the_ledger_is_touched(job):
    a = job.by_id["a.0"]
    n = job.start_attempt(a, worker="w", node="node", degree=1, offload=False)
    job.publish(a, result(a), n, worker="w", degree=1, cache=None)
    with Ledger(job.folder.ledger) as ledger:
        before = (ledger.segments(job.id), ledger.attempts(job.id))
    with pytest.raises(IllegalTransition):
        job.start_attempt(a, worker="w", node="node", degree=1, offload=False)   # published: never again
    with pytest.raises(IllegalTransition):
        job.fail(a, "too late")
    with pytest.raises(IllegalTransition):
        job.finish(None) or job.finish(None)                                    # a job ends once
    with Ledger(job.folder.ledger) as ledger:
        after = (ledger.segments(job.id), ledger.attempts(job.id))
    assert [r["status"] for r in after[0]] == [r["status"] for r in before[0]] == ["published", "pending"]
    assert len(after[1]) == len(before[1]) == 1


def test_failed_attempts_retry_until_the_limit_then_fail_the_segment_and_skip_its_chain(job):
    a = job.by_id["a.0"]
    retries = []
    for _ in range(MAX_ATTEMPTS):
        n = job.start_attempt(a, worker="w", node="node", degree=1, offload=False)
        retries.append(job.end_attempt(a, n, "error", "boom"))
    assert retries == [True] * (MAX_ATTEMPTS - 1) + [False]
    assert segments(job) == {"a.0": "failed", "b.0": "skipped"}
    assert job.settled and job.failed_shots == ["a", "b"]
    job.finish(None)
    assert job.status == "failed" and job.events[-1] == ("finished", None, "failed")


def test_an_interrupted_or_cancelled_attempt_is_not_held_against_the_segment(job):
    a = job.by_id["a.0"]
    for status in ("interrupted", "cancelled", "interrupted"):
        n = job.start_attempt(a, worker="w", node="node", degree=1, offload=False)
        assert job.end_attempt(a, n, status, "stopped") is False
    assert job.state["a.0"].status == "pending" and segments(job)["a.0"] == "pending"


def test_a_cancelled_job_ends_cancelled_and_an_interrupted_one_resumable(tmp_path, job):
    assert job.cancel() and not job.cancel()
    job.finish(None)
    with Ledger(job.folder.ledger) as ledger:
        assert ledger.job("j")["status"] == "cancelled"
    job.close()                     # one writer per folder: the first job lets go before the next opens
    reopened = Job("j", job.plan, job.out)
    reopened.open(None)             # cancelled → running: the machine allows a resume
    a = reopened.by_id["a.0"]
    reopened.start_attempt(a, worker="w", node="node", degree=1, offload=False)
    reopened.interrupt()
    with Ledger(job.folder.ledger) as ledger:
        assert ledger.job("j")["status"] == "interrupted"
        assert [x["status"] for x in ledger.attempts("j")] == ["interrupted"]
        assert ledger.segment("j", "a.0")["status"] == "pending"
    reopened.close()
