"""Real disk faults, on a small tmpfs mounted for the test: a disk that fills up while segments are
published, while the cut is delivered, and under the ledger itself; a folder that turns read-only.
Each ends attempts or the job — never a loop — leaves a job `sakuga resume` finishes once there is
room again, and leaves other jobs running."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from farm.api.embedded import EmbeddedFarm
from farm.api.protocol import JobRequest
from farm.delivery.deliver import deliver
from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.job.results import SegmentResult
from farm.run.loop import FarmLoop


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB tmpfs at tmp_path/fs (root only: the project's machines run as root)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Take all the space of folder's file system but `leave` bytes."""
    filler = folder / "filler"
    st = os.statvfs(folder)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(filler, "wb") as f:
        while size > 0:
            chunk = min(size, 1 << 20)
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            size -= chunk
    return filler



def big_results(FakePool):
    """A pool whose segments carry 600 KB of mp4 each: three fill the 2 MB disk."""
    class Big(FakePool):
        def result(self, call):
            r = super().result(call)
            if isinstance(r, SegmentResult):
                noise = np.random.default_rng(0).bytes(600_000)
                r = SegmentResult(r.mp4 + noise, r.last_png, r.metrics, r.started, r.render_s, r.encode_s,
                                  r.worker, r.node)
            return r
    return Big


def noisy_results(FakePool):
    """A pool whose frames are noise: its segments, and the shots stitched from them, take ~100 KB."""
    from farm.media.encode import encode_mp4_bytes, png_bytes

    class Noisy(FakePool):
        def result(self, call):
            r = super().result(call)
            if isinstance(r, SegmentResult):
                seg = call.seg
                frames = np.random.default_rng(seg.index).integers(0, 255, (seg.frames, seg.height, seg.width, 3),
                                                                   dtype=np.uint8)
                r = SegmentResult(encode_mp4_bytes(frames, seg.fps, seg.width, seg.height, preset="ultrafast"),
                                  png_bytes(frames[-1]), r.metrics, r.started, r.render_s, r.encode_s, r.worker, r.node)
            return r
    return Noisy


def attempts(job_out: Path, job_id: str) -> list[tuple[str, str | None]]:
    with Ledger(job_out / "ledger.sqlite") as ledger:
        return [(a["status"], a["error"]) for a in ledger.attempts(job_id)]


def resume(FakePool, tmp_path, plan, out: Path, job_id: str) -> Job:
    """`sakuga resume`: the same job id into the same folder, on a fresh loop."""
    job = Job(job_id, plan, out)
    loop = FarmLoop(FakePool([1]), observers=())
    loop.add(job)
    loop.run()
    return job


def test_a_disk_that_fills_while_publishing_fails_the_attempts_and_the_job_resumes(plan_of, tmp_path, small_fs, FakePool):
    plan = plan_of(tmp_path, "full", 4)
    out = small_fs / "out"
    job = Job("j", plan, out)
    loop = FarmLoop(big_results(FakePool)([1]), observers=())
    loop.add(job)
    loop.run()                                         # returns: no endless retry
    tries = attempts(out, "j")
    assert any(status == "error" and "could not publish" in error and "No space left" in error
               for status, error in tries)
    assert job.ended and job.status == "failed"
    assert not list(out.glob("segments/.tmp-*"))       # a failed publish leaves no half-written file
    # room again (the disk grows): the published segments stay, the rest are rendered, the cut is delivered
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_fs)], check=True)
    kept = {p.name: p.stat().st_ino for p in (out / "segments").glob("*.mp4")}
    again = resume(FakePool, tmp_path, plan, out, "j")
    assert again.status == "done" and (out / "episode.mp4").is_file()
    assert all((out / "segments" / name).stat().st_ino == ino for name, ino in kept.items())


def test_a_disk_that_fills_during_delivery_fails_the_job_and_resume_delivers_without_rendering(
        plan_of, tmp_path, small_fs, FakePool):
    plan = plan_of(tmp_path, "late")
    out = small_fs / "out"
    job = Job("j", plan, out)
    fillers = []
    # room for the ledger's last words (a few pages), not for the stitched shots
    loop = FarmLoop(noisy_results(FakePool)([2]), observers=(),
                    deliver=lambda j: fillers.append(fill(small_fs, 48_000)) or deliver(j))
    loop.add(job)
    loop.run()
    assert job.status == "failed" and job.error.startswith("delivery failed:") and "No space left" in job.error
    with Ledger(out / "ledger.sqlite") as ledger:
        assert ledger.job("j")["status"] == "failed" and "delivery failed" in ledger.job("j")["detail"]
        assert {s["status"] for s in ledger.segments("j")} == {"published"}
    fillers[0].unlink()
    before = len(attempts(out, "j"))
    again = resume(noisy_results(FakePool), tmp_path, plan, out, "j")
    assert again.status == "done" and (out / "episode.mp4").is_file()
    assert len(attempts(out, "j")) == before           # nothing rendered again


def test_a_ledger_on_a_full_disk_stops_its_job_and_the_farm_serves_the_others(plan_of, tmp_path, small_fs, FakePool):
    farm = EmbeddedFarm(FakePool([1]))
    stuck = farm.submit(JobRequest(plan_of(tmp_path, "stuck"), small_fs / "stuck")).id
    fine = farm.submit(JobRequest(plan_of(tmp_path, "fine"), tmp_path / "fine")).id
    filler = fill(small_fs)                            # now the stuck job's ledger cannot grow
    farm.wait()
    states = {j.id: j for j in farm.jobs()}
    assert states[fine].state == "done" and states[stuck].state == "failed"
    assert any(e.kind == "finished" and "cannot record the job's state" in e.detail for e in farm.events(stuck))
    filler.unlink()
    again = resume(FakePool, tmp_path, farm.loop.jobs[stuck].plan, small_fs / "stuck", stuck)
    assert again.status == "done"


def test_a_segments_folder_that_turns_read_only_fails_attempts_not_the_farm(plan_of, tmp_path, small_fs, FakePool):
    plan = plan_of(tmp_path, "ro")
    out = small_fs / "out"
    job = Job("j", plan, out)
    loop = FarmLoop(FakePool([1]), observers=())
    loop.add(job)
    segments = out / "segments"            # a read-only file system appears where segments are published
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(segments)], check=True)
    try:
        loop.run()
    finally:
        subprocess.run(["umount", str(segments)], check=True)
    assert job.ended and job.status == "failed" and job.failed_shots == ["s0", "s1"]
    tries = attempts(out, "j")
    assert len(tries) == 6 and all(s == "error" and "Read-only file system" in e for s, e in tries)
    again = resume(FakePool, tmp_path, plan, out, "j")
    assert again.status == "done" and (out / "episode.mp4").is_file()
