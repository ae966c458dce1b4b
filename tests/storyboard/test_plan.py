"""The planner: storyboard in, a DAG of frozen, content-hashed render segments out."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from storyboard.load import load
from storyboard.plan import Plan, build_plan, split_frames
from storyboard.presets import FrameGrid, load_preset

HEADER = "sakuga: 1\noutput: {width: 128, height: 96}\n"


def one_scene(*shots: str, characters: str = "", description: str = "") -> str:
    """A storyboard with one scene holding `shots` (each a flow mapping)."""
    text = HEADER + (f"characters:\n{characters}" if characters else "") + "scenes:\n  - id: roof\n"
    if description:
        text += f"    description: {description}\n"
    return text + "    shots:\n" + "".join(f"      - {s}\n" for s in shots)


@pytest.fixture
def plan_of(make_storyboard):
    """`plan_of(yaml_text, images=[...], model=None)` → Plan."""

    def plan(text: str, images=(), model: str | None = None, name: str = "storyboard.yaml") -> Plan:
        return build_plan(load(make_storyboard(text, images, name), model=model))

    return plan


# ---------------------------------------------------------------- frames


@pytest.mark.parametrize("length, frames", [
    ("duration: 3.0", 49),      # 48 frames at 16 fps, snapped to 4k+1
    ("duration: 1.0", 17),      # 16 → 17
    ("duration: 5.0625", 81),   # 81 exactly
    ("frames: 17", 17),         # already on the grid
    ("frames: 52", 53),         # nearest on the grid
    ("frames: 48", 49),
])
def test_shot_length_snaps_to_the_4k_plus_1_grid(plan_of, length, frames):
    plan = plan_of(one_scene(f"{{id: a, {length}, prompt: x}}"))
    assert plan.shots[0].frames == frames
    assert (frames - 1) % 4 == 0


def test_frame_grid_snap_is_on_the_grid_and_nearest():
    grid = FrameGrid(step=4, offset=1)
    for raw in range(1, 400):
        snapped = grid.snap(raw)
        assert grid.on_grid(snapped)
        assert abs(snapped - raw) <= 2


@pytest.mark.parametrize("frames, sizes", [(81, [81]), (85, [45, 41]), (121, [61, 61]), (161, [81, 81]),
                                           (165, [57, 57, 53])])
def test_long_shots_split_into_segments_overlapping_by_one_frame(frames, sizes):
    got = split_frames(frames, load_preset("animatic"))
    assert got == sizes
    assert sum(got) - (len(got) - 1) == frames


def _check_split(frames: int, sizes: list[int], preset) -> None:
    grid = preset.frame_grid
    assert sum(sizes) - (len(sizes) - 1) == frames, "neighbours share exactly one frame"
    assert all(grid.on_grid(s) for s in sizes), sizes
    assert all(preset.min_frames <= s <= preset.max_frames for s in sizes), sizes
    # as few segments as possible, and balanced (no short tail segment)
    assert len(sizes) == max(1, math.ceil((frames - 1) / (preset.max_frames - 1))), sizes
    assert max(sizes) - min(sizes) <= grid.step, sizes


@pytest.mark.parametrize("update", [
    {},                                                        # AniSora V3: 4k+1, at most 81
    {"max_frames": 33},
    {"max_frames": 49, "min_frames": 9},
    {"frame_grid": FrameGrid(step=8, offset=1), "max_frames": 97, "min_frames": 9},
])
def test_every_on_grid_length_splits_into_valid_segments(update):
    """Property check over every on-grid shot length up to 10 minutes at 16 fps (hypothesis is not a
    dependency; the space is small enough to enumerate)."""
    preset = load_preset("animatic").model_copy(update=update)
    grid = preset.frame_grid
    longest = 9601 if not update else 40 * preset.max_frames   # all shot lengths the schema allows, or 40 segments
    for frames in range(preset.min_frames, longest + 1):
        if grid.on_grid(frames):
            _check_split(frames, split_frames(frames, preset), preset)


def test_shot_frames_are_what_its_segments_cover(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 161, prompt: x}", "{id: b, frames: 121, prompt: y}"))
    for shot in plan.shots:
        segs = [plan.segment(s) for s in shot.segments]
        assert [s.first_frame for s in segs] == [sum(x.frames - 1 for x in segs[:i]) for i in range(len(segs))]
        assert segs[-1].first_frame + segs[-1].frames == shot.frames
    assert [plan.segment(s).frames for s in plan.shots[0].segments] == [81, 81]
    assert [plan.segment(s).frames for s in plan.shots[1].segments] == [61, 61]


# ---------------------------------------------------------------- dependencies and conditions


def test_start_previous_depends_on_the_previous_shots_last_segment(plan_of):
    plan = plan_of(HEADER + """\
