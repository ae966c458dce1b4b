"""The engine registry: which engine a preset names, and whether it can load here, without loading it."""
from __future__ import annotations

import pytest

from engine.animatic import AnimaticEngine
from engine.registry import check, create
from storyboard.errors import InputError
from storyboard.presets import load_preset


def test_each_engine_a_preset_names_is_built_by_the_registry():
    assert isinstance(create(load_preset("animatic")), AnimaticEngine)
    assert type(create(load_preset("noop"))).__name__ == "NoopEngine"


def test_an_unknown_engine_is_refused_naming_the_preset():
    preset = load_preset("noop").model_copy(update={"engine": "nope", "name": "mine"})
    with pytest.raises(ValueError, match="unknown engine 'nope' in preset 'mine'"):
        create(preset)


def test_checking_a_wan_preset_with_missing_weights_names_the_option_and_loads_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("SAKUGA_WAN21_I2V_720P", str(tmp_path / "no-base"))
    monkeypatch.setenv("SAKUGA_ANISORA_V3", str(tmp_path / "no-anisora.safetensors"))
    preset = load_preset("anisora-v3")
    with pytest.raises(InputError) as e:
        check(preset)
    messages = [p.message for p in e.value.problems]
    assert any("weights not found: options.base" in m and "no-base" in m for m in messages), messages
    assert any("weights not found: options.transformer" in m for m in messages), messages
    assert all(p.file.endswith("anisora-v3.yaml") for p in e.value.problems)


def test_checking_the_animatic_needs_nothing():
    check(load_preset("animatic"))
    check(load_preset("noop"))
