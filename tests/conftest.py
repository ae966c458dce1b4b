"""Shared fixtures: small storyboards on disk with real PNGs, the `sakuga` CLI run in-process, and
Debian's Chromium for the tests that open pages."""
from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (230, 200, 40), (160, 40, 200), (40, 200, 200)]


def write_png(path: Path, colour: tuple[int, int, int] = COLOURS[0], size: tuple[int, int] = (32, 24)) -> Path:
    """A small solid-colour PNG (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def make_storyboard(folder: Path, yaml_text: str, images: Iterable[str] = (), name: str = "storyboard.yaml") -> Path:
    """Write `yaml_text` (dedented) as `folder/name` and a distinct small PNG for every path in `images`
    (relative to `folder`); returns the storyboard's path."""
    for i, image in enumerate(images):
        write_png(folder / image, COLOURS[i % len(COLOURS)])
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(yaml_text))
    return path


@pytest.fixture(name="make_storyboard")
def make_storyboard_fixture(tmp_path: Path) -> Callable[..., Path]:
    """`make_storyboard(yaml_text, images=[...], name=...)`, writing into this test's tmp_path."""

    def make(yaml_text: str, images: Iterable[str] = (), name: str = "storyboard.yaml") -> Path:
        return make_storyboard(tmp_path, yaml_text, images, name)

    return make


@pytest.fixture
def sakuga() -> Callable[..., Result]:
    """Run the `sakuga` CLI in-process: `sakuga("validate", path)` → click's Result (stdout, stderr, exit_code).

    A Python exception escaping the command fails the test here: users must never see a traceback.
    """
    from farm.cli.app import app

    runner = CliRunner()

    def run(*args: object) -> Result:
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"sakuga {' '.join(map(str, args))} raised "
                                 f"{type(result.exception).__name__}: {result.exception}") from result.exception
        return result

    return run


@pytest.fixture(scope="session", autouse=True)
def sakuga_cache(tmp_path_factory) -> Path:
    """Models built on first use (the tiny Wan) go to a per-session folder, never the user's cache.
    Set before Ray starts, so worker processes inherit it."""
    folder = tmp_path_factory.mktemp("sakuga-cache")
    old = os.environ.get("SAKUGA_CACHE")
    os.environ["SAKUGA_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SAKUGA_CACHE", None)
    else:
        os.environ["SAKUGA_CACHE"] = old


@pytest.fixture
def browser():
    """Debian's Chromium through Playwright, kept off the network (this machine has none); skipped
    without it, unless SAKUGA_REQUIRE_BROWSER (CI) says it must be there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("SAKUGA_REQUIRE_BROWSER"):
            pytest.fail("SAKUGA_REQUIRE_BROWSER is set but there is no chromium on PATH")
        pytest.skip("no chromium on PATH (Debian package `chromium`; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()
