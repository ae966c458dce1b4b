"""The studio in Debian's Chromium (as the report's test): open the pilot on the Storyboard page, render
it, watch every shot reach done through live updates (no reload), retake its last shot with a new
prompt, compare the two takes, approve the new one and download an episode whose frames are the new
take's; with no console error, no request to another host, keyboard-reachable controls and no serious
axe-core violation.

The pool is the tests' in-process FakePool, whose flat frames are set by each segment's seed: a new
prompt gives a new seed, so the two takes differ and the episode check can tell them apart. (The
animatic engine would draw both takes alike: with a start picture its pixels do not depend on the
prompt.)"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from farm.access.users import User  # noqa: E402
from farm.api.embedded import EmbeddedFarm  # noqa: E402
from farm.web.identity import Identities  # noqa: E402
from farm.web.serve import in_background  # noqa: E402
from farm.web.studio import create_studio  # noqa: E402

AXE = Path(__file__).parent / "vendor" / "axe.min.js"     # axe-core 4.14.1 from npm, MPL-2.0
PILOT = Path(__file__).resolve().parents[3] / "examples" / "pilot"
SHOTS = ["rooftop-010", "rooftop-020", "rooftop-030", "street-010", "street-020", "street-030", "platform-010",
         "platform-020", "platform-030"]
RETAKEN = "platform-030"      # the last shot: nothing continues from it; its first 16 frames are a dissolve


@pytest.fixture
def gated_pool(FakePool):
    class GatedPool(FakePool):
        """Renders nothing until `gate` is set: the page is open, with every shot pending, before any ends."""
        gate = threading.Event()

        def wait(self, calls, timeout):
            return super().wait(calls, timeout) if self.gate.wait(min(timeout, 0.05)) else []

        @staticmethod
        def level(seg) -> int:   # by seed: a retake's new prompt gives it a new seed, so other pixels
            return 30 + seg.seed % 190

    return GatedPool([2])


@pytest.fixture
def studio(tmp_path, gated_pool):
    shutil.copytree(PILOT, tmp_path / "boards" / "pilot")
    farm = EmbeddedFarm(gated_pool)
    app = create_studio(farm, root=tmp_path / "boards", identities=Identities(None, User("artist", admin=True)),
                        outputs=tmp_path / "jobs")
    with in_background(app, farm) as base:
        yield base, farm, gated_pool


@pytest.fixture
def page(browser):
    return browser.new_page(viewport={"width": 1280, "height": 900})


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
        .filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))""")


def tab_to(page, selector: str, presses: int = 40) -> bool:
    """Whether Tab alone reaches `selector` from the top of the page."""
    page.locator("body").focus()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return True
    return False


def test_render_from_the_storyboard_page_and_watch_every_shot_come_in_live(studio, page):
    base, farm, pool = studio
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base + "/")
               else (problems.append(f"request: {route.request.url}"), route.abort()))

    page.goto(f"{base}/storyboard?path=pilot/storyboard.yaml")
    assert "id: platform-030" in page.locator("#board-text").input_value()
    assert tab_to(page, "#render") and serious_violations(page) == []
    page.keyboard.press("Enter")                                         # Render, from the keyboard
    page.wait_for_url(f"{base}/jobs/*")
    job = page.url.rsplit("/", 1)[1]
    assert page.locator(".shot").evaluate_all("ls => ls.map(l => l.dataset.shot)") == SHOTS
    assert page.locator('.shot[data-state="done"]').count() == 0
    page.evaluate("window.stayed = true")                                # gone if the page reloads
    pool.gate.set()
    # generous timeouts: the farm API waits for the loop's lock, held while the job is delivered and its
    # report written (seconds on a loaded 2-core machine)
    page.wait_for_function("document.querySelectorAll('.shot[data-state=\"done\"]').length === 9", timeout=60_000)
    assert page.evaluate("window.stayed === true && window.sakugaEvents > 0")
    page.wait_for_function("[...document.querySelectorAll('.shot img')].filter(i => i.complete && i.naturalWidth === 832)"
                           ".length === 9", timeout=30_000)                   # each shot's last frame, decoded
    assert serious_violations(page) == []

    page.goto(base + "/")
    assert page.locator(f'tr[data-job="{job}"]').get_attribute("data-state") == "done"
    assert serious_violations(page) == []
    page.goto(base + "/workers")
    assert page.locator("tr[data-worker]").count() == 2 and serious_violations(page) == []
    page.goto(f"{base}/jobs/{job}/shots/{RETAKEN}")
    assert serious_violations(page) == []
    assert problems == []
    retake_compare_approve(page, base, job)
    assert problems == []


def retake_compare_approve(page, base: str, job: str) -> None:
    page.fill("#retake-prompt", "the platform at night, now in the rain")
    page.fill("#retake-seed", "5")     # the shot sets `seed: 99`, which a new prompt alone would keep
    page.click("#retake button[type=submit]")
    page.wait_for_function("document.querySelector('tr[data-take=\"2\"][data-status=\"done\"]')", timeout=20_000)
    page.wait_for_selector(".compare video")
    page.click(".compare-play")
    page.wait_for_function("[...document.querySelectorAll('.compare-video')].every(v => !v.paused)", timeout=5_000)
    page.click(".compare-play")
    times = page.locator(".compare-video").evaluate_all("vs => vs.map(v => v.currentTime)")
    assert abs(times[0] - times[1]) < 0.25      # mirrored play/pause: within a few frames of each other
    page.click('button[aria-label="approve take 2"]')
    page.wait_for_selector('tr[data-take="2"].approved')
    # the downloaded episode ends with the retaken shot: its frames after the 16-frame dissolve into it
    # are take 2's, not take 1's
    takes = page.request.get(f"{base}/api/jobs/{job}/shots/{RETAKEN}/takes").json()
    first, second = (means(page.request.get(f"{base}/api/jobs/{job}/files/{t['files']['mp4']}").body())
                     for t in takes[:2])
    episode = page.request.get(f"{base}/api/jobs/{job}/files/episode.mp4")
    assert episode.status == 200
    shot = means(episode.body())[-len(second) + 16:]
    # flat frames through x264 come back within a level or two; the two takes' levels differ by more
    assert abs(first[0] - second[0]) > 6
    assert shot == pytest.approx(second[16:], abs=2)


def means(mp4: bytes) -> list[float]:
    from farm.media.decode import read_frames

    return [float(f.mean()) for f in read_frames(mp4)]
