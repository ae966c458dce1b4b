"""The output size: `--size`, the storyboard's `output`, the preset's native size; V3.2's size list."""
from __future__ import annotations

from pathlib import Path

import pytest

from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.size import parse_size
from tests.conftest import write_png

SUFFIX = " aesthetic score: 5.5. motion score: 3.0. There is no text in the video."


def prompt_file(folder: Path, line: str, size=(32, 24), encoding="utf-8", ending="\r\n") -> Path:
    """An AniSora prompt file as AniSora's samples are written (CRLF; `ending` "" for no final newline)."""
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_png(folder / name, size=size)
    path = folder / "prompts.txt"
    path.write_bytes((line + ending).encode(encoding))
    return path


def test_a_prompt_file_with_four_positions_planned_for_anisora_v3_keys_frames_0_40_64_80_at_1280x720(tmp_path):
    path = prompt_file(tmp_path, "a girl turns" + SUFFIX + "@@a.png,b.png,c.png,d.png&&0,0.5,0.75,1")
    plan = build_plan(load(path, model="anisora-v3"))
    [segment] = plan.segments
    assert [(c.frame, c.image.ref) for c in segment.conditions] == [(0, "a.png"), (40, "b.png"), (64, "c.png"),
                                                                     (80, "d.png")]
    assert (plan.width, plan.height) == (segment.width, segment.height) == (1280, 720)
    assert segment.frames == 81


def test_a_portrait_first_picture_makes_the_native_size_portrait(tmp_path):
    path = prompt_file(tmp_path, "a girl turns@@a.png,b.png&&0,1", size=(24, 48))
    plan = build_plan(load(path, model="anisora-v3"))
    assert (plan.width, plan.height) == (720, 1280)


def test_the_size_the_user_sets_wins_over_the_native_size(tmp_path, make_storyboard):
    path = prompt_file(tmp_path, "a girl turns@@a.png")
    assert (build_plan(load(path, model="anisora-v3", size=(832, 480))).width) == 832
    yaml = make_storyboard("sakuga: 1\noutput: {width: 640, height: 368}\nscenes:\n  - id: s\n    shots:\n"
                           "      - {id: a, frames: 9, prompt: x}\n", name="set.yaml")
    plan = build_plan(load(yaml, model="anisora-v3"))
    assert (plan.width, plan.height) == (640, 368)
    unset = make_storyboard("sakuga: 1\nscenes:\n  - id: s\n    shots:\n      - {id: a, frames: 9, prompt: x}\n",
                            name="unset.yaml")
    assert (build_plan(load(unset, model="anisora-v3")).width, build_plan(load(unset)).width) == (1280, 832)


def test_a_model_without_a_native_size_keeps_the_default_size(tmp_path):
    plan = build_plan(load(prompt_file(tmp_path, "a girl turns@@a.png")))
    assert (plan.model, plan.width, plan.height) == ("animatic", 832, 480)


def test_v32_refuses_a_storyboard_size_it_does_not_take_naming_the_sizes_it_does(make_storyboard):
    path = make_storyboard("sakuga: 1\nmodel: anisora-v3.2\noutput: {width: 1024, height: 576}\nscenes:\n"
                           "  - id: s\n    shots:\n      - {id: a, frames: 9, prompt: x}\n")
    with pytest.raises(InputError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(path), 3)
    assert problem.message == ("model `anisora-v3.2` renders only these sizes: 1280x720, 720x1280, 832x480, "
                               "480x832; not 1024x576")
    assert build_plan(load(path, model="anisora-v3.2", size=(480, 832))).width == 480


def test_v32_refuses_a_size_from_the_command_line_at_the_option(tmp_path, sakuga):
    path = prompt_file(tmp_path, "a girl turns@@a.png")
    result = sakuga("plan", path, "--model", "anisora-v3.2", "--size", "1024x576")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("--size:1:1: error: model `anisora-v3.2` renders only these sizes: 1280x720, "
                                     "720x1280, 832x480, 480x832; not 1024x576")
    ok = sakuga("validate", path, "--model", "anisora-v3.2", "--size", "832*480")   # AniSora's spelling
    assert ok.exit_code == 0 and "832x480" in ok.stdout


@pytest.mark.parametrize("text, size", [("1280x720", (1280, 720)), ("1280*720", (1280, 720)), (" 480 X 832 ", (480, 832))])
def test_sizes_are_written_width_by_height(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text, words", [("1280", "expected WIDTHxHEIGHT"), ("1281x720", "multiple of 16"),
                                         ("4096x720", "less than or equal to 3840")])
def test_a_bad_size_says_why(text, words):
    with pytest.raises(ValueError, match=words):
        parse_size(text)
