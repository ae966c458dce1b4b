"""The farm API as a front end sees it (the CLI today, the web studio next), on a pool without Ray:
submit, list, look at a job, reprioritise, cancel, and read its events as a stream."""
from __future__ import annotations

import pytest

from farm.api.embedded import EmbeddedFarm
from farm.api.protocol import FarmAPI, JobRequest
from farm.job.ledger import Ledger
from farm.media.decode import probe


def test_submit_follow_and_read_back_a_job_through_the_api(plan_of, tmp_path, FakePool):
    farm: FarmAPI = EmbeddedFarm(FakePool([2]))
    summary = farm.submit(JobRequest(plan_of(tmp_path, "ep1", 3), tmp_path / "ep1", priority=5))
    assert (summary.state, summary.segments, summary.done, summary.priority) == ("running", 3, 0, 5)
    assert [j.id for j in farm.jobs()] == [summary.id]
    with pytest.raises(ValueError, match="already queued"):
        farm.submit(JobRequest(plan_of(tmp_path, "ep1", 3), tmp_path / "other", job_id=summary.id))
    assert farm.set_priority(summary.id, 20) and farm.jobs()[0].priority == 20
    with Ledger(tmp_path / "ep1" / "ledger.sqlite") as ledger:
        assert ledger.job(summary.id)["priority"] == 20

    farm.wait([summary.id])
    detail = farm.job(summary.id)
    assert detail.summary.state == "done" and detail.summary.done == 3 and detail.summary.eta_s == 0.0
    assert [s.id for s in detail.shots] == ["s0", "s1", "s2"]
    assert {s.status for s in detail.segments} == {"published"} and all(s.worker for s in detail.segments)
    assert [a.status for a in detail.attempts] == ["done"] * 3
    assert probe(detail.summary.episode)["frames"] == 3 * 17
    assert (tmp_path / "ep1" / "report.html").is_file()      # the report observes the job's end
    assert not farm.cancel(summary.id) and not farm.set_priority(summary.id, 0)   # it has ended


def test_the_event_stream_is_in_order_and_resumes_from_a_cursor(plan_of, tmp_path, FakePool):
    farm = EmbeddedFarm(FakePool([1]))
    job = farm.submit(JobRequest(plan_of(tmp_path, "ep2", 2), tmp_path / "ep2")).id
    first = farm.events(job)
    assert [e.kind for e in first] == ["opened"]
    farm.wait()
    rest = farm.events(job, since=len(first))
    kinds = [e.kind for e in rest]
    assert kinds.count("attempt_started") == kinds.count("published") == 2
    assert kinds[-1] == "finished" and rest[-1].status == "done"
    assert kinds.index("stage") > max(i for i, k in enumerate(kinds) if k == "published")   # stitching, last
    assert farm.events(job, since=len(first) + len(rest)) == []
    assert farm.events("no-such-job") == [] and farm.job("no-such-job") is None


def test_a_cancelled_job_through_the_api_stops_and_says_so(plan_of, tmp_path, FakePool):
    farm = EmbeddedFarm(FakePool([1]))
    job = farm.submit(JobRequest(plan_of(tmp_path, "ep3", 3), tmp_path / "ep3")).id
    farm.loop._schedule()                  # an attempt is running
    assert farm.cancel(job)
    assert farm.jobs()[0].state == "cancelling"
    farm.wait()
    assert farm.job(job).summary.state == "cancelled"
    assert [e.status for e in farm.events(job) if e.kind == "finished"] == ["cancelled"]


def test_the_same_output_submitted_again_continues_its_job_and_a_finished_job_lets_go_of_its_bytes(plan_of, 
        tmp_path, FakePool):
    farm = EmbeddedFarm(FakePool([1]))
    plan = plan_of(tmp_path, "ep4", 2)
    first = farm.submit(JobRequest(plan, tmp_path / "ep4", assets={"unused": b"x" * 1000})).id
    farm.wait()
    job = farm.loop.jobs[first]
    assert job.assets is None and job._pngs == {}          # nothing but the summary is kept
    again = farm.submit(JobRequest(plan, tmp_path / "ep4", job_id="a-new-id"))
    assert again.id == first and again.reused == 2          # the folder's job, its segments kept
    farm.wait()
    with Ledger(tmp_path / "ep4" / "ledger.sqlite") as ledger:
        assert [j["id"] for j in ledger.jobs()] == [first]


def test_a_long_lived_farm_keeps_a_bounded_event_log_and_cursors_stay_valid():
    from farm.api.views import EventLog
    from farm.job.events import JobEvent

    class J:
        id = "j"

    log = EventLog(keep=10)
    for i in range(25):
        log(J(), JobEvent("j", "stage", detail=str(i)))
    assert [e.detail for e in log.since("j", 20)] == ["20", "21", "22", "23", "24"]   # counted from the start
    assert [e.detail for e in log.since("j", 0)] == [str(i) for i in range(15, 25)]   # the oldest went
    assert len(log.by_job["j"]) == 10


def test_a_paused_job_starts_nothing_new_while_another_goes_on_and_finishes_once_resumed(plan_of, tmp_path, FakePool):
    pool = FakePool([1])
    farm = EmbeddedFarm(pool)
    held = farm.submit(JobRequest(plan_of(tmp_path, "held", 2), tmp_path / "held", priority=10)).id
    other = farm.submit(JobRequest(plan_of(tmp_path, "other", 2), tmp_path / "other")).id
    assert farm.pause(held) and not farm.pause(held)          # already paused: nothing to do
    assert next(j for j in farm.jobs() if j.id == held).state == "paused"
    farm.wait([other])                                        # the lower priority job runs meanwhile
    assert len(pool.calls) == 2 and farm.job(held).summary.done == 0   # the other job's two segments only
    assert [e.detail for e in farm.events(held) if e.kind == "stage"][-1].startswith("paused")
    assert farm.resume(held) and farm.job(held).summary.state == "running"
    farm.wait([held])
    assert farm.job(held).summary.state == "done" and farm.job(held).summary.done == 2
    assert not farm.pause(held)                               # it has ended
