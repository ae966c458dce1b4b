"""Validation: schema problems mapped to lines in an artist's words, semantic checks, checked assets."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from storyboard.errors import InputError, Problem
from storyboard.load import load
from storyboard.model import keyframe_frame
from storyboard.plan import build_plan
from storyboard.presets import available, load_preset
from storyboard.validate import validate

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
sakuga: 1
title: Rooftop
characters:
  hana:
    name: Hana
    refs: [characters/hana.png]
    description: short silver hair, red scarf
scenes:
  - id: roof
    description: school rooftop at dusk
    shots:
      - id: roof-010
        duration: 3.0
        prompt: "@hana turns to the camera"
        characters: [hana]
        start: boards/010.png
        keyframes: [{image: boards/010-end.png, at: 1.0}]
        transition: {crossfade: 0.5}
      - id: roof-020
        frames: 97
        prompt: the city below
        start: previous
"""
IMAGES = ["characters/hana.png", "boards/010.png", "boards/010-end.png"]


def problems(path: Path, **kw) -> list[tuple[int, int, str]]:
    with pytest.raises(InputError) as e:
        load(path, **kw)
    return [(p.line, p.col, p.message) for p in e.value.problems]


def test_a_good_storyboard_validates_with_every_asset_checked(make_storyboard, tmp_path: Path):
    loaded = load(make_storyboard(GOOD, IMAGES))
    assert loaded.preset.name == "animatic"
    assert loaded.fps == 16                                   # from the model when output.fps is not given
    assert set(loaded.assets) == set(IMAGES)
    for written, asset in loaded.assets.items():
        assert asset.path == (tmp_path / written).resolve()
        assert asset.sha256 == hashlib.sha256((tmp_path / written).read_bytes()).hexdigest()


def test_validate_command_prints_a_one_line_summary(make_storyboard, sakuga):
    path = make_storyboard(GOOD, IMAGES)
    result = sakuga("validate", path)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{path}: ok")
    assert "1 scenes, 2 shots, 3 segments" in line and "model animatic" in line


def test_model_override_replaces_the_storyboards_preset(make_storyboard):
    loaded = load(make_storyboard(GOOD, IMAGES), model="anisora-v3")
    assert loaded.preset.name == "anisora-v3"


def test_asset_root_also_allows_relative_paths_into_it(tmp_path: Path, make_storyboard):
    path = make_storyboard(GOOD.replace("characters/hana.png", "../shared/hana.png"), name="board/storyboard.yaml",
                           images=["shared/hana.png", "board/boards/010.png", "board/boards/010-end.png"])
    assert problems(path) == [(6, 12, "path '../shared/hana.png' leaves the storyboard's folder")]
    loaded = load(path, asset_roots=[tmp_path / "shared"])
    assert loaded.asset("../shared/hana.png").path == tmp_path / "shared" / "hana.png"


# ---------------------------------------------------------------- schema problems, worded


@pytest.mark.parametrize("edit, expected", [
    (("duration: 3.0", "duration: 0"), (13, 19, "`duration`: must be greater than 0 (got 0)")),
    (("frames: 97", "frames: 97.5"), (20, 17, "`frames`: expected a whole number, got the number 97.5")),
    (("prompt: the city below", "prompt: [the, city]"), (21, 17, "`prompt`: expected text, got a list")),
    (("prompt: the city below", "prompt: 42"),
     (21, 17, "`prompt`: expected text, got the number 42 (put it in quotes if it is meant as text)")),
    (("prompt: the city below", 'prompt: ""'), (21, 17, "`prompt`: must not be empty")),
    (("prompt: the city below", "prompt: yes"),
     (21, 17, "`prompt`: expected text, got `true` (put it in quotes if it is meant as text)")),
    (("transition: {crossfade: 0.5}", "transition: fade"),
     (18, 21, "`transition`: expected `cut` or `{crossfade: SECONDS}`, got text 'fade'")),
    (("transition: {crossfade: 0.5}", "transition: {crosfade: 0.5}"),
     (18, 22, "unknown field `crosfade` (did you mean `crossfade`?)")),
    (("id: roof-010", "id: Roof 010"),
     (12, 13, "`id`: 'Roof 010' is not a valid id (ids use lowercase letters, digits, `-` and `_`, and start "
              "with a letter or digit)")),
    (("  hana:\n    name: Hana\n    refs: [characters/hana.png]\n    description: short silver hair, red scarf\n",
      "  hana: Hana\n"), (4, 9, "`hana`: expected a mapping (`key: value` lines), got text 'Hana'")),
    (("sakuga: 1", "sakuga: one"), (1, 9, "unsupported schema version 'one': this sakuga reads `sakuga: 1`")),
])
def test_schema_problems_are_worded_for_artists(make_storyboard, edit, expected):
    text = GOOD.replace(*edit)
    assert text != GOOD
    assert problems(make_storyboard(text, IMAGES)) == [expected]


