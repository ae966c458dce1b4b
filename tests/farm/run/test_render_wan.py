"""The Wan engine inside the farm: the tiny model rendered through Ray, the character bank file, QC
metrics in the manifest, missing weights refused before anything is written, worker residency."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from farm.media.decode import probe
from farm.workers.engines import EngineCache
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset

STORYBOARD = """\
sakuga: 1
title: Tiny
model: wan-tiny
output: {width: 96, height: 64, fps: 16}
characters:
  hana: {name: Hana, refs: [hana.png], description: silver hair}
scenes:
  - id: one
    shots:
      - {id: a, frames: 17, prompt: "@hana on the roof", start: red.png, transition: {crossfade: 0.25}}
      - {id: b, frames: 97, prompt: blue to green, start: blue.png, keyframes: [{image: green.png, at: 0.5}]}
  - id: two
    shots:
      - {id: c, frames: 17, prompt: "@hana again", start: previous}
      - {id: d, frames: 9, prompt: an empty sky}
"""


@pytest.fixture
def storyboard(tmp_path: Path) -> Path:
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220)), ("green", (30, 200, 30)),
                         ("hana", (240, 200, 210))):
        Image.new("RGB", (120, 80), colour).save(tmp_path / f"{name}.png")
    (tmp_path / "sb.yaml").write_text(STORYBOARD)
    return tmp_path / "sb.yaml"


def test_tiny_wan_renders_through_ray_with_bank_and_metrics(ray_cluster, storyboard, tmp_path, sakuga):
    plan = build_plan(load(storyboard))
    out = tmp_path / "out"
    result = sakuga("render", storyboard, "--out", out, "--gpus", "2", "--quiet")
    assert result.exit_code == 0, result.stderr
    info = probe(out / "episode.mp4")
    assert (info["frames"], info["width"], info["height"]) == (plan.episode_frames, 96, 64)

    manifest = {r["segment"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    assert list(manifest) == [s.id for s in plan.segments]
    for seg in plan.segments:
        row = manifest[seg.id]
        metrics = dict(row["metrics"])
        assert row["status"] == "done" and row["model"] == "wan-tiny"
        assert 0.0 < metrics["flicker"] < 1.0
        # character similarity exactly where a character is in the shot
        assert ("character_similarity.hana" in metrics) == (seg.shot in ("a", "c"))
        if seg.shot in ("a", "c"):
            assert -1.0 <= metrics["character_similarity"] <= 1.0

    bank = pq.read_table(out / "characters.parquet").to_pylist()
    hana_sha = plan.segment("a.0").characters[0].refs[0].sha256
    assert [(r["character"], r["image_sha256"]) for r in bank] == [("hana", hana_sha)]
    encoder = bank[0]["encoder"]

    # a second render into the same folder reuses the bank rows (same encoder, same picture)
    result = sakuga("render", storyboard, "--out", out, "--gpus", "1", "--quiet")
    assert result.exit_code == 0, result.stderr
    again = pq.read_table(out / "characters.parquet").to_pylist()
    assert again == bank and again[0]["encoder"] == encoder


def test_missing_weights_exit_2_naming_the_preset_and_path(tmp_path, monkeypatch, sakuga):
    presets = tmp_path / "presets"
    presets.mkdir()
    text = (Path(__file__).resolve().parents[3] / "configs" / "models" / "anisora-v3.yaml").read_text()
    (presets / "anisora-v3.yaml").write_text(text)
    monkeypatch.setenv("SAKUGA_MODELS", str(presets))
    monkeypatch.setenv("SAKUGA_WAN21_I2V_720P", str(tmp_path / "nowhere" / "Wan2.1-I2V-14B-720P-Diffusers"))
    monkeypatch.setenv("SAKUGA_ANISORA_V3", str(tmp_path / "nowhere" / "anisora.safetensors"))
    Image.new("RGB", (64, 64), (200, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "sb.yaml").write_text(textwrap.dedent("""\
        sakuga: 1
        model: anisora-v3
        output: {width: 64, height: 64}
        scenes:
          - id: s
            shots:
              - {id: a, frames: 9, prompt: a, start: a.png}
        """))
    out = tmp_path / "out"
    result = sakuga("render", tmp_path / "sb.yaml", "--out", out)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    base_line = next(i for i, t in enumerate(text.splitlines(), 1) if t.lstrip().startswith("base:"))
    assert f"{presets / 'anisora-v3.yaml'}:{base_line}:" in lines[0]
    assert any(str(tmp_path / "nowhere" / "Wan2.1-I2V-14B-720P-Diffusers") in line for line in lines)
    assert any(str(tmp_path / "nowhere" / "anisora.safetensors") in line for line in lines)
    assert all("anisora-v3" in line for line in lines)
    assert "Traceback" not in result.output
    assert not out.exists()   # nothing half-written

    listing = sakuga("models", "list")
    assert "MISSING" in listing.stdout and str(tmp_path / "nowhere") in listing.stdout


def test_a_worker_evicts_the_least_recently_used_engine_when_memory_runs_out():
    base = load_preset("wan-tiny")
    small, big, other = (base.model_copy(update={"name": n, "memory_gb": gb})
                         for n, gb in (("small", 30.0), ("big", 50.0), ("other", 20.0)))
    loaded = []
    cache = EngineCache(80.0, lambda p, offload: loaded.append(p.name) or object())
    cache.get(small)
    cache.get(big)                  # 30 + 50 fits in 80
    cache.get(small)                # used again: now `big` is the least recently used
    cache.get(other)                # 30 + 50 + 20 > 80: `big` goes
    assert cache.resident() == ["other", "small"]
    cache.get(small)
    assert loaded == ["small", "big", "other"]   # `small` never reloaded
    cache.get(big)                  # needs 50: `other` (least recent) and then... 30 + 50 fits
    assert cache.resident() == ["big", "small"] and cache.used_gb == 80.0


def test_a_misspelt_engine_option_is_reported_on_its_preset_line(tmp_path, monkeypatch, sakuga):
    presets = tmp_path / "presets"
    presets.mkdir()
    text = (Path(__file__).resolve().parents[3] / "configs" / "models" / "wan-tiny.yaml").read_text()
    (presets / "wan-tiny.yaml").write_text(text.replace("  identity_weight: 0.5", "  identity_wieght: 0.5"))
    monkeypatch.setenv("SAKUGA_MODELS", str(presets))
    (tmp_path / "sb.yaml").write_text("sakuga: 1\nmodel: wan-tiny\nscenes:\n  - id: s\n    shots:\n"
                                      "      - {id: a, frames: 9, prompt: a}\n")
    result = sakuga("render", tmp_path / "sb.yaml", "--out", tmp_path / "out")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "identity_weight" in t)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{presets / 'wan-tiny.yaml'}:{line}:")
    assert "identity_wieght" in result.stderr and not (tmp_path / "out").exists()
