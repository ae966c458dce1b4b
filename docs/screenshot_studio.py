"""Screenshots of the studio's pages for the docs, in headless Chromium (Debian's `chromium`), of a
local studio rendering the pilot with the animatic engine on a local Ray (and retaking its last shot,
for the Shot page's takes).

    python docs/screenshot_studio.py [docs/img]

Writes studio-storyboard.png, studio-queue.png, studio-job.png, studio-shot.png, studio-workers.png.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright  # noqa: E402

from farm.access.users import User  # noqa: E402
from farm.api.embedded import local_farm  # noqa: E402
from farm.web.identity import Identities  # noqa: E402
from farm.web.serve import in_background  # noqa: E402
from farm.web.studio import create_studio  # noqa: E402

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot"


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "img")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "boards"
        root.mkdir()
        shutil.copytree(PILOT, root / "pilot")
        farm = local_farm(2)
        app = create_studio(farm, root=root, identities=Identities(None, User("artist", admin=True)),
                            outputs=Path(tmp) / "jobs")
        with in_background(app, farm) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{base}/storyboard?path=pilot/storyboard.yaml")
            page.click("#board button[type=submit]")
            page.wait_for_selector("#check .plan")
            page.screenshot(path=folder / "studio-storyboard.png", full_page=True)
            page.click("#render")
            page.wait_for_url(f"{base}/jobs/*")
            job = page.url.rsplit("/", 1)[1]
            page.wait_for_function("document.querySelectorAll('.shot[data-state=\"done\"]').length === 9",
                                   timeout=600_000)
            page.wait_for_timeout(500)
            page.screenshot(path=folder / "studio-job.png", full_page=True)
            page.goto(f"{base}/jobs/{job}/shots/platform-030")
            page.fill("#retake-prompt", "the empty platform at night, rain on the tracks")
            page.fill("#retake-seed", "5")
            page.click("#retake button[type=submit]")
            page.wait_for_function("document.querySelector('tr[data-take=\"2\"][data-status=\"done\"]')",
                                   timeout=300_000)
            page.wait_for_selector(".compare video")
            page.wait_for_timeout(1000)
            page.screenshot(path=folder / "studio-shot.png", full_page=True)
            for name, path in (("queue", "/"), ("workers", "/workers")):
                page.goto(base + path)
                page.screenshot(path=folder / f"studio-{name}.png", full_page=True)
            browser.close()
        farm.close()
    print(*sorted(str(p) for p in folder.glob("studio-*.png")))


if __name__ == "__main__":
    main()
