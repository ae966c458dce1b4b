"""`sakuga takes / retake / approve` as a user runs them: bad input is exit 2 with a clear line and
nothing written; with Ray (one test), a retake renders and an approval puts it in the cut."""
from __future__ import annotations

import pytest

from farm.job.folder import JobFolder
from farm.job.ledger import Ledger

BOARD = ("sakuga: 1\ntitle: takes\nmodel: noop\noutput: {width: 64, height: 64, fps: 16}\n"
         "scenes:\n  - id: one\n    shots:\n      - {id: s0, frames: 17, prompt: first}\n"
         "      - {id: s1, frames: 17, prompt: second}\n")


@pytest.fixture
def board(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(BOARD)
    return path


@pytest.fixture
def out(tmp_path, board, FakePool):
    """A finished render of `board`, made without Ray."""
    from farm.api.embedded import EmbeddedFarm
    from farm.api.protocol import JobRequest
    from storyboard.load import load
    from storyboard.plan import build_plan

    farm = EmbeddedFarm(FakePool([1]))
    farm.submit(JobRequest(build_plan(load(board)), tmp_path / "out", config={"source": str(board)}))
    farm.wait()
    return tmp_path / "out"


def test_takes_lists_the_storyboards_take_as_approved(sakuga, out):
    result = sakuga("takes", out, "s0")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["*", "1", "done", "(storyboard)"]


@pytest.mark.parametrize("args, says", [
    (("takes", "{out}", "nope"), "no shot 'nope'"),
    (("takes", "{tmp}", "s0"), "no ledger.sqlite"),
    (("retake", "{out}", "nope", "--seed", "3"), "no shot 'nope'"),
    (("retake", "{out}", "s0"), "changes at least one"),
    (("retake", "{out}", "s0", "--motion", "11"), "motion"),
    (("retake", "{out}", "s0", "--seed", "-4"), "seed"),
    (("approve", "{out}", "s0", "2"), "no take 2"),
])
def test_bad_input_is_exit_2_and_nothing_is_written(sakuga, out, tmp_path, args, says):
    before = out.joinpath("ledger.sqlite").read_bytes()
    result = sakuga(*[a.format(out=out, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert says in result.stderr and "error:" in result.stderr and "Traceback" not in result.output
    assert out.joinpath("ledger.sqlite").read_bytes() == before


def test_a_retake_whose_storyboard_is_gone_is_refused_before_a_take_is_written(sakuga, out, board):
    board.unlink()
    result = sakuga("retake", out, "s0", "--seed", "3")
    assert result.exit_code == 2 and "is gone" in result.stderr
    with Ledger(JobFolder(out).ledger) as ledger:
        assert ledger.takes(ledger.jobs()[-1]["id"]) == []
    assert sakuga("takes", out, "s0").exit_code == 0   # listing needs no storyboard


def test_retake_renders_a_new_take_and_approve_puts_it_in_the_cut(ray_cluster, sakuga, board, tmp_path):
    out = tmp_path / "out"
    assert sakuga("render", board, "--out", out, "--quiet", "--no-cache").exit_code == 0
    result = sakuga("retake", out, "s1", "--prompt", "second, at night", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "take 2"
    listing = sakuga("takes", out, "s1").stdout.splitlines()
    assert listing[0].split()[:3] == ["*", "1", "done"] and listing[1].split()[:2] == ["2", "done"]
    assert JobFolder(out).take("s1", 2).is_file() and JobFolder(out).segment("s1.0", ".mp4").is_file()
    result = sakuga("approve", out, "s1", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("episode.mp4")
    with Ledger(JobFolder(out).ledger) as ledger:
        job = ledger.jobs()[-1]["id"]
        assert [(t["take"], t["approved"]) for t in ledger.takes(job)] == [(2, 1)]
        assert {a["segment"] for a in ledger.attempts(job)} == {"s0.0", "s1.0", "s1~2.0"}
    assert sakuga("takes", out, "s1").stdout.splitlines()[1].startswith("* 2")
