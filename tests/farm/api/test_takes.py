"""Takes through the farm API, on a pool that needs no Ray: a retake renders only its shot's new segments
and keeps the earlier take's files; approving it changes the cut (and what a `start: previous` shot after
it continues from); takes and approvals are in the ledger, so a resumed job keeps them."""
from __future__ import annotations

import pytest

from farm.api.embedded import EmbeddedFarm
from farm.api.protocol import JobRequest, UnknownJob
from farm.job.folder import JobFolder
from farm.job.ledger import VERSION, Ledger
from farm.job.takes import recorded_takes
from farm.media.decode import read_frames
from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from tests.farm.conftest import FakePool


class SeedPool(FakePool):
    """FakePool whose segments are flat frames of a level set by their seed, so two takes of a shot
    differ where their seeds do."""

    @staticmethod
    def level(seg) -> int:
        return level(seg.seed)


def level(seed: int) -> int:
    return 30 + seed % 190


BOARD = ("sakuga: 1\ntitle: takes\nmodel: noop\noutput: {width: 64, height: 64, fps: 16}\n"
         "scenes:\n  - id: one\n    shots:\n"
         "      - {id: s0, frames: 17, prompt: first, seed: 10}\n"
         "      - {id: s1, frames: 17, prompt: second, seed: 100, start: previous}\n")


@pytest.fixture
def rendered(tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    pool = SeedPool([1])
    farm = EmbeddedFarm(pool)
    job = farm.submit(JobRequest(build_plan(load(board)), tmp_path / "out", config={"source": str(board)})).id
    farm.wait()
    return farm, pool, job, tmp_path / "out", board


def means(path, frames=slice(None)) -> list[float]:
    return [float(f.mean()) for f in list(read_frames(path))[frames]]


def test_a_retake_renders_only_its_new_segments_keeps_the_earlier_take_and_approve_changes_the_cut(rendered):
    farm, pool, job, out, _ = rendered
    folder = JobFolder(out)
    before = len(pool.calls)
    assert farm.retake(job, "s0", {"seed": 77}) == 2
    farm.wait()
    assert [c.seg.id for c in pool.calls[before:]] == ["s0~2.0"]   # nothing else rendered again
    with Ledger(folder.ledger) as ledger:
        assert {a["segment"]: a["n"] for a in ledger.attempts(job)} == {"s0.0": 1, "s1.0": 1, "s0~2.0": 1}
    assert folder.segment("s0.0", ".mp4").is_file() and folder.take("s0", 1).is_file()
    views = farm.takes(job, "s0")
    assert [(t.take, t.approved, t.status, t.overrides, t.segments) for t in views] == [
        (1, True, "done", {}, ["s0.0"]), (2, False, "done", {"seed": 77}, ["s0~2.0"])]
    assert views[1].files == {"mp4": "takes/s0/2.mp4"}
    # flat frames through x264 come back within a level or two (each file is its own encode)
    assert means(out / views[1].files["mp4"]) == pytest.approx([level(77)] * 17, abs=2)
    assert means(folder.episode, slice(0, 17)) == pytest.approx([level(10)] * 17, abs=2)   # not approved yet

    before = len(pool.calls)
    farm.approve(job, "s0", 2)
    farm.wait()
    # s1 starts from s0's last frame: now the approved take's, so s1 renders again; s0's take does not
    assert [c.seg.id for c in pool.calls[before:]] == ["s1.0"]
    assert pool.calls[-1].seg.conditions[0].image.ref == "s0~2.0"
    episode = means(folder.episode)
    assert episode[:17] == pytest.approx([level(77)] * 17, abs=2)
    assert episode[:17] == pytest.approx(means(out / "takes/s0/2.mp4"), abs=2)
    assert [t.approved for t in farm.takes(job, "s0")] == [False, True]
    assert farm.job(job).summary.state == "done"


def test_takes_and_approvals_survive_a_resume(rendered):
    farm, pool, job, out, board = rendered
    farm.retake(job, "s1", {"prompt": "second, in the rain"})
    farm.wait()
    farm.approve(job, "s1", 2)
    farm.wait()
    # a new farm (`sakuga resume`): the plan from the storyboard and the ledger's takes, nothing rendered
    again = EmbeddedFarm(SeedPool([1]))
    plan = build_plan(load(board), recorded_takes(JobFolder(out)))
    assert [s.segments for s in plan.shots] == [("s0.0",), ("s1~2.0",)]
    again.submit(JobRequest(plan, out, config={"source": str(board)}))
    again.wait()
    assert again.pool.calls == []
    assert [(t.take, t.approved, t.overrides) for t in again.takes(job, "s1")] == [
        (1, False, {}), (2, True, {"prompt": "second, in the rain"})]


def test_bad_takes_are_refused_and_nothing_is_written(rendered):
    farm, _, job, out, _ = rendered
    for shot, overrides in [("nope", {"seed": 1}), ("s0", {}), ("s0", {"motion": 11}), ("s0", {"seed": -1}),
                            ("s0", {"prompt": ""}), ("s0", {"steps": 4})]:
        with pytest.raises(InputError):
            farm.retake(job, shot, overrides)
    with pytest.raises(InputError, match="no take 2"):
        farm.approve(job, "s0", 2)
    with pytest.raises(UnknownJob):
        farm.retake("nope", "s0", {"seed": 1})
    with Ledger(JobFolder(out).ledger) as ledger:
        assert ledger.takes(job) == []
    assert farm.job(job).summary.state == "done"


def test_a_version_1_ledger_gains_the_takes_table(tmp_path):
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE jobs(id TEXT PRIMARY KEY, source TEXT, out TEXT, priority INT, status TEXT, "
                     "config TEXT, created REAL, updated REAL, detail TEXT); PRAGMA user_version=1;")
    db.close()
    with Ledger(path) as ledger:
        assert ledger.add_take("j", "s0", {"seed": 3}) == 2
        assert ledger.add_take("j", "s0", {"seed": 4}) == 3
        ledger.approve_take("j", "s0", 3)
        assert [(r["take"], r["approved"]) for r in ledger.takes("j")] == [(2, 0), (3, 1)]
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
