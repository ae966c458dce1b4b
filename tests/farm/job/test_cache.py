"""Segment cache: entries are whole or absent, damaged ones are dropped, hashes never become odd paths."""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from farm.job import cache as cache_mod
from farm.job.cache import SegmentCache, bytes_sha256, default_cache_dir, file_sha256

MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"last frame" * 100
RECORD = {"metrics": {"psnr": 31.5}, "render_s": 12.0, "worker": "w0"}


def h(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def entry_dir(root: Path, hash: str) -> Path:
    return root / hash[:2] / hash


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_put_then_get_round_trips_bytes_digests_and_record(tmp_path):
    cache = SegmentCache(tmp_path / "c")
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, RECORD)

    got = cache.get(h("a"))
    assert got is not None
    assert got["record"] == RECORD
    assert got["files"][".mp4"].read_bytes() == MP4 and got["files"][".png"].read_bytes() == PNG
    assert got["sha256"] == {".mp4": bytes_sha256(MP4), ".png": bytes_sha256(PNG)}
    folder = entry_dir(tmp_path / "c", h("a"))
    assert sorted(p.name for p in folder.iterdir()) == ["entry.json", "segment.mp4", "segment.png"]
    entry = json.loads((folder / "entry.json").read_text())
    assert entry["hash"] == h("a") and isinstance(entry["created"], float)
    assert leftovers(tmp_path) == []


def test_file_sha256_streams_to_the_same_digest(tmp_path):
    big = os.urandom(3 * (1 << 20) + 17)   # spans several 1 MiB chunks
    (tmp_path / "f").write_bytes(big)
    assert file_sha256(tmp_path / "f") == bytes_sha256(big) == hashlib.sha256(big).hexdigest()


def test_missing_entry_is_none(tmp_path):
    cache = SegmentCache(tmp_path)
    assert cache.get(h("nothing")) is None
    assert cache.link_into(h("nothing"), {".mp4": tmp_path / "out.mp4"}) is None
    assert not (tmp_path / "out.mp4").exists()


def test_flipped_byte_in_the_video_drops_the_entry(tmp_path):
    cache = SegmentCache(tmp_path)
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, RECORD)
    video = entry_dir(tmp_path, h("a")) / "segment.mp4"
    data = bytearray(video.read_bytes())
    data[100] ^= 0x01
    video.write_bytes(bytes(data))

    assert cache.get(h("a")) is None
    assert not entry_dir(tmp_path, h("a")).exists()
    assert cache.link_into(h("a"), {".mp4": tmp_path / "out.mp4"}) is None
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("damage", ["missing png", "bad json", "other hash", "no record"])
def test_other_damage_drops_the_entry(tmp_path, damage):
    cache = SegmentCache(tmp_path)
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, RECORD)
    folder = entry_dir(tmp_path, h("a"))
    entry = json.loads((folder / "entry.json").read_text())
    if damage == "missing png":
        (folder / "segment.png").unlink()
    elif damage == "bad json":
        (folder / "entry.json").write_text('{"hash": ')
    elif damage == "other hash":
        (folder / "entry.json").write_text(json.dumps({**entry, "hash": h("b")}))
    else:
        del entry["record"]
        (folder / "entry.json").write_text(json.dumps(entry))

    assert cache.get(h("a")) is None
    assert not folder.exists()


@pytest.mark.parametrize("bad", ["../x", "ABC", "a" * 63, "A" * 64, "g" * 64, "a" * 65, "a" * 64 + "\n",
                                 "../" + "a" * 61, "", None])
def test_malformed_hashes_are_refused(tmp_path, bad):
    cache = SegmentCache(tmp_path / "c")
    with pytest.raises(ValueError):
        cache.put(bad, {".mp4": MP4}, {})
    with pytest.raises(ValueError):
        cache.get(bad)
    with pytest.raises(ValueError):
        cache.link_into(bad, {".mp4": tmp_path / "out.mp4"})
    assert list(tmp_path.iterdir()) == []


def test_only_video_and_last_frame_may_be_filed(tmp_path):
    cache = SegmentCache(tmp_path)
    with pytest.raises(ValueError):
        cache.put(h("a"), {".mp4": MP4, ".sh": b"rm -rf /"}, {})
    with pytest.raises(ValueError):
        cache.put(h("a"), {"/../../x": b""}, {})
    assert cache.get(h("a")) is None and leftovers(tmp_path) == []


def test_a_failed_put_leaves_nothing(tmp_path):
    cache = SegmentCache(tmp_path)
    with pytest.raises(TypeError):
        cache.put(h("a"), {".mp4": MP4}, {"not json": object()})
    assert cache.get(h("a")) is None
    assert [p for p in tmp_path.rglob("*") if p.is_file() or p.name.startswith(".tmp-")] == []


