"""Planning with takes: a take's segments are its own (names, hashes), the shot's plan is the approved
take's, and a `start: previous` shot continues from the approved take."""
from __future__ import annotations

import pytest

from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.takes import ShotTakes, check_overrides

BOARD = ("sakuga: 1\ntitle: takes\nmodel: noop\noutput: {width: 64, height: 64, fps: 16}\n"
         "scenes:\n  - id: one\n    shots:\n"
         "      - {id: a, frames: 17, prompt: first}\n"
         "      - {id: b, frames: 17, prompt: second, start: previous}\n")


@pytest.fixture
def loaded(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(BOARD)
    return load(path)


def test_a_take_has_its_own_segments_and_the_cut_uses_the_approved_one(loaded):
    plain = build_plan(loaded)
    two = build_plan(loaded, {"a": ShotTakes({2: {"prompt": "first, at night"}})})
    assert [g.id for g in two.segments] == ["a.0", "a~2.0", "b.0"]
    assert two.segment("a.0").hash == plain.segment("a.0").hash       # take 1 is the storyboard, unchanged
    assert two.segment("a~2.0").hash != plain.segment("a.0").hash
    assert "at night" in two.segment("a~2.0").prompt
    assert [s.segments for s in two.shots] == [("a.0",), ("b.0",)]
    assert two.segment("b.0").hash == plain.segment("b.0").hash       # not approved: the cut is as it was
    assert two.takes["a"] == {1: ("a.0",), 2: ("a~2.0",)}

    approved = build_plan(loaded, {"a": ShotTakes({2: {"prompt": "first, at night"}}, approved=2)})
    assert [s.segments for s in approved.shots] == [("a~2.0",), ("b.0",)]
    assert approved.segment("b.0").deps == ("a~2.0",)
    assert approved.segment("b.0").conditions[0].image.sha256 == approved.segment("a~2.0").hash
    assert approved.segment("b.0").hash != plain.segment("b.0").hash


def test_a_seed_take_counts_up_from_its_seed(loaded):
    plan = build_plan(loaded, {"a": ShotTakes({2: {"seed": 41}})})
    assert plan.segment("a~2.0").seed == 41


@pytest.mark.parametrize("overrides, field", [
    ({}, "take"), ({"seed": None}, "take"), ({"motion": 10.5}, "motion"), ({"aesthetic": -1}, "aesthetic"),
    ({"seed": 2**40}, "seed"), ({"prompt": ""}, "prompt"), ({"camera": "pan"}, "camera")])
def test_bad_overrides_name_their_field(overrides, field):
    with pytest.raises(InputError) as e:
        check_overrides(overrides)
    assert e.value.problems[0].file == field


def test_good_overrides_pass_as_given():
    assert check_overrides({"prompt": "p", "seed": 3, "motion": None, "aesthetic": 6.0}) == {
        "prompt": "p", "seed": 3, "aesthetic": 6.0}
