"""Screenshots of a QC report for the docs, taken in headless Chromium (Debian's `chromium`).

    python docs/screenshot.py OUT/report.html [docs/img]

Writes `report.png` (the top of the page: totals, flagged shots, the first cards) and
`report-charts.png` (the character, flicker and schedule charts).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    report = Path(sys.argv[1]).resolve()
    folder = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent / "img")
    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(report.as_uri())
        page.screenshot(path=folder / "report.png")
        top = page.locator("h2", has_text="Characters").bounding_box()["y"]
        bottom = page.locator("footer").bounding_box()["y"]
        page.screenshot(path=folder / "report-charts.png", full_page=True,
                        clip={"x": 0, "y": top - 10, "width": 1280, "height": bottom - top + 10})
        browser.close()
    print(folder / "report.png", folder / "report-charts.png")


if __name__ == "__main__":
    main()
