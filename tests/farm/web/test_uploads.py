"""Uploading a storyboard folder as a zip: unpacked under `uploads/<user>/`, every storyboard checked,
and each way an archive can try to escape or overflow refused with nothing left behind."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from farm.access.users import UserStore  # noqa: E402
from farm.api.embedded import EmbeddedFarm  # noqa: E402
from farm.web.identity import Identities  # noqa: E402
from farm.web.studio import create_studio  # noqa: E402
from tests.conftest import write_png  # noqa: E402

BOARD = ("sakuga: 1\ntitle: Uploaded\nmodel: noop\noutput: {width: 64, height: 64, fps: 16}\n"
         "scenes:\n  - id: one\n    shots:\n      - {id: s0, frames: 17, prompt: a, start: boards/a.png}\n")


@pytest.fixture
def client(tmp_path, FakePool):
    users = UserStore(tmp_path / "users.sqlite")
    token = users.add("alice")
    (tmp_path / "root").mkdir()
    app = create_studio(EmbeddedFarm(FakePool([1])), root=tmp_path / "root", identities=Identities(users, None),
                        outputs=tmp_path / "jobs")
    c = TestClient(app, raise_server_exceptions=False)
    c.headers["Authorization"] = f"Bearer {token}"
    return c


def archive(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def picture(tmp_path) -> bytes:
    return write_png(tmp_path / "a.png").read_bytes()


def post(client, data: bytes, name: str = "ep1.zip"):
    return client.post("/api/uploads", files={"archive": (name, data, "application/zip")})


def uploads(tmp_path) -> list[str]:
    home = tmp_path / "root" / "uploads" / "alice"
    return sorted(p.name for p in home.iterdir()) if home.is_dir() else []


def test_an_uploaded_folder_lands_under_the_users_uploads_and_renders_from_there(client, tmp_path):
    r = post(client, archive({"storyboard.yaml": BOARD.encode(), "boards/a.png": picture(tmp_path)}))
    assert r.status_code == 200, r.text
    assert r.json() == {"folder": "uploads/alice/ep1",
                        "storyboards": [{"path": "uploads/alice/ep1/storyboard.yaml", "title": "Uploaded", "shots": 1}]}
    assert (tmp_path / "root" / "uploads" / "alice" / "ep1" / "boards" / "a.png").is_file()
    job = client.post("/api/jobs", json={"storyboard": "uploads/alice/ep1/storyboard.yaml"})
    assert job.status_code == 200, job.text
    again = post(client, archive({"storyboard.yaml": BOARD.encode(), "boards/a.png": picture(tmp_path)}))
    assert again.json()["folder"] == "uploads/alice/ep1-2"          # never over an earlier upload


@pytest.mark.parametrize("members, links, why", [
    ({"../evil.yaml": b"x"}, (), "plain relative path"),
    ({"/abs/evil.yaml": b"x"}, (), "plain relative path"),
    ({"a\\..\\evil.yaml": b"x"}, (), "plain relative path"),
    ({"storyboard.yaml": BOARD.encode()}, ("boards/a.png",), "links and special files"),
    ({"notes.md": b"no storyboard here"}, (), "no storyboard"),
], ids=["dotdot", "absolute", "backslash", "symlink", "no-storyboard"])
def test_archives_that_escape_or_hold_no_storyboard_are_refused_and_leave_nothing(client, tmp_path, members, links, why):
    r = post(client, archive(members, links))
    assert r.status_code == 422 and why in r.text, r.text
    assert uploads(tmp_path) == [] and not (tmp_path / "evil.yaml").exists()


def test_a_storyboard_that_does_not_validate_is_422_with_its_line_and_nothing_stays(client, tmp_path):
    r = post(client, archive({"storyboard.yaml": BOARD.replace("frames: 17", "frames: -3").encode(),
                              "boards/a.png": picture(tmp_path)}))
    assert r.status_code == 422
    [problem] = r.json()["problems"]
    assert problem["file"] == "uploads/alice/ep1/storyboard.yaml" and problem["line"] == 8 and "frames" in problem["message"]
    assert uploads(tmp_path) == []


def test_uploads_over_the_cap_are_refused_whether_sent_or_unpacked(client, tmp_path, monkeypatch):
    monkeypatch.setenv("SAKUGA_STUDIO_MAX_UPLOAD", str(64 << 10))
    big = bytes(200 << 10)      # zeros: a 200 KiB member compresses to a few hundred bytes (a small bomb)
    bomb = archive({"storyboard.yaml": BOARD.encode(), "boards/a.png": big})
    assert len(bomb) < 64 << 10
    r = post(client, bomb)
    assert r.status_code == 422 and "unpacks to more than" in r.text
    r = post(client, bytes(100 << 10), "raw.zip")
    assert r.status_code == 413
    assert uploads(tmp_path) == [] and not post(client, b"not a zip").status_code == 200


def test_the_storyboard_page_uploads_a_folder_and_opens_it(client, tmp_path):
    import re

    page = client.get("/storyboard")            # the Bearer header signs in (cookie posts need the token: test_pages)
    assert 'id="upload-archive"' in page.text
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)[1]
    data = archive({"storyboard.yaml": BOARD.encode(), "boards/a.png": picture(tmp_path)})
    r = client.post("/storyboard/upload", files={"archive": ("ep9.zip", data, "application/zip")},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204 and r.headers["HX-Redirect"] == "/storyboard?path=uploads/alice/ep9/storyboard.yaml"