def test_link_into_hard_links_on_the_same_file_system(tmp_path):
    cache = SegmentCache(tmp_path / "c")
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, RECORD)
    out = tmp_path / "job" / "segments"
    dest = {".mp4": out / "s0.mp4", ".png": out / "s0.png"}

    got = cache.link_into(h("a"), dest)
    assert got is not None and got["record"] == RECORD
    for ext, path in dest.items():
        assert path.read_bytes() == got["files"][ext].read_bytes()
        assert os.stat(path).st_ino == os.stat(got["files"][ext]).st_ino
    # linking again (a resumed job) replaces cleanly and leaves no temporaries
    assert cache.link_into(h("a"), dest) is not None
    assert sorted(p.name for p in out.iterdir()) == ["s0.mp4", "s0.png"]


def test_link_into_copies_when_links_fail(tmp_path, monkeypatch):
    cache = SegmentCache(tmp_path / "c")
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, RECORD)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "s0.mp4").write_bytes(b"stale")

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(cache_mod.os, "link", cross_device)
    got = cache.link_into(h("a"), {".mp4": tmp_path / "out" / "s0.mp4"})

    assert got is not None
    target = tmp_path / "out" / "s0.mp4"
    assert target.read_bytes() == MP4
    assert os.stat(target).st_ino != os.stat(got["files"][".mp4"]).st_ino
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["s0.mp4"]


def test_link_into_asks_only_for_files_the_entry_has(tmp_path):
    cache = SegmentCache(tmp_path / "c")
    cache.put(h("a"), {".mp4": MP4}, RECORD)
    assert cache.link_into(h("a"), {".png": tmp_path / "s0.png"}) is None
    assert not (tmp_path / "s0.png").exists()
    with pytest.raises(ValueError):
        cache.link_into(h("a"), {".json": tmp_path / "s0.json"})


def test_second_put_of_a_hash_keeps_the_first_entry(tmp_path):
    cache = SegmentCache(tmp_path)
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, {"n": 1})
    cache.put(h("a"), {".mp4": b"other", ".png": b"other"}, {"n": 2})
    got = cache.get(h("a"))
    assert got["record"] == {"n": 1} and got["files"][".mp4"].read_bytes() == MP4
    assert leftovers(tmp_path) == []


def test_losing_the_rename_race_discards_the_temp_folder(tmp_path, monkeypatch):
    """Another render files the same hash between our existence check and our rename."""
    cache = SegmentCache(tmp_path)
    real_rename = os.rename

    def rival_wins_first(src, dst):
        monkeypatch.setattr(cache_mod.os, "rename", real_rename)
        SegmentCache(tmp_path).put(h("a"), {".mp4": b"rival", ".png": b"rival"}, {"by": "rival"})
        real_rename(src, dst)
    monkeypatch.setattr(cache_mod.os, "rename", rival_wins_first)

    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, {"by": "us"})
    got = cache.get(h("a"))
    assert got["record"] == {"by": "rival"} and got["files"][".mp4"].read_bytes() == b"rival"
    assert leftovers(tmp_path) == []


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SAKUGA_CACHE", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "s" / "segments"

    monkeypatch.delenv("SAKUGA_CACHE")
    assert default_cache_dir() == tmp_path / "x" / "sakuga" / "segments"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "sakuga" / "segments"

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")   # invalid per the XDG spec: ignored
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "sakuga" / "segments"


def test_prune_removes_the_oldest_entries_first(tmp_path):
    cache = SegmentCache(tmp_path)
    names = ["oldest", "middle", "newest"]
    for i, name in enumerate(names):
        cache.put(h(name), {".mp4": MP4, ".png": PNG}, {})
        entry_json = entry_dir(tmp_path, h(name)) / "entry.json"
        entry = json.loads(entry_json.read_text())
        entry_json.write_text(json.dumps({**entry, "created": 1000.0 + i}))
    one = cache.size_bytes() // 3
    assert cache.size_bytes() == 3 * one
    assert one == sum(f.stat().st_size for f in entry_dir(tmp_path, h("oldest")).iterdir())

    assert cache.prune(3 * one) == 0
    assert cache.prune(2 * one + 1) == 1
    assert cache.get(h("oldest")) is None and cache.get(h("middle")) and cache.get(h("newest"))
    assert cache.prune(0) == 2
    assert cache.size_bytes() == 0 and cache.entries() == []


def test_prune_clears_temp_folders_of_crashed_puts(tmp_path):
    cache = SegmentCache(tmp_path)
    cache.put(h("a"), {".mp4": MP4}, {})
    crashed = tmp_path / h("a")[:2] / ".tmp-crashed"
    crashed.mkdir()
    (crashed / "segment.mp4").write_bytes(b"half")
    fresh = tmp_path / h("a")[:2] / ".tmp-in-progress"
    fresh.mkdir()
    day_old = cache_mod.time.time() - cache_mod.STALE_TEMP_S - 60
    os.utime(crashed, (day_old, day_old))

    assert cache.prune(10**9) == 0
    assert not crashed.exists() and fresh.exists()
    assert cache.get(h("a")) is not None


