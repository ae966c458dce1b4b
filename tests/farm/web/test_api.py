"""The studio's JSON API over HTTP (FastAPI's TestClient, on a farm whose pool needs no Ray): sign-in by
per-user token, submit from under the studio's root, and every refusal — no token, someone else's job,
paths that lead out, a bad storyboard (422 with the CLI's FILE:LINE:COL problems)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from farm.access.users import User, UserStore  # noqa: E402
from farm.web.api import create_app  # noqa: E402
from farm.web.identity import Identities  # noqa: E402
from tests.farm.web.conftest import BOARD  # noqa: E402


@pytest.fixture
def studio(tmp_path, farm_with_users):
    farm, users, tokens, root = farm_with_users(("alice", "bob", "boss"), admins=("boss",))
    app = create_app(farm, root=root, identities=Identities(users, None), outputs=tmp_path / "jobs")
    client = TestClient(app, raise_server_exceptions=False)
    as_ = {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}
    return client, farm, as_, tmp_path


def test_a_signed_in_user_submits_follows_and_downloads_their_job(studio):
    client, farm, as_, tmp_path = studio
    r = client.post("/api/jobs", json={"storyboard": "ep/board.yaml", "out": "ep1"}, headers=as_["alice"])
    assert r.status_code == 200, r.text
    job, out = r.json()["id"], Path(r.json()["out"])
    assert out == (tmp_path / "jobs" / "alice" / "ep1").resolve()
    farm.wait()
    detail = client.get(f"/api/jobs/{job}", headers=as_["alice"]).json()
    assert detail["summary"]["state"] == "done" and detail["summary"]["owner"] == "alice"
    assert [s["id"] for s in detail["shots"]] == ["s0", "s1"]
    episode = client.get(f"/api/jobs/{job}/files/episode.mp4", headers=as_["alice"])
    assert episode.status_code == 200 and episode.content == (out / "episode.mp4").read_bytes()
    assert [j["id"] for j in client.get("/api/jobs", headers=as_["alice"]).json()] == [job]
    assert client.get("/openapi.json").json()["paths"]["/api/jobs/{job_id}/cancel"]


def test_no_token_or_a_wrong_one_is_401(studio):
    client, farm, as_, _ = studio
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Bearer sk-alice-nope"}).status_code == 401
    r = client.post("/api/jobs", json={"storyboard": "ep/board.yaml"}, headers={"Authorization": "Basic x"})
    assert r.status_code == 401 and farm.jobs() == []


def test_user_a_cannot_see_cancel_reprioritise_or_read_user_bs_job(studio):
    client, farm, as_, _ = studio
    job = client.post("/api/jobs", json={"storyboard": "ep/board.yaml"}, headers=as_["bob"]).json()["id"]
    assert client.post(f"/api/jobs/{job}/cancel", headers=as_["alice"]).status_code == 403
    assert client.post(f"/api/jobs/{job}/priority", json={"priority": "urgent"}, headers=as_["alice"]).status_code == 403
    assert client.post(f"/api/jobs/{job}/pause", headers=as_["alice"]).status_code == 403
    assert client.post(f"/api/jobs/{job}/pause", headers=as_["bob"]).json() == {"paused": True}
    assert client.get(f"/api/jobs/{job}", headers=as_["bob"]).json()["summary"]["state"] == "paused"
    assert client.post(f"/api/jobs/{job}/resume", headers=as_["bob"]).json() == {"resumed": True}
    assert client.get(f"/api/jobs/{job}", headers=as_["alice"]).status_code == 404
    assert client.get(f"/api/jobs/{job}/files/plan.json", headers=as_["alice"]).status_code == 404
    assert client.get("/api/jobs", headers=as_["alice"]).json() == []
    assert farm.job(job).summary.state == "running" and farm.job(job).summary.priority == 0
    r = client.post(f"/api/jobs/{job}/priority", json={"priority": "high"}, headers=as_["boss"])
    assert r.status_code == 200 and r.json()["changed"] and farm.job(job).summary.priority > 0
    assert client.post(f"/api/jobs/{job}/cancel", headers=as_["bob"]).json() == {"cancelling": True}
    assert client.post("/api/jobs/nope/cancel", headers=as_["bob"]).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"storyboard": "../boards/ep/board.yaml"}, "storyboard"),
    ({"storyboard": "/etc/passwd"}, "storyboard"),
    ({"storyboard": "link/board.yaml"}, "storyboard"),            # a symlink that leads out of the root
    ({"storyboard": "ep/board.yaml", "out": "../bob/x"}, "--out"),
    ({"storyboard": "ep/board.yaml", "out": "/tmp/anywhere"}, "--out"),
    ({"storyboard": "ep/board.yaml", "priority": "asap"}, "priority"),
])
def test_paths_that_lead_out_and_bad_fields_are_422_and_start_nothing(studio, body, field):
    client, farm, as_, tmp_path = studio
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "board.yaml").write_text(BOARD.format(title="x"))
    link = tmp_path / "boards" / "link"
    if not link.exists():
        link.symlink_to(outside)
    r = client.post("/api/jobs", json=body, headers=as_["alice"])
    assert r.status_code == 422, r.text
    assert r.json()["problems"][0]["file"] == field
    assert farm.jobs() == [] and not (tmp_path / "anywhere").exists()


def test_a_bad_storyboard_is_422_with_the_clis_problems(studio):
    client, farm, as_, tmp_path = studio
    (tmp_path / "boards" / "ep" / "bad.yaml").write_text(BOARD.format(title="bad").replace("frames: 17", "frames: -3", 1))
    r = client.post("/api/jobs", json={"storyboard": "ep/bad.yaml"}, headers=as_["alice"])
    assert r.status_code == 422
    [problem] = r.json()["problems"]
    assert problem["file"].endswith("bad.yaml") and problem["line"] == 8 and "frames" in problem["text"]
    assert client.post("/api/jobs", json={"storyboard": "ep/board.yaml", "gpu": 3},
                       headers=as_["alice"]).status_code == 422                      # unknown field
    assert farm.jobs() == []


def test_a_studio_on_the_loopback_with_nobody_signed_up_is_the_local_users(tmp_path, FakePool):
    from farm.web.serve import identities_for

    users = UserStore(tmp_path / "users.sqlite")
    local = identities_for("127.0.0.1", users)
    assert local.local is not None and local.local.admin
    with pytest.raises(Exception, match="needs a sign-in"):
        identities_for("0.0.0.0", users)
    users.add("alice")
    assert identities_for("0.0.0.0", users).local is None and identities_for("127.0.0.1", users).local is None
    assert isinstance(local.local, User)


def test_takes_through_the_api_retake_list_approve_and_refusals(studio):
    client, farm, as_, tmp_path = studio
    job = client.post("/api/jobs", json={"storyboard": "ep/board.yaml"}, headers=as_["alice"]).json()["id"]
    farm.wait()
    base = f"/api/jobs/{job}/shots/s0/takes"
    [one] = client.get(base, headers=as_["alice"]).json()
    assert (one["take"], one["approved"], one["status"], one["files"]) == (1, True, "done", {"mp4": "takes/s0/1.mp4"})
    r = client.post(base, json={"prompt": "a, again", "seed": 5}, headers=as_["alice"])
    assert r.status_code == 200 and r.json() == {"take": 2}
    farm.wait()
    takes = client.get(base, headers=as_["alice"]).json()
    assert [(t["take"], t["status"], t["overrides"]) for t in takes] == [
        (1, "done", {}), (2, "done", {"prompt": "a, again", "seed": 5})]
    video = client.get(f"/api/jobs/{job}/files/{takes[1]['files']['mp4']}", headers=as_["alice"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert client.post(f"{base}/2/approve", headers=as_["alice"]).json() == {"approved": 2}
    farm.wait()
    assert [t["approved"] for t in client.get(base, headers=as_["alice"]).json()] == [False, True]
    assert [s["segments"] for s in client.get(f"/api/jobs/{job}", headers=as_["alice"]).json()["shots"]] == [
        ["s0~2.0"], ["s1.0"]]
    # someone else's job: not there to see, forbidden to change; an admin may
    assert client.get(base, headers=as_["bob"]).status_code == 404
    assert client.post(base, json={"seed": 1}, headers=as_["bob"]).status_code == 403
    assert client.post(f"{base}/1/approve", headers=as_["bob"]).status_code == 403
    assert client.post(f"{base}/1/approve", headers=as_["boss"]).status_code == 200
    farm.wait()
    # bad input: 422 with problems naming the field; unknown jobs 404
    for url, body in [(f"/api/jobs/{job}/shots/nope/takes", {"seed": 1}), (base, {}), (base, {"motion": 11}),
                      (base, {"steps": 3}), (f"{base}/9/approve", None)]:
        r = client.post(url, json=body, headers=as_["alice"])
        assert r.status_code == 422, (url, body, r.text)
    assert "motion" in client.post(base, json={"motion": 11}, headers=as_["alice"]).json()["problems"][0]["text"]
    assert client.get(f"/api/jobs/{job}/shots/nope/takes", headers=as_["alice"]).status_code == 422
    assert client.get("/api/jobs/nope/shots/s0/takes", headers=as_["alice"]).status_code == 404
    assert client.post("/api/jobs/nope/shots/s0/takes", json={"seed": 1}, headers=as_["alice"]).status_code == 404
    assert len(client.get(base, headers=as_["alice"]).json()) == 2
