"""PV scripts: parsed onto the storyboard model, with every value pointing back at its script line."""
from pathlib import Path

import pytest

from storyboard.adapters.pvscript import parse
from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from tests.conftest import write_png

SCRIPT = """\
# Starlight Run
@mika: characters/mika.png | pink twin tails
@sora: | teal hair
music: music/theme.wav
// a comment
## city rooftop at night
- [3s] wide shot, @mika at the rail << boards/roof.png
- [2.5s] close-up, @mika smiles to @sora << previous
- [49f] the skyline >> boards/end.png
## stage
- [33f] fireworks << boards/roof.png >> boards/end.png
"""


def test_script_becomes_scenes_shots_and_characters():
    data = parse(Path("x.pv"), SCRIPT).data
    assert data["title"] == "Starlight Run"
    assert data["audio"] == "music/theme.wav"
    assert data["characters"] == {"mika": {"name": "Mika", "refs": ["characters/mika.png"], "description": "pink twin tails"},
                                  "sora": {"name": "Sora", "refs": [], "description": "teal hair"}}
    assert [(s["id"], s["description"]) for s in data["scenes"]] == [("scene-01", "city rooftop at night"), ("scene-02", "stage")]
    shots = [shot for scene in data["scenes"] for shot in scene["shots"]]
    assert [s["id"] for s in shots] == ["scene-01-010", "scene-01-020", "scene-01-030", "scene-02-010"]
    assert shots[0] == {"id": "scene-01-010", "duration": 3.0, "prompt": "wide shot, @mika at the rail",
                        "start": "boards/roof.png", "characters": ["mika"]}
    assert shots[1]["start"] == "previous" and shots[1]["characters"] == ["mika", "sora"]
    assert shots[2]["frames"] == 49 and shots[2]["keyframes"] == [{"at": 1.0, "image": "boards/end.png"}]
    assert "start" not in shots[2]
    assert shots[3]["start"] == "boards/roof.png" and shots[3]["keyframes"][0]["image"] == "boards/end.png"


def test_shots_before_any_scene_heading_go_to_a_first_scene():
    data = parse(Path("x.pv"), "- [1s] hello\n## later\n- [1s] bye\n").data
    assert [len(s["shots"]) for s in data["scenes"]] == [1, 1]
    assert data["title"] == "x"


def _pv(tmp_path: Path, text: str, images=("characters/mika.png", "boards/roof.png", "boards/end.png")) -> Path:
    for name in images:
        write_png(tmp_path / name)
    path = tmp_path / "script.pv"
    path.write_text(text)
    return path


def test_a_pv_script_plans_like_a_storyboard(tmp_path):
    text = SCRIPT.replace("music: music/theme.wav\n", "")
    plan = build_plan(load(_pv(tmp_path, text)))
    assert [s.frames for s in plan.shots] == [49, 41, 49, 33]
    assert plan.segment("scene-01-020.0").deps == ("scene-01-010.0",)
    assert plan.segment("scene-01-010.0").prompt.startswith("wide shot, Mika at the rail. Mika: pink twin tails.")


def test_validation_errors_point_at_the_script_line_and_column(tmp_path):
    path = _pv(tmp_path, "# T\n@mika: characters/mika.png\n## s\n- [1s] hi @bob << boards/missing.png\n")
    with pytest.raises(InputError) as caught:
        load(path)
    lines = [str(p) for p in caught.value.problems]
    assert any(l.startswith(f"{path}:4:11: error:") and "unknown character `bob`" in l for l in lines), lines
    assert any(l.startswith(f"{path}:4:19: error:") and "boards/missing.png" in l for l in lines), lines


def test_every_bad_line_is_reported_at_once(tmp_path):
    text = ("# One\n# Two\n@mika: a.png\n@mika: b.png\n## s\n- [3x] bad\n- 3s no brackets\n"
            "what is this\n- [2s]   << a.png\n- [1s] ok << \n")
    with pytest.raises(InputError) as caught:
        parse(tmp_path / "s.pv", text)
    got = [(p.line, p.col) for p in caught.value.problems]
    assert got == [(2, 1), (4, 1), (6, 4), (7, 1), (8, 1), (9, 10), (10, 11)]
    messages = " | ".join(p.message for p in caught.value.problems)
    for words in ("second title", "defined twice", "bad duration `[3x]`", "duration in brackets",
                  "not a PV script line", "no text", "needs an image path"):
        assert words in messages


def test_a_script_without_shots_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no shots"):
        parse(tmp_path / "s.pv", "# Title\n## scene\n")
