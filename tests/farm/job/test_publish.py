"""Atomic publishing: a crash at any instant leaves the complete file or none."""

import pytest

from farm.job.publish import (
    atomic_path,
    publish_bytes,
    publish_json,
    remove_stale_temps,
)


def test_failure_inside_atomic_path_leaves_neither_target_nor_temp(tmp_path):
    target = tmp_path / "seg.mp4"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-")
            tmp.write_bytes(b"half a file")
            raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []


def test_failed_publish_keeps_the_previous_version(tmp_path):
    target = tmp_path / "seg.json"
    publish_json(target, {"v": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise KeyboardInterrupt
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["seg.json"]


def test_publish_replaces_atomically_and_writes_nothing_else(tmp_path):
    publish_bytes(tmp_path / "d" / "x.bin", b"one")
    publish_bytes(tmp_path / "d" / "x.bin", b"two")
    assert (tmp_path / "d" / "x.bin").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["x.bin"]


def test_publishing_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "x.bin"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_from_a_crash_are_removed(tmp_path):
    (tmp_path / ".tmp-0a1b2c3d-seg.mp4").write_bytes(b"crashed mid-write")
    (tmp_path / "seg.json").write_text("{}")
    assert remove_stale_temps(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["seg.json"]
