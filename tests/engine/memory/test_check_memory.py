"""`sakuga models check`'s memory row: the plan's figure when the weights are the preset's architecture,
the files' estimate (and a note on the transformer's row) when they are not."""
from __future__ import annotations

import pytest

from engine.memory.plan import whole_model_gib
from engine.wan import model_check, tiny
from storyboard.presets import load_preset


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return tiny.build(tmp_path_factory.mktemp("memory") / "tiny")


def test_a_preset_naming_the_14b_architecture_over_tiny_weights_is_estimated_from_the_files(tiny_base):
    v3 = load_preset("anisora-v3")
    preset = v3.model_copy(update={"options": {"base": str(tiny_base), "dtype": "bfloat16"}})
    report = model_check.check(preset)
    (row,) = [c for c in report.components if c.name == "transformer"]
    assert any("not the preset's architecture wan2.1-i2v-14b" in n and "num_layers 2 (architecture: 40)" in n
               for n in row.notes), row.notes
    assert max(report.memory_gb.values()) < 1           # the tiny files, not a 14B plan
    assert "memory estimated from the files" in model_check.table(report)


def test_the_plan_is_the_whole_model_figure_per_degree_and_falls_with_the_degree():
    v3 = load_preset("anisora-v3")
    gib = whole_model_gib(v3, v3.degrees)
    assert list(gib) == v3.degrees and gib[1] > gib[2] > gib[4] > gib[8] > 30.5   # the bf16 transformer alone
