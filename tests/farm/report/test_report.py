"""The QC report and contact sheet: opened in headless Chromium, rebuilt by `sakuga report`, flags."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from farm.api.embedded import render
from farm.job.ledger import Ledger
from farm.media.decode import read_frames
from farm.report.report import THUMB_WIDTH
from storyboard.load import load
from storyboard.plan import build_plan

STORYBOARD = """\
sakuga: 1
title: Report <check> & co
output: {width: 128, height: 96, fps: 16}
characters:
  hana: {name: Hana, refs: [red.png], description: red scarf}
scenes:
  - id: one
    shots:
      - {id: a, frames: 17, prompt: "red <b>not bold</b>", start: red.png, characters: [hana], transition: {crossfade: 0.25}}
      - {id: b, frames: 97, prompt: blue to green, start: blue.png, characters: [hana], keyframes: [{image: green.png, at: 1.0}]}
      - {id: c, frames: 17, prompt: continues, start: previous}
  - id: two
    shots:
      - {id: d, frames: 9, prompt: its picture goes missing, start: gone.png}
"""


@pytest.fixture(scope="module")
def rendered(ray_cluster, tmp_path_factory) -> Path:
    """A render with a dissolve, a two-segment shot, a continuation and a shot that fails."""
    folder = tmp_path_factory.mktemp("report")
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220)), ("green", (30, 200, 30)),
                         ("gone", (200, 200, 30))):
        Image.new("RGB", (160, 120), colour).save(folder / f"{name}.png")
    (folder / "sb.yaml").write_text(STORYBOARD)
    plan = build_plan(load(folder / "sb.yaml"))
    (folder / "gone.png").unlink()          # gone between planning and rendering: shot d fails
    outcome = render(plan, folder / "out", gpus=2, show_progress=False)
    assert outcome.failed_shots == ["d"]
    return folder / "out"


def test_the_report_loads_cleanly_in_chromium_with_one_card_per_shot(rendered, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)

    page.goto((rendered / "report.html").as_uri())
    page.wait_for_load_state("load")

    assert problems == []
    assert page.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.shot)") == ["a", "b", "c", "d"]
    assert page.title() == "QC: Report <check> & co"                       # text, not markup
    assert page.locator("#shot-a .prompt").inner_text().startswith("red <b>not bold</b>")
    # every picture (stills, animated previews) decodes
    sizes = page.locator("img").evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) == 3 * 4 and all(ok and width == min(128, THUMB_WIDTH) for ok, width in sizes)
    assert page.locator("#shot-d").get_attribute("class") == "card flagged"
    assert "gone.png" in page.locator("#redo").inner_text()
    # the Gantt chart has a bar per attempt, on the two GPUs
    with Ledger(rendered / "ledger.sqlite") as ledger:
        attempts = ledger.attempts(ledger.jobs()[-1]["id"])
    assert page.locator("svg.gantt g.bar").count() == len(attempts) >= 4
    page.check("#only-flagged")
    assert [c.get_attribute("data-shot") for c in page.locator(".card").all() if c.is_visible()] == ["d"]
    page.close()


def test_sakuga_report_rebuilds_the_report_without_rendering(rendered, sakuga):
    before = {p.name: p.stat().st_mtime_ns for p in (rendered / "segments").iterdir()}
    with Ledger(rendered / "ledger.sqlite") as ledger:
        attempts = len(ledger.attempts(ledger.jobs()[-1]["id"]))
    (rendered / "report.html").unlink()
    (rendered / "contact_sheet.png").unlink()

    result = sakuga("report", rendered, "--max-flicker", "0")

    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == (rendered / "report.html").resolve()
    page = (rendered / "report.html").read_text()
    for shot in "abc":   # a threshold of 0 flags every delivered shot that moves
        assert f'id="shot-{shot}" data-shot="{shot}"' in page
        assert page.count(f'<li><a href="#shot-{shot}">{shot}</a>: flicker') == 1
    assert {p.name: p.stat().st_mtime_ns for p in (rendered / "segments").iterdir()} == before
    with Ledger(rendered / "ledger.sqlite") as ledger:
        assert len(ledger.attempts(ledger.jobs()[-1]["id"])) == attempts

    # the contact sheet: a row per shot, each with the shot's middle frame
    sheet = np.asarray(Image.open(rendered / "contact_sheet.png").convert("RGB")).astype(int)
    frames = list(read_frames(rendered / "shots" / "b.mp4", width=THUMB_WIDTH))
    middle = frames[len(frames) // 2].astype(int)
    th, tw, _ = middle.shape
    row = 36 + 1 * (th + 8)            # the header, then shot b is the second row
    x = 220 + 8 + (tw + 8)             # label column, then the second tile
    tile = sheet[row:row + th - 20, x:x + tw]   # above the frame label
    assert np.abs(tile - middle[:th - 20]).mean() < 3
    assert sheet.shape[0] == 36 + 4 * (th + 8) + 8


def test_a_character_below_the_similarity_threshold_is_flagged(rendered, sakuga):
    table = pq.read_table(rendered / "manifest.parquet")
    rows = table.to_pylist()
    for r in rows:   # as an engine with an image encoder would have measured them
        value = {"a": 0.55, "b": 0.93}.get(r["shot"])
        if value is not None:
            r["metrics"] = list(dict(r["metrics"] or []).items()) + [("character_similarity.hana", value)]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), rendered / "manifest.parquet")

    assert sakuga("report", rendered).exit_code == 0

    page = (rendered / "report.html").read_text()
    assert '<li><a href="#shot-a">a</a>: hana similarity 0.55 &lt; 0.80</li>' in page
    assert "hana similarity 0.93" not in page and "similarity 0.930" in page
    chart = page[page.index('class="chart similarity"'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count("<circle") == 2 and chart.count('fill="#ff8a65"') == 1


def test_a_folder_that_is_not_a_render_is_refused(tmp_path, sakuga):
    (tmp_path / "plan.json").write_text("{}")
    result = sakuga("report", tmp_path)
    assert result.exit_code == 2
    assert "manifest.parquet" in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
