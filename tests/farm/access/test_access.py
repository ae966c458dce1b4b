"""Who may do what on a shared farm: users and their tokens, each user's output root, and the farm API as
one user sees it (their own jobs; someone else's cannot be cancelled, reprioritised or written into)."""
from __future__ import annotations

from pathlib import Path

import pytest

from farm.access.guard import Forbidden, UserFarm
from farm.access.roots import confine
from farm.access.users import User, UserStore
from farm.api.embedded import EmbeddedFarm
from farm.api.protocol import JobRequest
from farm.job.ledger import Ledger
from storyboard.errors import InputError


def test_tokens_sign_in_their_user_only_and_are_never_stored(tmp_path):
    users = UserStore(tmp_path / "users.sqlite")
    alice, bob = users.add("alice"), users.add("bob", admin=True)
    assert users.authenticate(alice) == User("alice") and users.authenticate(bob) == User("bob", admin=True)
    assert users.authenticate(alice[:-1] + ("x" if alice[-1] != "x" else "y")) is None
    assert users.authenticate("") is None and users.authenticate(None) is None
    assert alice.encode() not in (tmp_path / "users.sqlite").read_bytes()      # only its digest is kept
    assert oct((tmp_path / "users.sqlite").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(InputError, match="already exists"):
        users.add("alice")
    for bad in ("Alice", "../x", "a b", "", "x" * 33, "-rf"):
        with pytest.raises(InputError, match="not a user name"):
            users.add(bad)
    assert [u.name for u in users.list()] == ["alice", "bob"]
    assert users.remove("alice") and not users.remove("alice")
    assert users.authenticate(alice) is None                                   # removed: signed out at once


def test_outputs_are_confined_to_the_users_folder_of_the_farm_root(tmp_path):
    root = tmp_path / "jobs"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    assert confine("ep1", "alice", "job", root) == (root / "alice" / "ep1").resolve()
    assert confine(None, "alice", "job-1", root) == (root / "alice" / "job-1").resolve()
    assert confine(root / "alice" / "a" / "b", "alice", "job", root) == (root / "alice" / "a" / "b").resolve()
    (root / "alice" / "link").symlink_to(root / "bob")                          # a link planted inside
    for out in ("../bob/ep1", str(root / "bob" / "ep1"), "/etc", "link/ep1", str(root / "alice"), str(root)):
        with pytest.raises(InputError, match="outside|'..'"):
            confine(out, "alice", "job", root)
    with pytest.raises(InputError, match="not a user name"):
        confine("ep1", "../bob", "job", root)
    assert not (root / "alice" / "ep1").exists()                               # nothing created


def test_user_a_cannot_cancel_reprioritise_or_see_user_bs_job(plan_of, tmp_path, FakePool):
    root = tmp_path / "jobs"
    farm = EmbeddedFarm(FakePool([1]))
    alice, bob, admin = (UserFarm(farm, User(n, n == "boss"), root) for n in ("alice", "bob", "boss"))
    a = alice.submit(JobRequest(plan_of(tmp_path, "a-ep", 3), Path("ep"), priority=1))
    b = bob.submit(JobRequest(plan_of(tmp_path, "b-ep", 3), Path("ep"), priority=1))
    assert Path(a.out) == (root / "alice" / "ep").resolve() and a.owner == "alice"
    assert Path(b.out) == (root / "bob" / "ep").resolve() and b.owner == "bob"

    with pytest.raises(Forbidden, match="belongs to bob"):
        alice.cancel(b.id)
    with pytest.raises(Forbidden, match="belongs to bob"):
        alice.set_priority(b.id, 100)
    assert [j.id for j in alice.jobs()] == [a.id] and alice.job(b.id) is None and alice.events(b.id) == []
    assert farm.job(b.id).summary.state == "running" and farm.job(b.id).summary.priority == 1   # untouched
    assert {j.id for j in admin.jobs()} == {a.id, b.id}
    assert bob.set_priority(b.id, 7) and admin.set_priority(a.id, 9)
    assert alice.cancel(a.id) and admin.cancel(b.id)
    farm.wait()
    assert farm.job(a.id).summary.state == farm.job(b.id).summary.state == "cancelled"
    with Ledger(Path(b.out) / "ledger.sqlite") as ledger:                       # the owner survives resume
        assert ledger.job(b.id)["config"]["owner"] == "bob"


def test_a_user_cannot_write_outside_their_root_and_nothing_is_written(plan_of, tmp_path, FakePool):
    root = tmp_path / "jobs"
    (root / "bob" / "ep").mkdir(parents=True)
    farm = EmbeddedFarm(FakePool([1]))
    alice = UserFarm(farm, User("alice"), root)
    for out in (root / "bob" / "ep", Path("../bob/ep"), tmp_path / "elsewhere"):
        with pytest.raises(InputError):
            alice.submit(JobRequest(plan_of(tmp_path, "a-ep"), out))
    assert farm.jobs() == [] and list((root / "bob" / "ep").iterdir()) == [] and not (tmp_path / "elsewhere").exists()