scenes:
  - id: one
    shots:
      - {id: a, frames: 161, prompt: x}
  - id: two
    shots:
      - {id: b, frames: 17, prompt: y, start: previous}
""")
    a_last, b = plan.segment("a.1"), plan.segment("b.0")
    assert b.deps == ("a.1",)
    assert [(c.frame, c.image.kind, c.image.ref, c.image.sha256) for c in b.conditions] == \
        [(0, "segment", "a.1", a_last.hash)]
    assert b.start == b.conditions[0].image


def test_chained_segment_depends_on_the_one_before_and_starts_from_it(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 241, prompt: x, start: a.png}"), images=["a.png"])
    segs = [plan.segment(s) for s in plan.shots[0].segments]
    assert len(segs) == 3
    assert segs[0].deps == ()
    assert [(c.frame, c.image.kind, c.image.ref) for c in segs[0].conditions] == [(0, "asset", "a.png")]
    for up, seg in zip(segs, segs[1:]):
        assert seg.deps == (up.id,)
        assert [(c.frame, c.image.kind, c.image.ref, c.image.sha256) for c in seg.conditions] == \
            [(0, "segment", up.id, up.hash)]


def test_independent_shots_have_no_dependencies(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 17, prompt: x}", "{id: b, frames: 17, prompt: y, start: b.png}"),
                   images=["b.png"])
    assert [s.deps for s in plan.segments] == [(), ()]
    assert plan.segment("a.0").conditions == ()


def test_segments_are_in_dependency_order(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 161, prompt: x}", "{id: b, frames: 161, prompt: y, start: previous}",
                             "{id: c, frames: 17, prompt: z, start: previous}"))
    seen: set[str] = set()
    for seg in plan.segments:
        assert set(seg.deps) <= seen
        seen.add(seg.id)
    assert plan.segment("c.0").deps == ("b.1",)


@pytest.mark.parametrize("at, segment, local", [
    (0.25, "a.0", 40),
    (0.5, "a.0", 80),    # the frame both segments share belongs to the earlier one
    (0.75, "a.1", 40),
    (1.0, "a.1", 80),
    (0.5 + 1 / 160, "a.1", 1),
])
def test_keyframe_lands_on_its_segment_and_local_frame(plan_of, at, segment, local):
    plan = plan_of(one_scene(f"{{id: a, frames: 161, prompt: x, keyframes: [{{image: k.png, at: {at}}}]}}"),
                   images=["k.png"])
    placed = [(s.id, c.frame) for s in plan.segments for c in s.conditions if c.image.kind == "asset"]
    assert placed == [(segment, local)]


def test_keyframe_at_0_is_the_first_frame_condition(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 17, prompt: x, keyframes: [{image: k.png, at: 0}, {image: e.png, at: 1}]}"),
                   images=["k.png", "e.png"])
    seg = plan.segment("a.0")
    assert [(c.frame, c.image.ref) for c in seg.conditions] == [(0, "k.png"), (16, "e.png")]
    assert seg.start.ref == "k.png"


# ---------------------------------------------------------------- seeds


def test_shot_seed_counts_up_per_segment(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 241, prompt: x, seed: 7}", "{id: b, frames: 17, prompt: y, seed: 4294967295}"))
    assert [s.seed for s in plan.segments] == [7, 8, 9, 4294967295]


def test_derived_seeds_are_stable_distinct_and_follow_the_default_seed(make_storyboard):
    text = one_scene("{id: a, frames: 161, prompt: x}", "{id: b, frames: 17, prompt: y}")
    first = build_plan(load(make_storyboard(text)))
    again = build_plan(load(make_storyboard(text)))
    seeds = [s.seed for s in first.segments]
    assert seeds == [s.seed for s in again.segments]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**32 for s in seeds)
    other = build_plan(load(make_storyboard(text.replace("sakuga: 1\n", "sakuga: 1\ndefaults: {seed: 99}\n"))))
    assert all(a.seed != b.seed for a, b in zip(first.segments, other.segments))


# ---------------------------------------------------------------- content hashes

BASE_SHOTS = (
    "{id: a, frames: 161, prompt: Hana waves, start: a.png, seed: 1}",
    "{id: b, frames: 17, prompt: continues, start: previous, seed: 2}",
    "{id: c, frames: 17, prompt: elsewhere, start: c.png, seed: 3}",
)


def hashes(plan: Plan) -> dict[str, str]:
    return {s.id: s.hash for s in plan.segments}


@pytest.fixture
def base(plan_of):
    return hashes(plan_of(one_scene(*BASE_SHOTS), images=["a.png", "c.png"]))


def edited(plan_of, old: str, new: str, **kw) -> dict[str, str]:
    shots = [s.replace(old, new) for s in BASE_SHOTS]
    assert shots != list(BASE_SHOTS), "test bug: the edit changed nothing"
    return hashes(plan_of(one_scene(*shots), images=["a.png", "c.png"], **kw))


def test_hash_is_deterministic(plan_of, base):
    assert hashes(plan_of(one_scene(*BASE_SHOTS), images=["a.png", "c.png"])) == base
    assert all(len(h) == 64 for h in base.values())
    assert len(set(base.values())) == len(base)


def test_editing_a_prompt_changes_its_shot_and_its_continuity_descendants_only(plan_of, base):
    after = edited(plan_of, "Hana waves", "Hana bows")
    assert {k for k in base if base[k] != after[k]} == {"a.0", "a.1", "b.0"}


def test_editing_an_independent_shot_keeps_every_other_hash(plan_of, base):
    after = edited(plan_of, "elsewhere", "somewhere else")
    assert {k for k in base if base[k] != after[k]} == {"c.0"}


def test_changing_a_seed_changes_the_hash(plan_of, base):
    after = edited(plan_of, "seed: 3", "seed: 4")
    assert {k for k in base if base[k] != after[k]} == {"c.0"}


def test_changing_an_images_bytes_changes_the_hashes_that_use_it(plan_of, base, tmp_path: Path):
    plan = plan_of(one_scene(*BASE_SHOTS), images=["a.png", "c.png"])
    assert hashes(plan) == base
    Image.new("RGB", (32, 24), (1, 2, 3)).save(tmp_path / "a.png")   # same name, new pixels
    after = hashes(build_plan(load(tmp_path / "storyboard.yaml")))
    assert {k for k in base if base[k] != after[k]} == {"a.0", "a.1", "b.0"}


def test_changing_the_model_changes_every_hash(plan_of, base):
    after = hashes(plan_of(one_scene(*BASE_SHOTS), images=["a.png", "c.png"], model="anisora-v3"))
    assert all(base[k] != after[k] for k in base)


# Renames are checked on a model without burned-in captions: the animatic's caption shows the shot id.
UNCAPTIONED = "anisora-v3"


def test_renaming_a_shot_with_a_seed_keeps_its_first_segments_hash(plan_of):
    before = hashes(plan_of(one_scene(*BASE_SHOTS), images=["a.png", "c.png"], model=UNCAPTIONED))
    after = edited(plan_of, "id: c,", "id: c-renamed,", model=UNCAPTIONED)
    assert after["c-renamed.0"] == before["c.0"]


def test_renaming_a_shot_keeps_every_hash_of_its_chain(plan_of):
    before = hashes(plan_of(one_scene(*BASE_SHOTS), images=["a.png", "c.png"], model=UNCAPTIONED))
    after = edited(plan_of, "id: a,", "id: a-renamed,", model=UNCAPTIONED)
    assert [after["a-renamed.0"], after["a-renamed.1"], after["b.0"]] == [before["a.0"], before["a.1"], before["b.0"]]


def test_renaming_a_shot_without_a_seed_keeps_its_hash(plan_of):
    text = one_scene("{id: a, frames: 17, prompt: x}", "{id: b, frames: 17, prompt: y}")
    before = hashes(plan_of(text, model=UNCAPTIONED))
    after = hashes(plan_of(text.replace("id: b,", "id: b-renamed,"), name="renamed.yaml", model=UNCAPTIONED))
    assert after["b-renamed.0"] == before["b.0"]


def test_renaming_a_shot_re_renders_it_when_the_engine_burns_its_id_into_a_caption(plan_of, base):
    after = edited(plan_of, "id: c,", "id: c-renamed,")
    assert after["c-renamed.0"] != base["c.0"]
    assert after["a.0"] == base["a.0"]


def test_moving_a_shot_to_another_scene_keeps_its_hash(plan_of, base):
    text = one_scene(*BASE_SHOTS[:2]) + "  - id: other\n    shots:\n      - " + BASE_SHOTS[2] + "\n"
    after = hashes(plan_of(text, images=["a.png", "c.png"]))
    assert after == base


# ---------------------------------------------------------------- prompts


def test_prompt_names_characters_and_adds_descriptions_setting_camera_and_scores(plan_of):
    characters = ("  hana: {name: Hana, description: \"short silver hair, red scarf\"}\n"
                  "  sora: {name: Sora, description: \"tall, glasses\"}\n")
    text = one_scene(
        '{id: a, frames: 17, prompt: "@hana turns to @sora", characters: [hana], camera: slow push in, aesthetic: 6.5}',
        characters=characters, description="school rooftop at dusk")
    prompt = plan_of(text).segment("a.0").prompt
    assert prompt == ("Hana turns to Sora. Hana: short silver hair, red scarf. Sora: tall, glasses. "
                      "Setting: school rooftop at dusk. "
                      "Camera: slow push in. aesthetic score: 6.5. motion score: 1.3. There is no text in the video.")


def test_a_mentioned_character_is_in_the_shot_with_its_refs(plan_of):
    characters = "  hana: {name: Hana, refs: [hana.png]}\n  sora: {name: Sora}\n"
    plan = plan_of(one_scene('{id: a, frames: 17, prompt: "@sora waves at @hana", characters: [sora]}',
                             characters=characters), images=["hana.png"])
    assert plan.shots[0].characters == ("sora", "hana")
    assert [c.id for c in plan.segment("a.0").characters] == ["sora", "hana"]
    assert [r.ref for r in plan.segment("a.0").characters[1].refs] == ["hana.png"]


def test_moving_a_board_to_another_path_keeps_the_hash(plan_of, make_storyboard):
    text = one_scene("{id: a, frames: 17, prompt: x, start: boards/a.png}")
    before = plan_of(text, images=["boards/a.png"]).segment("a.0")
    after = plan_of(text.replace("boards/a.png", "art/board-a.png"), images=["art/board-a.png"],
                    name="moved.yaml").segment("a.0")
    assert after.start.ref == "art/board-a.png"
    assert after.hash == before.hash


def test_prompt_uses_storyboard_defaults_before_the_preset(plan_of):
    text = one_scene("{id: a, frames: 17, prompt: Hana waves.}").replace("sakuga: 1\n", "sakuga: 1\ndefaults: {motion: 3.0}\n")
    plan = plan_of(text)
    assert plan.segment("a.0").prompt == \
        "Hana waves. aesthetic score: 5.5. motion score: 3.0. There is no text in the video."
    assert plan.shots[0].prompt == plan.segment("a.0").prompt


# ---------------------------------------------------------------- cost, critical path, cut length


def test_critical_path_and_gpu_seconds_follow_the_cost_model(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 81, prompt: x, start: a.png}", "{id: b, frames: 17, prompt: y, start: previous}",
                             "{id: c, frames: 161, prompt: z, start: c.png}"), images=["a.png", "c.png"], model="anisora-v3")
    preset = load_preset("anisora-v3")

    def cost(frames: int, degree: int = 1) -> float:
        return preset.runtime(frames, 128, 96, steps=8, guidance=1.0, degree=degree)

    assert plan.segment("a.0").runtime(1) == pytest.approx(cost(81))
    assert plan.segment("a.0").runtime(8) == pytest.approx(cost(81, 8))
    assert plan.segment("a.0").runtime(8) < plan.segment("a.0").runtime(1)
    assert plan.estimated_gpu_s == pytest.approx(cost(81) + cost(17) + 2 * cost(81))
    assert plan.critical_path_s(1) == pytest.approx(max(cost(81) + cost(17), 2 * cost(81)))
    assert plan.critical_path_s() == pytest.approx(max(cost(81, 8) + cost(17, 8), 2 * cost(81, 8)))


def test_segments_with_no_picture_go_to_the_text_to_video_companion(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 161, prompt: x}", "{id: b, frames: 17, prompt: y, start: b.png}"),
                   images=["b.png"], model="anisora-v3")
    models = {s.id: s.model for s in plan.segments}
    # the first half of the long text-only shot has no picture; its second half continues from it
    assert models == {"a.0": "wan2.1-t2v-1.3b", "a.1": "anisora-v3", "b.0": "anisora-v3"}
    assert set(plan.presets) == {"anisora-v3", "wan2.1-t2v-1.3b"}
    t2v = load_preset("wan2.1-t2v-1.3b")
    # with its own sampling defaults (50 steps, guidance 5), which the storyboard did not override
    a0 = plan.segment("a.0")
    assert (a0.steps, a0.guidance, a0.shift) == (t2v.defaults.steps, t2v.defaults.guidance, t2v.defaults.shift)
    assert a0.runtime(1) == pytest.approx(t2v.runtime(81, 128, 96, steps=50, guidance=5.0))
    assert plan.segment("a.0").hash != plan_of(one_scene("{id: a, frames: 161, prompt: x}"), model="wan-tiny",
                                               name="other.yaml").segment("a.0").hash


def test_cost_model_grows_with_frames_steps_and_guidance():
    preset = load_preset("anisora-v3")
    base = preset.runtime(81, 832, 480, steps=8, guidance=1.0)
    assert preset.runtime(49, 832, 480, steps=8, guidance=1.0) < base
    assert preset.runtime(81, 832, 480, steps=16, guidance=1.0) > base
    assert preset.runtime(81, 832, 480, steps=8, guidance=5.0) > base   # classifier-free guidance: 2 forwards


def test_episode_frames_is_shot_frames_minus_crossfades(plan_of):
    plan = plan_of(one_scene("{id: a, frames: 49, prompt: x, transition: {crossfade: 0.5}}",
                             "{id: b, frames: 161, prompt: y, transition: {crossfade: 0.25}}",
                             "{id: c, duration: 2.0, prompt: z}"))
    assert [s.frames for s in plan.shots] == [49, 161, 33]
    assert [s.crossfade_frames for s in plan.shots] == [8, 4, 0]
    assert plan.episode_frames == 49 + 161 + 33 - 8 - 4


def test_plan_json_has_the_documented_keys(make_storyboard, sakuga):
    path = make_storyboard(one_scene(
        "{id: a, frames: 161, prompt: x, characters: [hana], transition: {crossfade: 0.5}}",
        "{id: b, frames: 17, prompt: y, start: previous}",
        characters="  hana: {name: Hana}\n"))
    result = sakuga("plan", path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [{k: s[k] for k in ("id", "scene", "frames", "characters")} for s in data["shots"]] == [
        {"id": "a", "scene": "roof", "frames": 161, "characters": ["hana"]},
        {"id": "b", "scene": "roof", "frames": 17, "characters": []},
    ]
    assert [{k: s[k] for k in ("id", "shot", "frames", "deps", "degree")} for s in data["segments"]] == [
        {"id": "a.0", "shot": "a", "frames": 81, "deps": [], "degree": 1},
        {"id": "a.1", "shot": "a", "frames": 81, "deps": ["a.0"], "degree": 1},
        {"id": "b.0", "shot": "b", "frames": 17, "deps": ["a.1"], "degree": 1},
    ]
    plan = build_plan(load(path))
    assert data["critical_path_s"] == pytest.approx(plan.critical_path_s(1), abs=1e-3)
    assert data["estimated_gpu_s"] == pytest.approx(plan.estimated_gpu_s, abs=1e-3)
    assert data["critical_path_s"] > 0
    assert data["episode_frames"] == 161 + 17 - 8


def test_plan_table_and_model_override(make_storyboard, sakuga):
    path = make_storyboard(one_scene("{id: a, frames: 161, prompt: x}"))
    result = sakuga("plan", path, "--model", "anisora-v3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "anisora-v3"
    table = sakuga("plan", path)
    assert table.exit_code == 0
    assert "a.1" in table.stdout and "critical path" in table.stdout


def test_plan_with_an_unknown_model_override_is_an_input_error(make_storyboard, sakuga):
    path = make_storyboard(one_scene("{id: a, frames: 17, prompt: x}"))
    result = sakuga("plan", path, "--model", "nope")
    assert result.exit_code == 2
    assert "unknown model preset 'nope'" in result.stderr
