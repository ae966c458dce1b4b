"""`identity: keyframe`: a character's reference picture as a condition picture (V3.2 has no image embeddings)."""
from __future__ import annotations

import pytest

from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan

BOARD = """\
sakuga: 1
output: {width: 832, height: 480}
characters:
  hana: {name: Hana, refs: [hana.png, hana-side.png]}
  kai: {name: Kai}
scenes:
  - id: s
    shots:
"""


def plan_of(make_storyboard, *shots: str, model: str | None = None):
    path = make_storyboard(BOARD + "".join(f"      - {s}\n" for s in shots),
                           ["hana.png", "hana-side.png", "a.png", "b.png"])
    return build_plan(load(path, model=model))


def pictures(plan, sid: str) -> list[tuple[int, str]]:
    return [(c.frame, c.image.ref) for c in plan.segment(sid).conditions]


def test_the_reference_goes_on_the_first_frame_of_a_shot_without_a_start(make_storyboard):
    plan = plan_of(make_storyboard, '{id: a, frames: 81, prompt: "@kai and @hana wave", identity: keyframe}',
                   "{id: b, frames: 81, prompt: y, characters: [hana]}", model="anisora-v3.2")
    assert pictures(plan, "a.0") == [(0, "hana.png")]       # kai has no refs: the first character with one
    # so the shot stays with the image-to-video model instead of going to the text-to-video companion
    assert plan.segment("a.0").model == "anisora-v3.2" and plan.segment("b.0").model == "wan2.1-t2v-1.3b"
    assert plan.segment("a.0").hash != plan_of(make_storyboard, '{id: a, frames: 81, prompt: "@kai and @hana wave"}',
                                               model="anisora-v3.2").segment("a.0").hash


def test_the_reference_goes_on_the_last_frame_when_the_first_has_a_picture(make_storyboard):
    plan = plan_of(make_storyboard, "{id: a, frames: 17, prompt: x, start: a.png}",
                   "{id: b, frames: 161, prompt: y, characters: [hana], start: previous, identity: keyframe}",
                   "{id: c, frames: 17, prompt: z, characters: [hana], start: a.png, identity: keyframe, "
                   "keyframes: [{image: b.png, at: 1.0}]}")
    assert pictures(plan, "b.0") == [(0, "a.0")]             # the continued frame; the shot's last frame is in b.1
    assert pictures(plan, "b.1") == [(0, "b.0"), (80, "hana.png")]
    assert pictures(plan, "c.0") == [(0, "a.png"), (16, "b.png")]   # both ends taken: nothing added


def test_identity_can_be_every_shots_default(make_storyboard):
    text = BOARD.replace("scenes:", "defaults: {identity: keyframe}\nscenes:")
    path = make_storyboard(text + "      - {id: a, frames: 17, prompt: x, characters: [hana]}\n"
                                  "      - {id: b, frames: 17, prompt: y}\n", ["hana.png", "hana-side.png"])
    plan = build_plan(load(path))
    assert pictures(plan, "a.0") == [(0, "hana.png")] and pictures(plan, "b.0") == []


def test_identity_keyframe_on_a_shot_whose_characters_have_no_references_is_an_error(make_storyboard):
    with pytest.raises(InputError) as caught:
        plan_of(make_storyboard, "{id: a, frames: 17, prompt: x, characters: [kai], identity: keyframe}")
    [problem] = caught.value.problems
    assert "none of its characters has `refs`" in problem.message and problem.line == 9
