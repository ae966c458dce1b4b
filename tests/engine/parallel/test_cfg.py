"""When a gang splits CFG's two passes over its halves, and how each half shares its attention; the
split itself runs in spawned gangs (test_gang_work.py)."""
from __future__ import annotations

import pytest
import yaml

from engine.parallel.cfg import half_layout
from engine.parallel.layout import Layout, cfg_halves
from engine.wan.options import options
from storyboard.errors import InputError
from storyboard.presets import BUILTIN_DIR, load_preset


def test_only_an_even_gang_with_two_passes_and_the_option_on_splits():
    assert cfg_halves(2, 5.0, True) and cfg_halves(4, 1.5, True) and cfg_halves(8, 5.0, True)
    assert not cfg_halves(1, 5.0, True)            # a lone GPU runs both
    assert not cfg_halves(3, 5.0, True)            # no two equal halves
    assert not cfg_halves(4, 1.0, True)            # guidance 1: one pass, nothing to split
    assert not cfg_halves(4, 5.0, False)           # the preset did not ask


def test_each_half_shares_its_attention_as_a_gang_of_half_the_width_would():
    assert half_layout(2, 40, 75_600) is None                      # halves of one rank: nothing to share
    assert half_layout(8, 40, 75_600) == Layout(4, 1)              # Ulysses inside each half of a node
    assert half_layout(4, 4, 75) == Layout(2, 1, uneven=True)


def test_cfg_parallel_on_a_text_to_video_preset_is_refused_at_its_line(tmp_path, monkeypatch):
    data = yaml.safe_load((BUILTIN_DIR / "wan2.1-t2v-1.3b.yaml").read_text())
    data["name"] = "t2v-split"
    data["options"]["cfg_parallel"] = True
    path = tmp_path / "t2v-split.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    with pytest.raises(InputError) as e:
        options(load_preset("t2v-split"))
    problem = e.value.problems[0]
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "cfg_parallel" in text)
    assert (problem.file, problem.line) == (str(path), line)
    assert "cfg_parallel is for image-to-video presets" in problem.message
    assert options(load_preset("anisora-v2")).cfg_parallel is True