def test_a_typo_is_one_problem_not_also_a_missing_field(make_storyboard):
    path = make_storyboard(GOOD.replace("prompt: the city below", "promtp: the city below"), IMAGES)
    assert problems(path) == [(21, 9, "unknown field `promtp` (did you mean `prompt`?)")]


def test_a_missing_field_points_at_its_mapping(make_storyboard):
    path = make_storyboard(GOOD.replace("        prompt: the city below\n", ""), IMAGES)
    assert problems(path) == [(19, 9, "missing required field `prompt`")]


def test_schema_and_meaning_problems_are_reported_together(make_storyboard):
    text = GOOD.replace("frames: 97", "frames: -4").replace("characters: [hana]", "characters: [hanna]") \
        .replace("boards/010-end.png", "boards/missing.png")
    assert problems(make_storyboard(text, IMAGES)) == [
        (15, 22, "unknown character `hanna` (did you mean `hana`?)"),
        (17, 29, "image 'boards/missing.png' does not exist"),
        (20, 17, "`frames`: must be greater than or equal to 1 (got -4)"),
    ]


def test_broken_parts_do_not_cause_false_alarms_elsewhere(make_storyboard):
    """A character with a schema problem is still defined; a broken shot still counts as the first."""
    text = GOOD.replace("    name: Hana\n", "    name: Hana\n    age: 16\n") \
        .replace("        duration: 3.0\n", "        duration: 3.0\n        frames: 49\n")
    assert problems(make_storyboard(text, IMAGES)) == [
        (6, 5, "unknown field `age` (known: name, refs, description)"),
        (15, 9, "a shot takes `duration` or `frames`, not both"),
    ]


def test_an_unknown_model_still_gets_its_other_problems_reported(make_storyboard):
    text = GOOD.replace("title: Rooftop", "title: Rooftop\nmodel: anisora-v9").replace("start: previous", "start: nope.png")
    [(line, col, message), second] = problems(make_storyboard(text, IMAGES))
    assert (line, col) == (3, 8) and message.startswith("unknown model preset 'anisora-v9' (known: animatic, anisora-v2,")
    assert second == (23, 16, "image 'nope.png' does not exist")


def test_a_text_to_video_model_refuses_pictures_and_long_shots(make_storyboard):
    text = GOOD.replace("title: Rooftop", "title: Rooftop\nmodel: wan2.1-t2v-1.3b")
    found = problems(make_storyboard(text, IMAGES))
    assert found and all("renders from text only" in m for _, _, m in found)
    assert any("cannot start from a picture" in m for _, _, m in found)


def test_unknown_model_on_the_command_line_is_one_problem(make_storyboard):
    path = make_storyboard(GOOD, IMAGES)
    [(line, col, message)] = problems(path, model="nope")
    assert (line, col) == (1, 1) and "unknown model preset 'nope'" in message


# ---------------------------------------------------------------- meaning


