"""Chaos tests on local Ray with logical GPUs: dying workers, a dying driver, corrupted files, hangs,
out-of-memory, and an edited storyboard re-rendered through the ledger and the segment cache."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from farm.api.embedded import render
from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.media.decode import probe
from farm.run.loop import FarmLoop
from farm.workers.pool import WorkerPool
from storyboard.load import load
from storyboard.plan import build_plan

ROOT = Path(__file__).resolve().parents[3]

STORYBOARD = """\
sakuga: 1
title: Chaos
model: {model}
output: {{width: 64, height: 64, fps: 16}}
scenes:
  - id: one
    shots:
      - {{id: a, frames: 17, prompt: "{prompt}"}}
      - {{id: b, frames: 33, prompt: the same street, start: previous}}
      - {{id: c, frames: 17, prompt: a tree}}
  - id: two
    shots:
      - {{id: d, frames: 17, prompt: the sea}}
      - {{id: e, frames: 97, prompt: a long pan over the city}}
"""


@pytest.fixture
def presets(tmp_path, monkeypatch) -> Path:
    """No-op engine presets under $SAKUGA_MODELS that stand in for GPU work of a given length."""
    folder = tmp_path / "presets"
    folder.mkdir()
    monkeypatch.setenv("SAKUGA_MODELS", str(folder))
    return folder


def preset(folder: Path, name: str, sleep_s: float, **cost) -> str:
    data = yaml.safe_load((ROOT / "configs" / "models" / "noop.yaml").read_text())
    data.update(name=name, options={"sleep_s": sleep_s})
    data["cost"].update(cost)
    if "memory_gb" in cost:
        data["memory_gb"] = data["cost"].pop("memory_gb")
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return name


def storyboard(tmp_path: Path, model: str, prompt: str = "a street at dusk", name: str = "sb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(STORYBOARD.format(model=model, prompt=prompt))
    return path


def plan_of(path: Path):
    return build_plan(load(path))


def identity(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "segments").glob("*.mp4")}


def done_attempts(ledger: Ledger, job: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in ledger.attempts(job):
        counts[a["segment"]] = counts.get(a["segment"], 0) + (a["status"] == "done")
    return counts


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_a_worker_killed_mid_segment_is_replaced_and_the_segment_retried_elsewhere(ray_cluster, presets, tmp_path):
    plan = plan_of(storyboard(tmp_path, preset(presets, "slow", 1.0)))
    out = tmp_path / "out"
    job = Job("chaos", plan, out)
    farm = FarmLoop(WorkerPool(2))
    farm.add(job)
    pids = {s.name: farm.pool.pid(s) for s in farm.pool.slots}
    runner = threading.Thread(target=farm.run)
    runner.start()
    with Ledger(out / "ledger.sqlite") as ledger:
        victim = wait_for(lambda: next((a for a in ledger.attempts("chaos")
                                        if a["status"] == "running" and time.time() - a["started"] > 0.3), None))
        os.kill(pids[victim["worker"]], signal.SIGKILL)
        runner.join(timeout=120)
        assert not runner.is_alive()

        tries = ledger.attempts("chaos", victim["segment"])
        assert [t["status"] for t in tries] == ["died", "done"]
        assert tries[1]["worker"] != victim["worker"]        # retried on another worker
        assert done_attempts(ledger, "chaos") == {s.id: 1 for s in plan.segments}   # each exactly once
        assert ledger.counts("chaos") == {"published": len(plan.segments)}
        assert any(e["kind"] == "worker_lost" for e in ledger.events("chaos"))
    assert probe(out / "episode.mp4")["frames"] == plan.episode_frames
    rows = {r["segment"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    assert rows[victim["segment"]]["attempts"] == 2 and rows[victim["segment"]]["status"] == "done"


CLI = [sys.executable, "-c", "from farm.cli import main; main()"]


def start_render(sb: Path, out: Path, presets: Path, **popen) -> tuple[subprocess.Popen, dict]:
    """`sakuga render` in its own process, as a user would run it (so it can be killed)."""
    env = {**os.environ, "SAKUGA_MODELS": str(presets)}
    return subprocess.Popen([*CLI, "render", sb, "--out", out, "--no-cache", "-q"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, **popen), env


def test_resume_after_the_driver_is_killed_rerenders_nothing_published(presets, tmp_path):
    sb = storyboard(tmp_path, preset(presets, "slow", 0.7))
    out = tmp_path / "out"
    driver, env = start_render(sb, out, presets, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def published():
            if not (out / "ledger.sqlite").is_file():
                return None
            with Ledger(out / "ledger.sqlite") as ledger:
                jobs = ledger.jobs()
                return jobs and ledger.counts(jobs[-1]["id"]).get("published", 0) >= 2 and jobs[-1]["id"]
        job = wait_for(published, timeout=120)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait()
        try:   # the local Ray it started dies with it on a real crash; here, clean it up
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = identity(out)
    with Ledger(out / "ledger.sqlite") as ledger:
        kept = [s["id"] for s in ledger.segments(job) if s["status"] == "published"]
    assert 2 <= len(kept) < len(plan_of(sb).segments)

    result = subprocess.run([*CLI, "resume", out, "-q"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    after = identity(out)
    for seg in kept:   # not rendered again: the very same files
        assert after[f"{seg}.mp4"] == before[f"{seg}.mp4"]
    with Ledger(out / "ledger.sqlite") as ledger:
        assert ledger.counts(job) == {"published": len(plan_of(sb).segments)}
        assert all(n == 1 for s, n in done_attempts(ledger, job).items() if s in kept)
        assert any(a["status"] == "interrupted" for a in ledger.attempts(job))   # the killed run's attempt
    assert probe(out / "episode.mp4")["frames"] == plan_of(sb).episode_frames


def test_a_corrupted_published_segment_is_detected_and_rendered_again(ray_cluster, presets, tmp_path, sakuga):
    sb = storyboard(tmp_path, preset(presets, "quick", 0.0))
    out = tmp_path / "out"
    assert sakuga("render", sb, "--out", out, "--no-cache", "-q", "--gpus", "2").exit_code == 0
    victim = out / "segments" / "c.0.mp4"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    before = identity(out)

    result = sakuga("render", sb, "--out", out, "--no-cache", "-q", "--resume", "--gpus", "2")
    assert result.exit_code == 0, result.stderr
    after = identity(out)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"c.0.mp4"}
    rows = {r["segment"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    assert probe(victim)["frames"] == rows["c.0"]["frames"]
    assert "re-rendering" in result.stderr


def test_an_edited_prompt_rerenders_only_that_shot_and_its_chain(ray_cluster, presets, tmp_path, sakuga):
    name = preset(presets, "quick", 0.0)
    cache = tmp_path / "cache"
    first = sakuga("render", storyboard(tmp_path, name), "--out", tmp_path / "one", "--cache", cache, "-q", "--gpus", "2")
    assert first.exit_code == 0, first.stderr
    edited = storyboard(tmp_path, name, prompt="a street at dawn", name="edited.yaml")
    plan = plan_of(edited)

    # into a new folder: everything else comes from the cache
    result = sakuga("render", edited, "--out", tmp_path / "two", "--cache", cache, "-q", "--gpus", "2")
    assert result.exit_code == 0, result.stderr
    rows = {r["segment"]: r for r in pq.read_table(tmp_path / "two" / "manifest.parquet").to_pylist()}
    rerendered = {s for s, r in rows.items() if r["attempts"] > 0}
    assert rerendered == {"a.0", "b.0"}                  # the edited shot and its continuation
    assert f"reused {len(plan.segments) - 2} of {len(plan.segments)} segments" in result.stderr

    # into the same folder: the unchanged files stay exactly as they were
    before = identity(tmp_path / "one")
    result = sakuga("render", edited, "--out", tmp_path / "one", "--cache", cache, "-q", "--gpus", "2")
    assert result.exit_code == 0
    after = identity(tmp_path / "one")
    assert {n for n in after if after[n] != before[n]} == {"a.0.mp4", "b.0.mp4"}
    assert probe(tmp_path / "one" / "episode.mp4")["frames"] == plan.episode_frames


def test_a_hung_segment_times_out_and_the_shot_is_reported_failed(ray_cluster, presets, tmp_path):
    plan = plan_of(storyboard(tmp_path, preset(presets, "hang", 60.0, timeout_min_s=1.0, timeout_factor=1.0)))
    plan_ok = plan_of(storyboard(tmp_path, preset(presets, "fine", 0.0), name="ok.yaml"))
    out = tmp_path / "out"
    farm = FarmLoop(WorkerPool(3))
    hung, fine = Job("hung", plan, out / "hung"), Job("fine", plan_ok, out / "fine")
    farm.add(hung)
    farm.add(fine)
    farm.run()
    with Ledger(out / "hung" / "ledger.sqlite") as ledger:
        tries = ledger.attempts("hung")
        assert tries and {t["status"] for t in tries} == {"timeout"}   # ended by the farm, not by the 60 s sleep
        per_segment = {s.id: sum(t["segment"] == s.id for t in tries) for s in plan.segments}
        assert max(per_segment.values()) <= 3
        # a segment stops at 3 attempts, or earlier once every worker has failed this job twice
        for seg in ledger.segments("hung"):
            assert seg["status"] in ("failed", "skipped")
            assert per_segment[seg["id"]] == 3 or "failed this job twice" in (seg["error"] or "") \
                or seg["status"] == "skipped"
        assert ledger.job("hung")["status"] == "failed"
    assert fine.failed_shots == []   # the workers that hung on one job still serve the other
    assert set(hung.failed_shots) == {"a", "b", "c", "d", "e"}
    assert fine.failed_shots == [] and probe(fine.episode)["frames"] == plan_ok.episode_frames


def test_out_of_memory_is_retried_with_offload(ray_cluster, presets, tmp_path):
    plan = plan_of(storyboard(tmp_path, preset(presets, "huge", 0.0, memory_gb=1e6)))
    outcome = render(plan, tmp_path / "out", gpus=2, show_progress=False)
    assert outcome.ok
    with Ledger(tmp_path / "out" / "ledger.sqlite") as ledger:
        job = ledger.jobs()[-1]["id"]
        for seg in plan.segments:
            tries = ledger.attempts(job, seg.id)
            assert [(t["status"], t["offload"]) for t in tries] == [("oom", 0), ("done", 1)]


def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_ledger(presets, tmp_path):
    sb = storyboard(tmp_path, preset(presets, "slow", 1.0))
    out = tmp_path / "out"
    driver, env = start_render(sb, out, presets, stderr=subprocess.PIPE, text=True)

    def published():
        if not (out / "ledger.sqlite").is_file():
            return False
        with Ledger(out / "ledger.sqlite") as ledger:
            jobs = ledger.jobs()
            return bool(jobs) and ledger.counts(jobs[-1]["id"]).get("published", 0) >= 1
    wait_for(published, timeout=120)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130
    assert "sakuga resume" in err and "Traceback" not in err
    with Ledger(out / "ledger.sqlite") as ledger:
        job = ledger.jobs()[-1]
        assert job["status"] == "interrupted"
        assert "running" not in ledger.counts(job["id"])
        assert all(a["status"] != "running" for a in ledger.attempts(job["id"]))
    result = subprocess.run([*CLI, "resume", out, "-q"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert probe(out / "episode.mp4")["frames"] == plan_of(sb).episode_frames


def test_a_local_batch_renders_every_file_into_its_own_folder(ray_cluster, presets, tmp_path, sakuga):
    name = preset(presets, "quick", 0.0)
    files = [storyboard(tmp_path, name, prompt=f"street {i}", name=f"pv{i}.yaml") for i in range(2)]
    result = sakuga("batch", *files, "--out", tmp_path / "night", "--no-cache", "-q", "--gpus", "2")
    assert result.exit_code == 0, result.stderr
    for i in range(2):
        assert probe(tmp_path / "night" / f"pv{i}" / "episode.mp4")["frames"] == plan_of(files[i]).episode_frames
    (tmp_path / "other").mkdir()
    twin = storyboard(tmp_path / "other", name, name="pv0.yaml")
    clash = sakuga("batch", files[0], twin, "--out", tmp_path / "clash")
    assert clash.exit_code == 2 and "two files named 'pv0'" in clash.stderr
    assert not (tmp_path / "clash").exists()


def test_an_unwritable_cache_does_not_fail_the_render(ray_cluster, presets, tmp_path, sakuga):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    if os.access(cache, os.W_OK):   # root ignores permissions
        cache.chmod(0o700)
        cache.rmdir()
        cache.write_text("not a folder")
    sb = storyboard(tmp_path, preset(presets, "quick", 0.0))
    result = sakuga("render", sb, "--out", tmp_path / "out", "--cache", cache, "-q", "--gpus", "2")
    assert result.exit_code == 0, result.stderr
    with Ledger(tmp_path / "out" / "ledger.sqlite") as ledger:
        assert any(e["kind"] == "cache" for e in ledger.events())
