"""Where keyframes land: the preset's rule (AniSora's for AniSora presets), `frame:` for exact placement."""
from __future__ import annotations

import pytest

from storyboard.errors import InputError
from storyboard.keyframes import KeyframeRule
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset

ANISORA = KeyframeRule(kind="anisora", grid=8)
HEADER = "sakuga: 1\noutput: {width: 832, height: 480}\nscenes:\n  - id: s\n    shots:\n"


def storyboard(make_storyboard, *shots: str) -> object:
    images = ["a.png", "b.png", "c.png"]
    return make_storyboard(HEADER + "".join(f"      - {s}\n" for s in shots), images)


def frames_of(plan, shot: str) -> list[int]:
    return [plan.segment(sid).first_frame + c.frame for sid in plan.shots[[s.id for s in plan.shots].index(shot)].segments
            for c in plan.segment(sid).conditions if c.image.kind == "asset"]


# ---------------------------------------------------------------- the rule itself


@pytest.mark.parametrize("at, frame", [
    (0.0, 0), (0.5, 40), (1.0, 80),
    (0.75, 64),   # int(60) / 8 = 7.5: Python's round goes to the even 8 (half up would too; 60 would not)
    (0.25, 16),   # int(20) / 8 = 2.5: to the even 2, not up to 3
    (0.7, 56),    # 80 * 0.7 = 56.00000000000001: int() cuts to 56
    (0.35, 32),   # 80 * 0.35 = 28.000000000000004 → 28 → 3.5 → 4
    (0.04, 0),    # near the start: on frame 0, like a start picture
])
def test_anisora_positions_of_an_81_frame_clip_land_where_anisoras_code_puts_them(at, frame):
    assert ANISORA.frame(at, 81) == frame


def test_the_anisora_rule_keeps_a_position_inside_a_clip_that_is_not_8k_plus_1():
    # 1.0 of 45 frames: int(44) / 8 = 5.5 → 6 → 48, past the end; it lands on the last frame instead
    assert ANISORA.frame(1.0, 45) == 44
    assert ANISORA.frame(0.9, 45) == 40      # int(39.6) = 39 → 4.875 → 5 → 40
    assert all(0 <= ANISORA.frame(p / 100, f) < f for p in range(101) for f in range(5, 200, 4))


def test_the_nearest_rule_is_the_old_half_up_rule():
    rule = KeyframeRule()
    assert [rule.frame(at, 17) for at in (0.0, 0.5, 1.0, 0.53, 0.47)] == [0, 8, 16, 8, 8]
    assert rule.frame(0.75, 81) == 60 and rule.frame(0.0625 / 2, 17) == 1   # 0.5 of a frame rounds up


def test_explicit_frames_must_be_on_the_grid_or_the_last_frame():
    assert ANISORA.allows(64, 81) and ANISORA.allows(80, 81) and ANISORA.allows(84, 85)
    assert not ANISORA.allows(60, 81) and not ANISORA.allows(81, 81)
    assert ANISORA.nearest_allowed(60, 81) == [56, 64]
    assert KeyframeRule().allows(37, 81)


# ---------------------------------------------------------------- validator and planner agree


def test_at_lands_by_the_presets_rule_in_plans_of_anisora_and_of_other_models(make_storyboard):
    path = storyboard(make_storyboard, "{id: a, frames: 81, prompt: x, start: a.png, keyframes: "
                                       "[{image: b.png, at: 0.75}, {image: c.png, at: 1.0}]}")
    assert frames_of(build_plan(load(path, model="anisora-v3")), "a") == [0, 64, 80]
    assert frames_of(build_plan(load(path, model="anisora-v3.2")), "a") == [0, 64, 80]
    assert frames_of(build_plan(load(path)), "a") == [0, 60, 80]          # animatic: nearest frame
    assert load_preset("anisora-v3").keyframe_rule == ANISORA


def test_two_positions_that_anisora_puts_on_one_frame_are_refused_for_anisora_only(make_storyboard):
    # 0.5 → 40; 0.52 → int(41.6) = 41 → 5.125 → 40 on AniSora's grid; 42 on the nearest frame
    path = storyboard(make_storyboard, "{id: a, frames: 81, prompt: x, keyframes: "
                                       "[{image: b.png, at: 0.5}, {image: c.png, at: 0.52}]}")
    assert frames_of(build_plan(load(path)), "a") == [40, 42]
    with pytest.raises(InputError) as caught:
        load(path, model="anisora-v3")
    [problem] = caught.value.problems
    assert "keyframes at 0.5 and 0.52 land on the same frame (40 of 81)" in problem.message
    assert problem.line == 6


def test_an_explicit_frame_places_a_keyframe_exactly(make_storyboard):
    path = storyboard(make_storyboard, "{id: a, frames: 161, prompt: x, start: a.png, keyframes: "
                                       "[{image: b.png, frame: 37}, {image: c.png, frame: 120}]}")
    plan = build_plan(load(path))
    assert frames_of(plan, "a") == [0, 37, 120]
    # the shot splits into 81 + 81 frames sharing frame 80: frame 120 is frame 40 of the second segment
    assert [(c.frame, c.image.ref) for c in plan.segment("a.1").conditions if c.image.kind == "asset"] == \
        [(40, "c.png")]


@pytest.mark.parametrize("keyframe, col_key, words", [
    ("{image: b.png, frame: 60}", "60", "takes keyframes on multiples of 8 (or the last frame, 80): frame 60 is "
                                        "not one; use 56 or 64"),
    ("{image: b.png, frame: 81}", "81", "keyframe frame 81 is past the shot's last frame (80: it has 81 frames)"),
    ("{image: b.png, frame: 0}", "0", "keyframe frame 0 conflicts with `start`"),
])
def test_a_bad_explicit_frame_is_reported_at_it(make_storyboard, keyframe, col_key, words):
    path = storyboard(make_storyboard, f"{{id: a, frames: 81, prompt: x, start: a.png, keyframes: [{keyframe}]}}")
    with pytest.raises(InputError) as caught:
        load(path, model="anisora-v3")
    [problem] = caught.value.problems
    line = path.read_text().splitlines()[problem.line - 1]
    assert words in problem.message, problem.message
    assert line[problem.col - 1:].startswith(col_key), (line, problem.col)


@pytest.mark.parametrize("keyframe", ["{image: b.png, at: 0.5, frame: 40}", "{image: b.png}"])
def test_a_keyframe_needs_exactly_one_of_at_and_frame(make_storyboard, keyframe):
    path = storyboard(make_storyboard, f"{{id: a, frames: 81, prompt: x, keyframes: [{keyframe}]}}")
    with pytest.raises(InputError) as caught:
        load(path)
    assert any("exactly one of `at`" in p.message for p in caught.value.problems), caught.value
