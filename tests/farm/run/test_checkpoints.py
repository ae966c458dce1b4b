"""Chaos tests of step checkpoints with the tiny Wan model through real local Ray workers: a worker
killed after step 3 of 4 costs one step and changes nothing; a segment stopped at step 2 resumes on a
gang of two; an urgent job on a busy farm starts within one step of the segment it displaces.

One Ray session (the farm's `ray_cluster`), the tiny model at 64x64, 17 frames, 4 steps, a checkpoint
after every step; the chaos hooks of farm/workers/control.py (SAKUGA_CHAOS_*, forwarded by the pool to
the workers it starts) kill a worker at a step and make each step last as long as a real one's.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.wan import tiny
from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.media.decode import read_png
from farm.run.loop import FarmLoop
from farm.scheduling.policy import Start, Stop
from farm.workers.pool import WorkerPool
from storyboard.load import load
from storyboard.plan import build_plan

ROOT = Path(__file__).resolve().parents[3]
STEP_S = 0.6    # each step's boundary waits this long: a stop asked within it lands at the next boundary

# Bounds:
# - a worker killed and the segment resumed on one GPU: the same computation on the same bytes (the
#   checkpoint holds the float32 latents and the sampler's state exactly), so equal up to nothing; 1e-6
#   leaves room for nothing but the last bit, while one step more or less moves latents by ~0.1.
RESUME_ATOL = 1e-6
# - resumed on a gang of two: the gang's sharded attention is within 1e-5 of one process per forward
#   (fp32, values of order 1; docs/scaling.md), here for the last two of four steps.
GANG_ATOL = 1e-5


def board(folder: Path, name: str, prompt: str, *, shots: int = 1, degrees=(1, 2),
          linear_s_per_ktoken: float | None = None) -> Path:
    """A storyboard of one-segment shots of a `wan-tiny` copy that checkpoints after every step (and,
    with `linear_s_per_ktoken`, that the cost model takes for a long render: worth stopping for)."""
    data = yaml.safe_load((ROOT / "configs" / "models" / "wan-tiny.yaml").read_text())
    model = f"tiny-{name}"
    data.update(name=model, degrees=list(degrees))
    data["options"]["checkpoint"] = {"every_steps": 1, "min_segment_s": 0}
    if linear_s_per_ktoken is not None:
        data["cost"]["linear_s_per_ktoken"] = linear_s_per_ktoken
    (folder / f"{model}.yaml").write_text(yaml.safe_dump(data))
    path = folder / f"{name}.yaml"
    lines = "".join(f"      - {{id: s{i}, frames: 17, prompt: {prompt} {i}}}\n" for i in range(shots))
    path.write_text(f"sakuga: 1\ntitle: {name}\nmodel: {model}\noutput: {{width: 64, height: 64, fps: 16}}\n"
                    f"scenes:\n  - id: one\n    shots:\n{lines}")
    return path


def metrics(out: Path, seg: str = "s0.0") -> dict:
    return json.loads((out / "segments" / f"{seg}.json").read_text())["metrics"]


def outcome(out: Path) -> dict:
    return {"latents": np.load(out / "segments" / "s0.0.latents.npy"),
            "png": read_png((out / "segments" / "s0.0.png").read_bytes()), "metrics": metrics(out)}


def attempts(out: Path, job: str) -> list[tuple[str, int]]:
    with Ledger(out / "ledger.sqlite") as ledger:
        return [(a["status"], a["degree"]) for a in ledger.attempts(job)]


def finish(loop: FarmLoop, *jobs: Job) -> None:
    """Run the loop until `jobs` have ended, keeping its pool (`FarmLoop.run` shuts it down)."""
    while not all(j.ended for j in jobs):
        loop.step()
    assert all(j.status == "done" for j in jobs), [j.error for j in jobs]


class Widen:
    """Test policy: a segment on one GPU; once it has a checkpoint (with `job`), stopped, and started
    again on a gang of two. Without `job` it never stops anything: one GPU, start to end."""
    name = "widen"

    def __init__(self, job: Job | None = None):
        self.job = job

    def decide(self, view):
        starts = []
        for task in view.ready:
            degree = 2 if task.done and self.job is not None else 1
            if len(view.free.get(0, [])) >= degree:
                starts.append(Start(task.id, 0, tuple(view.free[0][:degree])))
        return starts

    def stops(self, view):
        if self.job is None:
            return []
        seg = self.job.plan.segment("s0.0")
        return [Stop(r.task.id) for r in view.running
                if len(r.gpus) == 1 and not r.stopping and self.job.checkpoints.step(seg) >= 1]


@pytest.fixture(scope="module")
def models(tmp_path_factory, sakuga_cache) -> Path:
    # built here once, before any worker starts: workers that all find it missing build it at once
    tiny.ensure(sakuga_cache / "models" / "wan-tiny-v2")
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAKUGA_MODELS", str(folder))
        mp.setenv("SAKUGA_WORKER_THREADS", "1")   # one thread per worker: the same float order each time
        yield folder


@pytest.fixture(scope="module")
def pool(ray_cluster, models):
    """Two workers whose every step lasts STEP_S (loaded once for the tests that share them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAKUGA_CHAOS_STEP_S", str(STEP_S))
        workers = WorkerPool(2)
    yield workers
    workers.shutdown()


@pytest.fixture(scope="module")
def uninterrupted(pool, models) -> dict:
    """The segment rendered once, start to end, on one GPU."""
    job = Job("whole", build_plan(load(board(models, "walk", "a long walk"))), models / "whole",
              config={"keep_latents": True})
    loop = FarmLoop(pool, scheduler=Widen(), deliver=lambda job: None, observers=())
    loop.add(job)
    finish(loop, job)
    return outcome(models / "whole")


def test_a_worker_killed_after_step_3_of_4_costs_one_step_and_changes_nothing(uninterrupted, models, monkeypatch):
    monkeypatch.setenv("SAKUGA_CHAOS_EXIT_AFTER_STEP", "3")
    job = Job("killed", build_plan(load(board(models, "walk", "a long walk"))), models / "killed",
              config={"keep_latents": True})
    loop = FarmLoop(WorkerPool(1), scheduler=Widen(), deliver=lambda job: None, observers=())
    loop.add(job)
    loop.run()
    assert job.status == "done"
    assert attempts(models / "killed", "killed") == [("died", 1), ("done", 1)]
    got = outcome(models / "killed")
    # the retry started from the checkpoint after step 3 and ran the one step left: one transformer
    # call (guidance 1: one forward a step), where the uninterrupted render made four
    assert (got["metrics"]["resumed_from_step"], got["metrics"]["denoise_steps"]) == (3, 1)
    assert (uninterrupted["metrics"]["resumed_from_step"], uninterrupted["metrics"]["denoise_steps"]) == (0, 4)
    np.testing.assert_allclose(got["latents"], uninterrupted["latents"], rtol=0, atol=RESUME_ATOL)
    # the frames decoded from them (the lossless last frame): within one level
    assert np.abs(got["png"].astype(int) - uninterrupted["png"].astype(int)).max() <= 1
    assert not (models / "killed" / "checkpoints" / "s0.0.step").exists()   # published: its checkpoint gone


def test_a_segment_stopped_at_step_2_resumes_on_a_gang_of_two(uninterrupted, pool, models):
    job = Job("widened", build_plan(load(board(models, "walk", "a long walk"))), models / "widened",
              config={"keep_latents": True})
    loop = FarmLoop(pool, scheduler=Widen(job), deliver=lambda job: None, observers=())
    loop.add(job)
    finish(loop, job)
    assert attempts(models / "widened", "widened") == [("preempted", 1), ("done", 2)]
    got = outcome(models / "widened")
    # asked to stop once its checkpoint after step 1 was in: it stopped at the next boundary
    assert (got["metrics"]["resumed_from_step"], got["metrics"]["denoise_steps"]) == (2, 2)
    np.testing.assert_allclose(got["latents"], uninterrupted["latents"], rtol=0, atol=GANG_ATOL)


def test_an_urgent_job_on_a_busy_farm_starts_within_one_step_of_the_segment_it_displaces(pool, models):
    # the overnight batch, one segment on each GPU: long by the cost model (~30 s a step), so stopping
    # one for urgent work pays
    low_plan = build_plan(load(board(models, "night", "an overnight pan", shots=2, degrees=[1],
                                     linear_s_per_ktoken=375.0)))
    urgent_plan = build_plan(load(board(models, "urgent", "a retake for today", degrees=[1])))
    low = Job("night", low_plan, models / "night", priority=0)
    loop = FarmLoop(pool, deliver=lambda job: None, observers=())   # the default policy
    loop.add(low)
    while min(low.checkpoints.step(s) for s in low_plan.segments) < 1 and not low.ended:
        loop.step()
    reached = {s.id: low.checkpoints.step(s) for s in low_plan.segments}
    urgent = Job("urgent", urgent_plan, models / "urgent", priority=10)
    loop.add(urgent)
    finish(loop, low, urgent)
    with Ledger(models / "night" / "ledger.sqlite") as ledger:
        tries = {s.id: ledger.attempts("night", s.id) for s in low_plan.segments}
        resumed = [e["detail"] for e in ledger.events("night") if e["kind"] == "resumed"]
    with Ledger(models / "urgent" / "ledger.sqlite") as ledger:
        [urgent_try] = ledger.attempts("urgent")
    [stopped] = [s for s, t in tries.items() if [a["status"] for a in t] == ["preempted", "done"]]
    [other] = [s for s, t in tries.items() if [a["status"] for a in t] == ["done"]]   # only one GPU was needed
    at = metrics(models / "night", stopped)["resumed_from_step"]
    # it stopped within one step of where it was when the urgent job came, and went on from there
    assert reached[stopped] < at <= reached[stopped] + 1, (reached, at)
    assert resumed == [f"{stopped}: from the checkpoint at step {at:.0f} of 4"]
    assert f"stopped at step {at:.0f} of 4" in tries[stopped][0]["error"]
    assert metrics(models / "night", stopped)["denoise_steps"] == 4 - at
    assert metrics(models / "night", other)["denoise_steps"] == 4
    assert tries[stopped][0]["ended"] <= urgent_try["started"] <= tries[stopped][1]["started"]   # GPU in between
    print(f"stop asked after step {reached[stopped]}: {tries[stopped][0]['error']}")