def test_mentions_must_name_characters_but_emails_are_not_mentions(make_storyboard):
    text = GOOD.replace("the city below", "\"@sora looks at the city, mail hana@example.com\"")
    assert problems(make_storyboard(text, IMAGES)) == [
        (21, 17, "prompt mentions `@sora`, which is not a defined character"),
    ]


def test_an_unknown_character_is_reported_once_even_when_mentioned(make_storyboard):
    text = GOOD.replace("@hana turns", "@hanna turns").replace("characters: [hana]", "characters: [hanna]")
    assert problems(make_storyboard(text, IMAGES)) == [(15, 22, "unknown character `hanna` (did you mean `hana`?)")]


def test_without_characters_an_at_sign_is_just_text(make_storyboard):
    text = "sakuga: 1\nscenes:\n  - id: s\n    shots:\n      - {id: a, frames: 17, prompt: \"@home at dusk\"}\n"
    assert load(make_storyboard(text)).storyboard.scenes[0].shots[0].prompt == "@home at dusk"


def test_previous_after_the_first_shot_is_fine_even_across_scenes(make_storyboard):
    text = GOOD + "  - id: city\n    shots:\n      - {id: city-010, frames: 17, prompt: x, start: previous}\n"
    assert len(load(make_storyboard(text, IMAGES)).storyboard.scenes) == 2


def test_crossfade_is_checked_against_the_next_shot_too(make_storyboard):
    text = GOOD.replace("frames: 97", "frames: 5")
    assert problems(make_storyboard(text, IMAGES)) == [
        (18, 33, "crossfade of 8 frames must be shorter than both shots it joins (this one has 49 frames, the next 5)"),
    ]


def test_resolution_must_suit_the_model(make_storyboard, monkeypatch, tmp_path: Path):
    """A preset may need a coarser multiple than the schema's 16."""
    models = tmp_path / "models"
    models.mkdir()
    preset = (ROOT / "configs" / "models" / "animatic.yaml").read_text()
    (models / "coarse.yaml").write_text(preset.replace("name: animatic", "name: coarse")
                                        .replace("resolution_multiple: 16", "resolution_multiple: 64"))
    monkeypatch.setenv("SAKUGA_MODELS", str(models))
    text = GOOD.replace("title: Rooftop", "title: Rooftop\nmodel: coarse\noutput: {width: 832, height: 480}")
    assert problems(make_storyboard(text, IMAGES)) == [
        (4, 30, "`height` must be a multiple of 64 for `coarse`"),
    ]


def test_keyframe_frames_agree_with_the_planner(make_storyboard):
    loaded = load(make_storyboard(GOOD, IMAGES))
    plan = build_plan(loaded)
    seg = plan.segment("roof-010.0")
    assert [c.frame for c in seg.conditions] == [0, keyframe_frame(1.0, 49)] == [0, 48]
    assert keyframe_frame(0.5, 17) == 8 and keyframe_frame(0.0, 17) == 0


def test_validate_works_on_any_adapters_document(tmp_path: Path):
    """Adapters hand over a Document; validate needs no YAML behind it (locations fall back to 1:1)."""
    from storyboard.document import Document

    doc = Document(file=tmp_path / "x.pv", data={"sakuga": 1, "scenes": [{"id": "s", "shots": [
        {"id": "a", "frames": 17, "prompt": "x", "start": "previous"}]}]},
        locations={("scenes", 0, "shots", 0): (3, 1)})
    with pytest.raises(InputError) as e:
        validate(doc)
    assert e.value.problems == [Problem(str(tmp_path / "x.pv"), 3, 1,
                                        "`start: previous` on the first shot: there is no previous shot")]


def test_problems_are_sorted_and_deduplicated():
    a, b = Problem("f", 2, 1, "x"), Problem("f", 1, 5, "y")
    assert InputError([a, b, a]).problems == [b, a]
    assert str(InputError([a, b])) == "f:1:5: error: y\nf:2:1: error: x"


# ---------------------------------------------------------------- presets and schema


