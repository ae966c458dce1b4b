"""The studio's pages over FastAPI's TestClient, on a farm whose pool needs no Ray: each page renders
the signed-in user's jobs, actions change the farm, and the refusals — sign-in, CSRF, someone else's
job, paths that lead out, a bad storyboard (422 with its FILE:LINE:COL problems on the page)."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from farm.web.identity import Identities  # noqa: E402
from farm.web.studio import create_studio  # noqa: E402
from tests.farm.web.conftest import BOARD  # noqa: E402


@pytest.fixture
def studio(tmp_path, farm_with_users):
    farm, users, tokens, root = farm_with_users(("alice", "bob"), gpus=2)
    app = create_studio(farm, root=root, identities=Identities(users, None), outputs=tmp_path / "jobs")
    return app, farm, tokens, root


def signed_in(app, token: str) -> tuple[TestClient, str]:
    """A browser session of the user: the sign-in form posted with its CSRF token; the CSRF token of
    the pages that follow."""
    client = TestClient(app, raise_server_exceptions=False)
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)[1]
    r = client.post("/login", data={"token": token, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    page = client.get("/").text
    return client, re.search(r'"X-CSRF-Token": "([^"]+)"', page)[1]


def test_pages_need_a_sign_in_and_a_wrong_token_is_refused(studio):
    app, farm, tokens, _ = studio
    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/", "/storyboard", "/workers"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)[1]
    assert client.post("/login", data={"token": "sk-alice-nope", "csrf": csrf}).status_code == 401
    assert client.post("/login", data={"token": tokens["alice"], "csrf": "forged"}).status_code == 403


def test_render_from_the_storyboard_page_then_follow_it_on_queue_job_shot_and_workers(studio):
    app, farm, tokens, root = studio
    client, csrf = signed_in(app, tokens["alice"])
    editor = client.get("/storyboard", params={"path": "ep/board.yaml"})
    assert editor.status_code == 200 and "ep/board.yaml" in editor.text and "s1, frames: 17" in editor.text
    text = BOARD.format(title="edited <ep>")
    checked = client.post("/storyboard/check", data={"path": "ep/board.yaml", "text": text}, headers={"X-CSRF-Token": csrf})
    assert checked.status_code == 200 and "Plan: edited &lt;ep&gt;" in checked.text     # escaped, not markup
    r = client.post("/storyboard/render", data={"path": "ep/board.yaml", "text": text, "priority": "high"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204, r.text
    job = r.headers["HX-Redirect"].removeprefix("/jobs/")
    assert (root / "ep" / "board.yaml").read_text() == text and not list((root / "ep").glob(".*"))
    assert farm.job(job).summary.priority == 10 and farm.job(job).summary.owner == "alice"
    farm.wait()
    queue = client.get("/").text
    assert f'data-job="{job}" data-state="done"' in queue
    page = client.get(f"/jobs/{job}").text
    assert re.findall(r'data-shot="(\w+)" data-state="(\w+)"', page) == [("s0", "done"), ("s1", "done")]
    for preview in re.findall(r'<img src="([^"]+)"', page):            # the last frames, served
        assert client.get(preview).headers["content-type"] == "image/png"
    assert page.count('class="bar') == 2 and "episode.mp4" in page
    shot = client.get(f"/jobs/{job}/shots/s1").text
    assert 'class="prompt">b.<' in shot and "n0-gpu" in shot
    workers = client.get("/workers").text
    assert workers.count("<tr data-worker=") == 2


def test_every_post_with_the_cookie_needs_the_csrf_token(studio):
    app, farm, tokens, _ = studio
    client, csrf = signed_in(app, tokens["alice"])
    data = {"path": "ep/board.yaml", "text": BOARD.format(title="x")}
    assert client.post("/storyboard/render", data=data).status_code == 403
    assert client.post("/storyboard/render", data=data, headers={"X-CSRF-Token": "x" + csrf}).status_code == 403
    assert client.post("/api/jobs", json={"storyboard": "ep/board.yaml"}).status_code == 403
    assert client.post("/logout").status_code == 403
    assert farm.jobs() == []
    assert client.post("/api/jobs", json={"storyboard": "ep/board.yaml"}, headers={"X-CSRF-Token": csrf}).status_code == 200
    bearer = TestClient(app).post("/api/jobs", json={"storyboard": "ep/board.yaml", "out": "b"},
                                  headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert bearer.status_code == 200                                   # a token cannot be forged cross-site
    r = client.post("/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204 and client.get("/", follow_redirects=False).status_code == 303


def test_the_queue_moves_and_reprioritises_only_the_users_own_jobs(studio):
    app, farm, tokens, _ = studio
    alice, a_csrf = signed_in(app, tokens["alice"])
    bob, b_csrf = signed_in(app, tokens["bob"])
    first = alice.post("/api/jobs", json={"storyboard": "ep/board.yaml", "out": "a1"}, headers={"X-CSRF-Token": a_csrf}).json()["id"]
    second = alice.post("/api/jobs", json={"storyboard": "ep/board.yaml", "out": "a2"}, headers={"X-CSRF-Token": a_csrf}).json()["id"]
    rows = alice.post(f"/jobs/{second}/move", data={"direction": "up"}, headers={"X-CSRF-Token": a_csrf}).text
    assert farm.job(second).summary.priority == 1 and rows.index(second) < rows.index(first)
    alice.post(f"/jobs/{first}/priority", data={"priority": "urgent"}, headers={"X-CSRF-Token": a_csrf})
    assert farm.job(first).summary.priority == 20
    assert bob.get(f"/jobs/{first}").status_code == 404 and first not in bob.get("/").text
    assert bob.post(f"/jobs/{first}/cancel", headers={"X-CSRF-Token": b_csrf}).status_code == 404
    assert bob.post(f"/jobs/{first}/move", data={"direction": "down"}, headers={"X-CSRF-Token": b_csrf}).status_code == 404
    assert farm.job(first).summary.state != "cancelled" and farm.job(first).summary.priority == 20
    assert bob.post(f"/jobs/{first}/pause", headers={"X-CSRF-Token": b_csrf}).status_code == 404
    rows = alice.post(f"/jobs/{second}/pause", headers={"X-CSRF-Token": a_csrf}).text
    assert farm.job(second).summary.state == "paused" and 'aria-label="resume' in rows
    assert alice.post(f"/jobs/{second}/pause").status_code == 403            # no CSRF token: refused
    alice.post(f"/jobs/{second}/resume", headers={"X-CSRF-Token": a_csrf})
    assert farm.job(second).summary.state == "running"
    alice.post(f"/jobs/{first}/cancel", headers={"X-CSRF-Token": a_csrf})
    assert farm.job(first).summary.state in ("cancelling", "cancelled")


def test_a_bad_storyboard_is_422_with_its_problems_on_the_page_and_starts_nothing(studio):
    app, farm, tokens, root = studio
    client, csrf = signed_in(app, tokens["alice"])
    bad = BOARD.format(title="bad").replace("frames: 17", "frames: -3", 1)
    for action in ("check", "render"):
        r = client.post(f"/storyboard/{action}", data={"path": "ep/board.yaml", "text": bad}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 422 and "ep/board.yaml:8:" in r.text and "frames" in r.text
    assert farm.jobs() == [] and (root / "ep" / "board.yaml").read_text() == BOARD.format(title="ep")
    assert not list((root / "ep").glob(".*"))                          # the draft is gone


@pytest.mark.parametrize("path", ["../users.sqlite", "/etc/passwd", "ep/../../users.sqlite", "link/x.yaml"])
def test_paths_that_lead_out_of_the_root_are_refused(studio, path, tmp_path):
    app, farm, tokens, root = studio
    (tmp_path / "outside").mkdir(exist_ok=True)
    (tmp_path / "outside" / "x.yaml").write_text(BOARD.format(title="x"))
    if not (root / "link").exists():
        (root / "link").symlink_to(tmp_path / "outside")
    client, csrf = signed_in(app, tokens["alice"])
    assert client.get("/storyboard", params={"path": path}).status_code == 422
    r = client.post("/storyboard/render", data={"path": path, "text": BOARD.format(title="x")}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and farm.jobs() == []
    assert (tmp_path / "outside" / "x.yaml").read_text() == BOARD.format(title="x")
