"""Step checkpoints and preemption in the farm loop, without Ray: a fake pool whose render calls
answer a script of messages (a checkpoint, a death, a stop), so what the loop and the job do with them
— publish, hand to the next attempt, stop, not count, refuse other content's — is tested on its own."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.job.results import Checkpointed, StoppedAt
from farm.run.loop import FarmLoop
from farm.scheduling.policy import DEFAULT, Stop, policy
from farm.workers.slots import WorkerDied
from storyboard.load import load
from storyboard.plan import build_plan

ROOT = Path(__file__).resolve().parents[3]


def plan_of(tmp_path: Path, monkeypatch, prompts=("a", "b", "c"), ids="abc", name="sb"):
    """Independent one-segment shots a, b, c (8 steps each) of a noop preset."""
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    data = yaml.safe_load((ROOT / "configs" / "models" / "noop.yaml").read_text())
    data.update(name="stepped")
    (tmp_path / "stepped.yaml").write_text(yaml.safe_dump(data))
    shots = "".join(f"      - {{id: {s}, frames: 17, prompt: {p}}}\n" for s, p in zip(ids, prompts))
    (tmp_path / f"{name}.yaml").write_text("sakuga: 1\ntitle: Steps\nmodel: stepped\noutput: {width: 64, height: 64, fps: 16}\n"
                                      f"scenes:\n  - id: one\n    shots:\n{shots}")
    return build_plan(load(tmp_path / f"{name}.yaml"))


def blob(seg, step: int) -> bytes:
    return f"state of {seg.id} after step {step}".encode()


def scripted(FakePool):
    class StepPool(FakePool):
        """Each render call of a segment answers its next try's script: "ckpt N" (a checkpoint after
        step N), "stale N" (one for other content), "die", "hold" (keeps rendering until asked to stop,
        then ships the state where it stopped, one step on, and StoppedAt), then the result."""

        def __init__(self, nodes, tries):
            super().__init__(nodes)
            self.tries = {k: [list(t) for t in v] for k, v in tries.items()}
            self.seen = []      # (segment, what the job's checkpoint file held, temporaries) at each render

        def render(self, slot, preset, seg, images, bank, offload, gang, keep_latents=False, steps=None):
            call = super().render(slot, preset, seg, images, bank, offload, gang, keep_latents, steps)
            plan = self.tries.get(seg.id)
            call.script = plan.pop(0) if plan else []
            call.done = steps.resume_step if steps else 0
            folder = self.out / "checkpoints"
            self.seen.append((seg.id, sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []))
            return call

        def wait(self, calls, timeout):
            return [c for c in calls if not (c.script and c.script[0] == "hold" and c not in self.stops)][:1]

        def result(self, call):
            if not call.script:
                return super().result(call)
            what = call.script.pop(0)
            seg = call.seg
            if what == "die":
                raise WorkerDied(f"{call.slot.name} died")
            if what == "hold":   # asked to stop: the state one step on, then stopped there
                call.script[:0] = [f"ckpt {call.done + 1}", f"stopped {call.done + 1}"]
                what = call.script.pop(0)
            kind, step = what.split()
            if kind == "stopped":
                return StoppedAt(int(step), call.slot.name)
            call.done = int(step)
            return Checkpointed(int(step), seg.steps, blob(seg, int(step)), "0" * 64 if kind == "stale" else seg.hash)

    return StepPool


class Recording:
    """The default policy, with what it saw of each ready task's steps; and, while a task of a higher
    priority is ready, the running ones below it stopped."""

    def __init__(self, preempting: bool = False):
        self.inner, self.preempting, self.seen = policy(DEFAULT), preempting, []
        self.name = "recording"

    def decide(self, view):
        self.seen += [(t.id.rsplit("/", 1)[1], t.steps, t.done) for t in view.ready]
        return self.inner.decide(view)

    def stops(self, view):
        top = max((t.priority for t in view.ready), default=None)
        if not self.preempting or top is None:
            return []
        return [Stop(r.task.id) for r in view.running if r.task.priority < top]


def attempts(ledger: Path, job: str) -> dict[str, list[str]]:
    with Ledger(ledger) as db:
        rows = db.attempts(job)
    out: dict[str, list[str]] = {}
    for a in rows:
        out.setdefault(a["segment"], []).append(a["status"])
    return out


def test_a_checkpoint_is_published_atomically_and_the_retry_starts_from_it(tmp_path, monkeypatch, FakePool):
    plan = plan_of(tmp_path, monkeypatch)
    pool = scripted(FakePool)([1], {"a.0": [["ckpt 2", "ckpt 5", "die"], []]})
    pool.out = tmp_path / "out"
    job = Job("j", plan, pool.out)
    recording = Recording()
    loop = FarmLoop(pool, scheduler=recording, deliver=lambda j: None, observers=())
    loop.add(job)
    loop.run()
    assert attempts(job.folder.ledger, "j")["a.0"] == ["died", "done"]
    seg = plan.segment("a.0")
    first, retry = [c for c in pool.calls if c.seg.id == "a.0"]
    assert first.steps.resume is None and first.steps.key == seg.hash
    assert retry.steps.resume == blob(seg, 5) and retry.steps.resume_step == 5   # the last one, whole
    # when the retry was sent the checkpoint was in place under its own name, no temporary beside it
    assert [files for s, files in pool.seen if s == "a.0"] == [[], ["a.0.step"]]
    assert ("a.0", 8, 5) in recording.seen          # the policy saw the steps left
    # published: its checkpoint has gone, from the folder and from the ledger
    assert list(job.folder.checkpoints.iterdir()) == []
    with Ledger(job.folder.ledger) as db:
        assert db.checkpoints("j") == []
        assert any(e["kind"] == "resumed" and "step 5 of 8" in e["detail"] for e in db.events("j"))


def test_preempted_attempts_are_not_counted_and_each_resumes_where_it_stopped(tmp_path, monkeypatch, FakePool):
    low_plan = plan_of(tmp_path, monkeypatch)
    plan = plan_of(tmp_path, monkeypatch, ids="uvw", name="urgent")
    # one GPU; `a` of the low job is stopped three times (three tries would fail it, if they counted)
    pool = scripted(FakePool)([1], {"a.0": [["ckpt 1", "hold"], ["hold"], ["hold"], []]})
    pool.out = tmp_path / "low"
    low = Job("low", low_plan, tmp_path / "low", priority=0)
    loop = FarmLoop(pool, scheduler=Recording(preempting=True), deliver=lambda j: None, observers=())
    loop.add(low)
    urgent = []
    for n in range(3):
        while not any(a.seg.id == "a.0" for a in loop._attempts()):
            loop.step()
        job = Job(f"urgent{n}", plan, tmp_path / f"urgent{n}", priority=5)
        loop.add(job)
        urgent.append(job)
        while not job.ended:
            loop.step()
    loop.run()
    assert low.status == "done" and all(j.status == "done" for j in urgent)
    assert attempts(low.folder.ledger, "low")["a.0"] == ["preempted"] * 3 + ["done"]
    resumed = [c.steps.resume_step for c in pool.calls if c.seg.id == "a.0"]
    assert resumed == [0, 2, 3, 4]            # stopped one step on each time, and went on from there
    with Ledger(low.folder.ledger) as db:
        ended = [a for a in db.attempts("low", "a.0") if a["status"] == "preempted"]
        assert "stopped at step 2 of 8 for more urgent work" in ended[0]["error"]
        assert sum(e["kind"] == "stop_asked" for e in db.events("low")) == 3   # asked once each time
    assert len(pool.stops) == 3


def test_a_checkpoint_of_other_content_or_damaged_is_never_handed_on(tmp_path, monkeypatch, FakePool):
    plan = plan_of(tmp_path, monkeypatch)
    # a, b, c render on three GPUs and checkpoint after step 3 (`c`'s worker also ships one for other
    # content); then the render is interrupted, as Ctrl-C does
    pool = scripted(FakePool)([3], {"a.0": [["ckpt 3", "hold"]], "b.0": [["ckpt 3", "hold"]],
                                    "c.0": [["ckpt 3", "stale 6", "hold"]]})
    pool.out = tmp_path / "out"
    job = Job("j", plan, pool.out)
    loop = FarmLoop(pool, scheduler=Recording(), deliver=lambda j: None, observers=())
    loop.add(job)
    for _ in range(20):
        loop.step()
    loop.interrupt()
    job.close()
    assert job.status == "interrupted"
    with Ledger(job.folder.ledger) as db:
        assert {r["segment"]: r["step"] for r in db.checkpoints("j")} == {"a.0": 3, "b.0": 3, "c.0": 3}  # not 6
    assert sorted(p.name for p in job.folder.checkpoints.iterdir()) == ["a.0.step", "b.0.step", "c.0.step"]

    # the storyboard changes `a`'s prompt; `b`'s file is damaged on disk; `c` is as it was
    edited = plan_of(tmp_path, monkeypatch, prompts=("a at night", "b", "c"))
    job.folder.checkpoint("b.0").write_bytes(b"not what was recorded")
    pool = scripted(FakePool)([1], {})
    pool.out = tmp_path / "out"
    again = Job("j", edited, tmp_path / "out")
    recording = Recording()
    loop = FarmLoop(pool, scheduler=recording, deliver=lambda j: None, observers=())
    loop.add(again)
    assert sorted(p.name for p in again.folder.checkpoints.iterdir()) == ["b.0.step", "c.0.step"]   # a's removed on opening
    loop.run()
    handed = {c.seg.id: (c.steps.resume, c.steps.resume_step) for c in pool.calls}
    assert handed["a.0"] == (None, 0) and handed["b.0"] == (None, 0)
    assert handed["c.0"] == (blob(edited.segment("c.0"), 3), 3)
    assert ("a.0", 8, 0) in recording.seen and ("c.0", 8, 3) in recording.seen
    assert again.status == "done" and any("b.0: checkpoint at step 3 not used" in n for n in again.notes)


@pytest.mark.parametrize("preempt", [False, True])
def test_a_job_or_farm_that_opts_out_is_never_stopped(tmp_path, monkeypatch, FakePool, preempt):
    plan = plan_of(tmp_path, monkeypatch)
    urgent = plan_of(tmp_path, monkeypatch, ids="uvw", name="urgent")
    pool = scripted(FakePool)([1], {"a.0": [["ckpt 1", "hold"], []]})
    pool.out = tmp_path / "low"
    low = Job("low", plan, tmp_path / "low", config={} if not preempt else {"preempt": False})
    loop = FarmLoop(pool, scheduler=Recording(preempting=True), deliver=lambda j: None, observers=(),
                    preempt=preempt)
    loop.add(low)
    while not loop._attempts():
        loop.step()
    loop.add(Job("urgent", urgent, tmp_path / "urgent", priority=5))
    for _ in range(5):
        loop.step()
    assert pool.stops == [] and [a.seg.id for a in loop._attempts()] == ["a.0"]
