"""An output folder has one writer, and sakuga writes only into folders of its own: a second render
is refused (naming who writes) or waits; the storyboard's folder, a folder of the user's files, or a
path through a file are refused before Ray starts; `import -o` never replaces its source."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.job.lock import FolderBusy, FolderLock
from storyboard.load import load
from storyboard.plan import build_plan

ROOT = Path(__file__).resolve().parents[3]
STORYBOARD = """\
sakuga: 1
title: Folder
model: noop
output: {width: 64, height: 64, fps: 16}
scenes:
  - id: one
    shots:
      - {id: a, frames: 17, prompt: a}
"""


def hold(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the folder's lock for `seconds` (it says 'held' once it does)."""
    code = (f"import time, sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from pathlib import Path\nfrom farm.job.lock import FolderLock\n"
            f"lock = FolderLock(Path({str(folder)!r})).acquire()\nprint('held', flush=True)\n"
            f"time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def nothing_written(folder: Path, before: dict) -> bool:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_a_second_render_into_a_busy_folder_is_refused_naming_the_writer(tmp_path, sakuga):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    out = tmp_path / "out"
    holder = hold(out, 30)
    try:
        result = sakuga("render", tmp_path / "sb.yaml", "--out", out, "-q")
        Ledger(out / "ledger.sqlite").close()          # as the render holding the folder has written
        report = sakuga("report", out)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2 and f"pid {holder.pid}" in result.stderr and "--wait" in result.stderr
    assert result.stderr.startswith(f"{out}:") and "Traceback" not in result.stderr
    assert report.exit_code == 2 and "another sakuga is writing here" in report.stderr
    assert sorted(p.name for p in out.iterdir()) == [".sakuga.lock", "ledger.sqlite"]   # nothing else written


def test_two_jobs_in_one_process_cannot_share_a_folder_and_the_lock_goes_with_its_holder(tmp_path):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    plan = build_plan(load(tmp_path / "sb.yaml"))
    first, second = Job("one", plan, tmp_path / "out"), Job("two", plan, tmp_path / "out")
    first.open(None)
    with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"):
        second.open(None)
    first.close()
    second.open(None)                  # free once the first closes
    second.close()
    holder = hold(tmp_path / "dead", 30)
    holder.kill()                      # a writer that dies lets go: the kernel drops its flock
    holder.wait()
    FolderLock(tmp_path / "dead").acquire().release()


def test_wait_renders_once_the_other_writer_is_done(ray_cluster, tmp_path, sakuga):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    out = tmp_path / "out"
    holder = hold(out, 2)
    started = time.time()
    result = sakuga("render", tmp_path / "sb.yaml", "--out", out, "-q", "--wait", "--no-cache")
    holder.wait()
    assert result.exit_code == 0, result.stderr
    assert (out / "episode.mp4").is_file() and holder.returncode == 0
    assert time.time() - started >= 1.0                                  # it did wait for the holder


@pytest.mark.parametrize("case", ["storyboard folder", "user files", "through a file", "a file"])
def test_folders_sakuga_must_not_write_into_are_refused_before_anything_starts(tmp_path, sakuga, case):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "report.html").write_text("my own notes")
    (tmp_path / "a-file").write_text("x")
    out = {"storyboard folder": tmp_path, "user files": tmp_path / "notes",
           "through a file": tmp_path / "a-file" / "sub", "a file": tmp_path / "a-file"}[case]
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    notes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "notes").iterdir()}
    result = sakuga("render", tmp_path / "sb.yaml", "--out", out, "-q")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{out}:1:1: error: ")
    assert nothing_written(tmp_path, before) and nothing_written(tmp_path / "notes", notes)
    assert (tmp_path / "notes" / "report.html").read_text() == "my own notes"


def test_a_sakuga_output_folder_is_fine_to_render_into_again(ray_cluster, tmp_path, sakuga):
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    assert sakuga("render", tmp_path / "sb.yaml", "--out", tmp_path / "out", "-q", "--no-cache").exit_code == 0
    again = sakuga("render", tmp_path / "sb.yaml", "--out", tmp_path / "out", "-q", "--no-cache")
    assert again.exit_code == 0 and "reused 1 of 1" in again.stderr


def test_import_never_replaces_its_source_nor_writes_into_a_folder_and_escapes_the_file_name(tmp_path, sakuga):
    source = tmp_path / "clip.pv"
    text = "# Clip\n## a street\n- [1s] a cat walks\n"
    source.write_text(text)
    same = sakuga("import", source, "-o", source)
    assert same.exit_code == 2 and "file being imported" in same.stderr and source.read_text() == text
    folder = sakuga("import", source, "-o", tmp_path)
    assert folder.exit_code == 2 and "names a folder" in folder.stderr
    odd = tmp_path / "clip\ntitle: injected.pv"
    odd.write_text(text)
    wrote = sakuga("import", odd, "-o", tmp_path / "out.yaml")
    assert wrote.exit_code == 0, wrote.stderr
    import yaml

    data = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert data["title"] == "Clip"                       # the file name stayed inside its comment
    assert sakuga("validate", tmp_path / "out.yaml").exit_code == 0
