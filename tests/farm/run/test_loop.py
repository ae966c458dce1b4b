"""The farm loop without Ray: a fake pool answers in-process, so the loop's decisions — what it starts,
how it retries, when it gives up, what it delivers — are tested on their own. The job is real (its
ledger is SQLite in tmp_path): the loop only asks and tells it."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.job.results import ShareDone
from farm.run.loop import FarmLoop
from storyboard.load import load
from storyboard.plan import build_plan

ROOT = Path(__file__).resolve().parents[3]


def preset(folder: Path, degrees: list[int]) -> str:
    data = yaml.safe_load((ROOT / "configs" / "models" / "noop.yaml").read_text())
    data.update(name="fake", degrees=degrees)
    data["cost"].update(linear_s_per_ktoken=1.0, parallel_efficiency={d: 1.0 for d in degrees})
    (folder / "fake.yaml").write_text(yaml.safe_dump(data))
    return "fake"


def plan_of(tmp_path: Path, monkeypatch, degrees=(1,)):
    """Three shots, b continuing a's last frame: a.0 → b.0, and c alone."""
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    name = preset(tmp_path, list(degrees))
    (tmp_path / "sb.yaml").write_text(
        f"sakuga: 1\ntitle: Loop\nmodel: {name}\noutput: {{width: 64, height: 64, fps: 16}}\nscenes:\n"
        "  - id: one\n    shots:\n      - {id: a, frames: 17, prompt: a}\n"
        "      - {id: b, frames: 17, prompt: b, start: previous}\n      - {id: c, frames: 17, prompt: c}\n")
    return build_plan(load(tmp_path / "sb.yaml"))


def run(pool, job: Job, **loop_options) -> list[Job]:
    delivered = []
    loop = FarmLoop(pool, deliver=lambda j: delivered.append(j) or None, observers=(), **loop_options)
    loop.add(job)
    loop.run()
    return delivered


def attempts(job: Job) -> dict[str, list[tuple]]:
    with Ledger(job.folder.ledger) as ledger:
        rows = ledger.attempts(job.id)
    out: dict[str, list[tuple]] = {}
    for a in rows:
        out.setdefault(a["segment"], []).append((a["status"], a["worker"], a["degree"], bool(a["offload"])))
    return out


def test_every_segment_is_published_once_and_dependents_wait_for_their_upstream(tmp_path, monkeypatch, FakePool):
    pool = FakePool([2])
    job = Job("j", plan_of(tmp_path, monkeypatch), tmp_path / "out")
    delivered = run(pool, job)
    assert delivered == [job] and job.status == "done" and pool.shut
    assert {s: [a[0] for a in tries] for s, tries in attempts(job).items()} == {
        "a.0": ["done"], "b.0": ["done"], "c.0": ["done"]}
    order = [c.seg.id for c in pool.calls]
    assert order.index("a.0") < order.index("b.0")
    for seg in ("a.0", "b.0", "c.0"):
        assert job.folder.segment(seg, ".mp4").is_file() and job.folder.segment(seg, ".png").is_file()


def test_a_worker_that_dies_is_replaced_and_the_segment_retried_by_a_fresh_one(tmp_path, monkeypatch, FakePool):
    pool = FakePool([2], {"a.0": ["die", "ok"]})
    job = Job("j", plan_of(tmp_path, monkeypatch), tmp_path / "out")
    run(pool, job)
    [(first, w1, _, _), (second, w2, _, _)] = attempts(job)["a.0"]
    assert (first, second) == ("died", "done") and w1 != w2
    assert pool.replaced == [w1]
    assert job.status == "done"


def test_three_failed_attempts_fail_the_segment_skip_its_dependents_and_still_deliver(tmp_path, monkeypatch, FakePool):
    pool = FakePool([3], {"a.0": ["error"] * 3})
    job = Job("j", plan_of(tmp_path, monkeypatch), tmp_path / "out")
    delivered = run(pool, job)
    assert [a[0] for a in attempts(job)["a.0"]] == ["error"] * 3
    assert "b.0" not in attempts(job)                      # never started: upstream failed
    assert {s: st.status for s, st in job.state.items()} == {"a.0": "failed", "b.0": "skipped", "c.0": "published"}
    assert delivered == [job] and job.status == "failed" and job.failed_shots == ["a", "b"]
    with Ledger(job.folder.ledger) as ledger:
        assert ledger.job("j")["status"] == "failed"
        assert {s["id"]: s["status"] for s in ledger.segments("j")} == {
            "a.0": "failed", "b.0": "skipped", "c.0": "published"}


