"""Options every command shares: `--model` names a preset everywhere (`--engine` still works, with a
note), and `sakuga --verbose/--quiet` set how much the farm says on stderr."""
from __future__ import annotations

import json

STORYBOARD = """\
sakuga: 1
title: Options
output: {width: 64, height: 64, fps: 16}
scenes:
  - id: one
    shots:
      - {id: a, frames: 17, prompt: a}
"""


def test_model_names_the_preset_and_engine_is_its_old_alias(tmp_path, sakuga):
    sb = tmp_path / "sb.yaml"
    sb.write_text(STORYBOARD)
    by_model = sakuga("plan", sb, "--json", "--model", "noop")
    by_engine = sakuga("plan", sb, "--json", "--engine", "noop")
    assert by_model.exit_code == by_engine.exit_code == 0
    assert json.loads(by_model.stdout)["segments"][0]["hash"] == json.loads(by_engine.stdout)["segments"][0]["hash"]
    assert "--engine is now --model" in by_engine.stderr and "--engine" not in by_model.stderr
    clash = sakuga("plan", sb, "--model", "noop", "--engine", "animatic")
    assert clash.exit_code == 2 and "\n--engine:1:1: error: --engine 'animatic' and --model 'noop' disagree" in clash.stderr
    assert "--model" in sakuga("render", "--help").stdout and "--model" in sakuga("batch", "--help").stdout
    assert "--model" in sakuga("submit", "--help").stdout


def test_quiet_keeps_only_warnings_and_verbose_tells_about_workers(ray_cluster, tmp_path, sakuga):
    sb = tmp_path / "sb.yaml"
    sb.write_text(STORYBOARD.replace("title: Options", "title: Options\nmodel: noop"))
    out = tmp_path / "out"
    assert sakuga("render", sb, "--out", out, "--no-cache", "-q").exit_code == 0
    again = sakuga("render", sb, "--out", out, "--no-cache", "-q")
    assert "reused 1 of 1 segments" in again.stderr
    quiet = sakuga("--quiet", "render", sb, "--out", out, "--no-cache", "-q")
    assert quiet.exit_code == 0 and "reused" not in quiet.stderr
    verbose = sakuga("--verbose", "render", sb, "--out", tmp_path / "fresh", "--no-cache", "-q")
    assert verbose.exit_code == 0 and "worker_started" in verbose.stderr


def test_gpus_beyond_a_local_farm_are_refused_before_ray_starts(tmp_path, sakuga):
    sb = tmp_path / "sb.yaml"
    sb.write_text(STORYBOARD)
    for command in (["render", sb, "--out", tmp_path / "out"], ["batch", sb, "--out", tmp_path / "many"]):
        result = sakuga(*command, "--gpus", "4096")
        assert result.exit_code == 2 and result.stderr.startswith("--gpus:1:1: error: 4096 workers on one machine")
    assert not (tmp_path / "out").exists() and not (tmp_path / "many").exists()


def test_resume_takes_where_to_connect_and_which_folders_to_trust_from_its_command_line(ray_cluster, tmp_path,
                                                                                        sakuga):
    from farm.job.ledger import Ledger

    sb = tmp_path / "sb.yaml"
    sb.write_text(STORYBOARD.replace("title: Options", "title: Options\nmodel: noop"))
    out = tmp_path / "out"
    assert sakuga("render", sb, "--out", out, "--no-cache", "-q").exit_code == 0
    with Ledger(out / "ledger.sqlite") as ledger:   # a ledger edited by someone who can write the folder
        job = ledger.jobs()[-1]
        ledger.upsert_job(job["id"], source=job["source"], out=job["out"], status="interrupted",
                          config={**job["config"], "address": "http://127.0.0.1:9", "asset_roots": ["/etc"],
                                  "cache": str(tmp_path / "elsewhere")})
    result = sakuga("resume", out, "-q")
    assert result.exit_code == 0, result.stderr
    assert "the ledger recorded address 'http://127.0.0.1:9'" in result.stderr
    assert "asset_roots ['/etc']" in result.stderr and "elsewhere" in result.stderr
    assert not (tmp_path / "elsewhere").exists()