def test_cache_info_and_prune_from_the_command_line(tmp_path, sakuga):
    cache = SegmentCache(tmp_path / "c")
    for i, name in enumerate(["oldest", "newest"]):
        cache.put(h(name), {".mp4": MP4, ".png": PNG}, {})
        entry_json = entry_dir(tmp_path / "c", h(name)) / "entry.json"
        entry_json.write_text(json.dumps({**json.loads(entry_json.read_text()), "created": 1000.0 + i}))
    info = sakuga("cache", "info", "--cache", tmp_path / "c")
    assert info.exit_code == 0 and "2 segments" in info.stdout
    one = cache.size_bytes() // 2
    pruned = sakuga("cache", "prune", "--max-size", str(one), "--cache", tmp_path / "c")
    assert pruned.exit_code == 0 and "removed 1 segments; 1 left" in pruned.stdout
    assert cache.get(h("oldest")) is None and cache.get(h("newest")) is not None
    bad = sakuga("cache", "prune", "--max-size", "lots", "--cache", tmp_path / "c")
    assert bad.exit_code == 2 and "--max-size" in bad.stderr and "not a size" in bad.stderr


def test_prune_by_age_and_size_together(tmp_path):
    cache = SegmentCache(tmp_path)
    now = cache_mod.time.time()
    for name, age_days in [("ancient", 40), ("old", 10), ("new", 0)]:
        cache.put(h(name), {".mp4": MP4, ".png": PNG}, {})
        entry_json = entry_dir(tmp_path, h(name)) / "entry.json"
        entry_json.write_text(json.dumps({**json.loads(entry_json.read_text()), "created": now - age_days * 86400}))
    assert cache.prune(older_than_s=30 * 86400) == 1 and cache.get(h("ancient")) is None
    one = cache.size_bytes() // 2
    assert cache.prune(one, older_than_s=30 * 86400) == 1
    assert cache.get(h("old")) is None and cache.get(h("new")) is not None


def test_a_transient_read_error_never_deletes_a_good_entry(tmp_path, monkeypatch):
    cache = SegmentCache(tmp_path)
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, {"render_s": 1.0})
    real = cache_mod.file_sha256

    def flaky(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cache_mod, "file_sha256", flaky)
    assert cache.get(h("a")) is None                   # not usable now: render instead...
    monkeypatch.setattr(cache_mod, "file_sha256", real)
    assert cache.get(h("a"))["record"] == {"render_s": 1.0}   # ...but the entry is still there
    (entry_dir(tmp_path, h("a")) / "segment.png").unlink()    # a missing file is damage: removed
    assert cache.get(h("a")) is None and not entry_dir(tmp_path, h("a")).exists()


def test_the_cache_is_trimmed_to_its_cap_after_each_job(tmp_path, monkeypatch, FakePool):
    from farm.job.job import Job
    from farm.run.loop import FarmLoop
    from storyboard.load import load
    from storyboard.plan import build_plan

    cache = SegmentCache(tmp_path / "cache")
    for i in range(3):                                  # entries from earlier renders, the oldest first
        cache.put(h(f"old{i}"), {".mp4": MP4, ".png": PNG}, {})
        entry_json = entry_dir(tmp_path / "cache", h(f"old{i}")) / "entry.json"
        entry_json.write_text(json.dumps({**json.loads(entry_json.read_text()), "created": 1000.0 + i}))
    monkeypatch.setenv("SAKUGA_CACHE_MAX_SIZE", str(2 * (len(MP4) + len(PNG)) + 10_000))
    (tmp_path / "sb.yaml").write_text("sakuga: 1\ntitle: Cap\nmodel: noop\noutput: {width: 64, height: 64, fps: 16}\n"
                                      "scenes:\n  - id: one\n    shots:\n      - {id: a, frames: 17, prompt: a}\n")
    loop = FarmLoop(FakePool([1]), cache=cache, observers=())
    loop.add(Job("j", build_plan(load(tmp_path / "sb.yaml")), tmp_path / "out"))
    loop.run()
    assert cache.size_bytes() <= 2 * (len(MP4) + len(PNG)) + 10_000
    assert cache.get(h("old0")) is None                 # the oldest went first
    assert (tmp_path / "out" / "segments" / "a.0.mp4").is_file()


def test_cache_prune_by_age_from_the_command_line(tmp_path, sakuga):
    cache = SegmentCache(tmp_path / "c")
    cache.put(h("a"), {".mp4": MP4, ".png": PNG}, {})
    entry_json = entry_dir(tmp_path / "c", h("a")) / "entry.json"
    entry_json.write_text(json.dumps({**json.loads(entry_json.read_text()), "created": 1000.0}))
    result = sakuga("cache", "prune", "--older-than", "30d", "--cache", tmp_path / "c")
    assert result.exit_code == 0 and "removed 1 segments; 0 left" in result.stdout
    assert sakuga("cache", "prune", "--cache", tmp_path / "c").exit_code == 2
    bad = sakuga("cache", "prune", "--older-than", "soon", "--cache", tmp_path / "c")
    assert bad.exit_code == 2 and "--older-than" in bad.stderr