def test_every_builtin_preset_loads():
    assert {"animatic", "anisora-v3"} <= set(available())
    for name in available():
        preset = load_preset(name)
        assert preset.name == name
        assert preset.frame_grid.on_grid(preset.max_frames)
        assert set(preset.cost.parallel_efficiency) >= set(preset.degrees)


def test_a_broken_preset_file_is_reported_with_its_line(tmp_path: Path, monkeypatch):
    (tmp_path / "broken.yaml").write_text("name: broken\nengine: wan\nfps: 0\ncost: {}\n")
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    with pytest.raises(InputError) as e:
        load_preset("broken")
    lines = {p.line for p in e.value.problems}
    assert lines == {3, 4}


def test_schema_command_prints_the_storyboard_json_schema(sakuga):
    result = sakuga("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == {"sakuga", "title", "model", "output", "audio", "defaults", "characters", "scenes"}
    assert schema["required"] == ["sakuga", "scenes"]
    assert schema["additionalProperties"] is False
    shot = schema["$defs"]["Shot"]
    assert {"id", "duration", "frames", "prompt", "characters", "start", "keyframes", "camera", "transition",
            "seed"} <= set(shot["properties"])
    assert shot["properties"]["keyframes"]["items"]["$ref"] == "#/$defs/Keyframe"
    keyframe = schema["$defs"]["Keyframe"]["properties"]
    assert {"type": "number", "minimum": 0.0, "maximum": 1.0} in keyframe["at"]["anyOf"]   # `at` or `frame`
    assert {"type": "integer", "minimum": 0, "maximum": 9600} in keyframe["frame"]["anyOf"]


# ---------------------------------------------------------------- the shipped examples


EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in (".yaml", ".yml", ".pv", ".md", ".txt")
                  and p.name.lower() not in ("readme.md", "readme.txt")) if (ROOT / "examples").is_dir() else []


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_shipped_examples_validate(path: Path, sakuga):
    if path.suffix in (".pv", ".md", ".txt"):
        pytest.importorskip("storyboard.adapters.pvscript")
        pytest.importorskip("storyboard.adapters.anisora")
    if path.suffix in (".yaml", ".yml") and "sakuga:" not in path.read_text():
        pytest.skip("not a storyboard")
    result = sakuga("validate", path)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- no input crashes the validator


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


ODD_VALUES = [None, [], {"a": 1}, "", -1, float("nan"), "previous", True, "A B"]


def test_no_value_anywhere_crashes_validation_or_planning(make_storyboard):
    """Every node of a good storyboard replaced by each odd value: the result plans or is an InputError
    with positioned one-line problems; nothing else escapes."""
    import copy

    import yaml

    good = yaml.safe_load(GOOD)
    path = make_storyboard(GOOD, IMAGES)
    outcomes = {"ok": 0, "invalid": 0}
    for where in _paths(good):
        for odd in ODD_VALUES:
            data = copy.deepcopy(good)
            if where:
                parent = data
                for part in where[:-1]:
                    parent = parent[part]
                parent[where[-1]] = odd
            else:
                data = odd
            path.write_text(yaml.safe_dump(data))
            try:
                build_plan(load(path))
                outcomes["ok"] += 1
            except InputError as e:
                outcomes["invalid"] += 1
                assert e.problems
                assert all(p.line >= 1 and p.col >= 1 and "\n" not in p.message for p in e.problems), e
    assert outcomes["ok"] > 10 and outcomes["invalid"] > 200


def test_a_shot_too_short_to_dissolve_in_and_out_is_rejected_on_its_transition(make_storyboard):
    from storyboard.errors import InputError
    from storyboard.load import load

    path = make_storyboard(
        "sakuga: 1\nscenes:\n  - id: s\n    shots:\n"
        "      - {id: a, frames: 17, prompt: a, transition: {crossfade: 0.5}}\n"
        "      - {id: b, frames: 13, prompt: b, transition: {crossfade: 0.5}}\n"
        "      - {id: c, frames: 17, prompt: c}\n")
    with pytest.raises(InputError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert problem.line == 6 and "dissolve in over 8 frames and out over 8" in problem.message
