"""AniSora prompt files: PROMPT@@IMAGES&&POSITIONS per line, UTF-8 or GBK."""
from pathlib import Path

import pytest

from storyboard.adapters.anisora import CLIP_FRAMES, parse
from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from tests.conftest import write_png

SUFFIX = " aesthetic score: 6.0. motion score: 2.5. There is no text in the video."


def shots(text: str) -> list[dict]:
    return parse(Path("p.txt"), text).data["scenes"][0]["shots"]


def test_single_image_is_the_first_frame_and_scores_leave_the_prompt():
    [shot] = shots("a girl waves." + SUFFIX + "@@a.png\n")
    assert shot == {"id": "clip-001", "frames": CLIP_FRAMES, "prompt": "a girl waves.",
                    "aesthetic": 6.0, "motion": 2.5, "start": "a.png"}


def test_positions_make_start_and_keyframes():
    [first_last, middle, text_only] = shots("walk@@a.png,b.png&&0,1\ntrain@@a.png, b.png ,c.png&&0,0.5,1\nsky\n")
    assert first_last["start"] == "a.png" and first_last["keyframes"] == [{"image": "b.png", "at": 1.0}]
    assert middle["keyframes"] == [{"image": "b.png", "at": 0.5}, {"image": "c.png", "at": 1.0}]
    assert "start" not in text_only and text_only["prompt"] == "sky"


def test_keyframes_without_a_first_frame():
    [shot] = shots("end only@@b.png&&1\n")
    assert "start" not in shot and shot["keyframes"] == [{"image": "b.png", "at": 1.0}]


@pytest.mark.parametrize("line, col, words", [
    ("walk@@a.png,b.png&&0\n", 18, "2 images but 1 positions"),
    ("walk@@a.png&&x\n", 14, "not a number"),
    ("walk@@a.png,b.png&&0,1.5\n", 22, "outside [0, 1]"),
    ("walk@@a.png,b.png&&0,0\n", 22, "given twice"),
    ("@@a.png\n", 1, "empty prompt"),
    ("walk@@a.png,,b.png&&0,0.5,1\n", 13, "empty image name"),
    ("walk@@a.png,b.png\n", 7, "need positions"),
    ("walk@@a.png@@b.png\n", 12, "one `@@`"),
])
def test_bad_lines_are_reported_with_their_column(line, col, words):
    with pytest.raises(InputError) as caught:
        parse(Path("p.txt"), "fine@@a.png\n" + line)
    [problem] = caught.value.problems
    assert (problem.line, problem.col) == (2, col) and words in problem.message


def test_gbk_file_with_a_chinese_prompt_loads_and_plans(tmp_path):
    write_png(tmp_path / "a.png")
    path = tmp_path / "prompts.txt"
    path.write_bytes(("夏夜的城市上空绽放着烟花。" + SUFFIX + "@@a.png\n").encode("gbk"))
    plan = build_plan(load(path))
    assert plan.segment("clip-001.0").prompt.startswith("夏夜的城市上空绽放着烟花。")
    assert plan.segment("clip-001.0").prompt.endswith("aesthetic score: 6.0. motion score: 2.5. There is no text in the video.")
    assert plan.segment("clip-001.0").prompt.count("aesthetic score") == 1


def test_a_missing_image_points_at_its_column(tmp_path):
    write_png(tmp_path / "a.png")
    path = tmp_path / "prompts.txt"
    path.write_text("one@@a.png\ntwo@@a.png,gone.png&&0,1\n")
    with pytest.raises(InputError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.col) == (2, 12) and "gone.png" in problem.message


# ---------------------------------------------------------------- files as AniSora's own samples are written


def test_a_v3_style_file_gbk_crlf_without_a_final_newline_reads_as_anisora_v3_reads_it(tmp_path):
    # anisoraV3/generate-pi-i2v-any.py: open(..., encoding="gbk"), text mode (CRLF becomes LF)
    for name in ("a.png", "b.png"):
        write_png(tmp_path / name)
    path = tmp_path / "inference_any.txt"
    lines = ["夏夜的烟花" + SUFFIX + " @@a.png,b.png&&0,0.5", "城市的灯光" + SUFFIX + "@@b.png&&0.75"]
    path.write_bytes("\r\n".join(lines).encode("gbk"))    # like anisoraV3/data/inference_any.txt: no final newline
    plan = build_plan(load(path, model="anisora-v3"))
    one, two = plan.segments
    assert one.prompt.startswith("夏夜的烟花.") and "\r" not in one.prompt + two.prompt
    assert [(c.frame, c.image.ref) for c in one.conditions] == [(0, "a.png"), (40, "b.png")]
    # a clip whose only picture is at 0.75 (AniSora's own sample): no start, one keyframe on frame 64
    assert [(c.frame, c.image.ref) for c in two.conditions] == [(64, "b.png")]


def test_a_v32_style_utf8_line_without_positions_starts_from_its_picture(tmp_path):
    # anisoraV3.2/generate_txt_new.py: UTF-8, each line stripped, a missing `&&` means position 0
    write_png(tmp_path / "a.png")
    path = tmp_path / "inference_any.txt"
    path.write_bytes(("中文的提示" + SUFFIX + "@@a.png").encode("utf-8"))
    plan = build_plan(load(path, model="anisora-v3.2"))
    assert plan.segments[0].prompt.startswith("中文的提示.")
    assert [(c.frame, c.image.ref) for c in plan.segments[0].conditions] == [(0, "a.png")]


def test_utf8_chinese_is_never_read_as_gbk_although_its_bytes_are_valid_gbk(tmp_path):
    # "动画角色" in UTF-8 is also valid GBK: what AniSora V3's GBK reader makes of a UTF-8 file
    raw = "动画角色".encode("utf-8")
    assert raw.decode("gbk") == "鍔ㄧ敾瑙掕壊"
    write_png(tmp_path / "a.png")
    (tmp_path / "p.txt").write_bytes(raw + b"@@a.png\n")
    assert build_plan(load(tmp_path / "p.txt")).segments[0].prompt.startswith("动画角色.")