def test_out_of_memory_is_retried_wider_and_then_with_offload(tmp_path, monkeypatch, FakePool):
    pool = FakePool([2], {"c.0": ["oom", "oom", "ok"]})
    job = Job("j", plan_of(tmp_path, monkeypatch, degrees=(1, 2)), tmp_path / "out")
    run(pool, job)
    tries = [(status, degree, offload) for status, _, degree, offload in attempts(job)["c.0"]]
    # out of memory alone → the policy may only give it 2 GPUs; out of memory at the widest → offload
    assert tries[1:] == [("oom", 2, False), ("done", 2, True)], tries
    assert tries[0][0] == "oom"


def test_a_cancelled_job_ends_its_running_attempt_and_is_not_delivered(tmp_path, monkeypatch, FakePool):
    pool = FakePool([1])
    job = Job("j", plan_of(tmp_path, monkeypatch), tmp_path / "out")
    delivered = []
    loop = FarmLoop(pool, deliver=lambda j: delivered.append(j), observers=())
    loop.add(job)
    loop._schedule()                       # one attempt starts; cancel before its result is collected
    assert loop.cancel("j") and not loop.cancel("j")
    loop.run()
    assert delivered == [] and job.status == "cancelled"
    assert [a[0] for tries in attempts(job).values() for a in tries] == ["cancelled"]
    assert pool.replaced                   # the worker running it was replaced, not waited for


def test_a_broken_pool_answer_is_an_error_not_a_silent_success(tmp_path, monkeypatch, FakePool):
    """A gang whose every member answers without the segment (no rank 0 result) fails the attempt."""
    pool = FakePool([2])
    pool.result = lambda call: ShareDone(0.0, 0.0, call.slot.name, call.slot.node_id)
    job = Job("j", plan_of(tmp_path, monkeypatch), tmp_path / "out")
    run(pool, job)
    assert job.status == "failed"
    assert all(a[0] == "error" for tries in attempts(job).values() for a in tries)


@pytest.mark.parametrize("nodes", [[1], [4]])
def test_the_loop_never_runs_two_attempts_on_one_gpu(tmp_path, monkeypatch, nodes, FakePool):
    pool = FakePool(nodes)
    busy_twice = []
    real = pool.render

    def render(slot, *args):
        if slot.busy:
            busy_twice.append(slot.name)
        return real(slot, *args)

    pool.render = render
    job = Job("j", plan_of(tmp_path, monkeypatch, degrees=(1, 2)), tmp_path / "out")
    run(pool, job)
    assert busy_twice == [] and job.status == "done"


def test_a_picture_swapped_after_validation_fails_its_shot_cleanly(tmp_path, monkeypatch, FakePool):
    from PIL import Image

    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    name = preset(tmp_path, [1])
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "board.png")
    (tmp_path / "sb.yaml").write_text(
        f"sakuga: 1\ntitle: Swap\nmodel: {name}\noutput: {{width: 64, height: 64, fps: 16}}\nscenes:\n"
        "  - id: one\n    shots:\n      - {id: a, frames: 17, prompt: a, start: board.png}\n"
        "      - {id: c, frames: 17, prompt: c}\n")
    plan = build_plan(load(tmp_path / "sb.yaml"))
    Image.new("RGB", (32, 32), (30, 30, 200)).save(tmp_path / "board.png")   # swapped after validation
    pool = FakePool([1])
    job = Job("j", plan, tmp_path / "out")
    run(pool, job)
    assert job.state["a.0"].status == "failed" and "changed since it was validated" in job.state["a.0"].error
    assert job.state["c.0"].status == "published"
    assert all(c.seg.id != "a.0" for c in pool.calls)      # never rendered from the other picture
