"""When segments are checkpointed: a preset's `options.checkpoint` and the rule the farm asks."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.wan.options import options
from storyboard.checkpoints import CheckpointPolicy, checkpoint_policy
from storyboard.errors import InputError
from storyboard.presets import BUILTIN_DIR, load_preset


def preset_with(tmp_path: Path, monkeypatch, checkpoint: str):
    """wan-tiny as a preset `ckpt` in $SAKUGA_MODELS, with `checkpoint` as the last line of its options."""
    folder = tmp_path / "presets"
    folder.mkdir()
    text = (BUILTIN_DIR / "wan-tiny.yaml").read_text().replace("name: wan-tiny", "name: ckpt")
    text = text.replace("  identity_weight: 0.5\n", f"  identity_weight: 0.5\n  checkpoint: {checkpoint}\n")
    (folder / "ckpt.yaml").write_text(text)
    monkeypatch.setenv("SAKUGA_MODELS", str(folder))
    return load_preset("ckpt"), text.splitlines().index(f"  checkpoint: {checkpoint}") + 1


def test_long_segments_are_checkpointed_by_time_and_cheap_ones_not_at_all():
    v3 = load_preset("anisora-v3")
    long = v3.runtime(81, 1280, 720, steps=8, guidance=1.0)     # minutes on one GPU by its cost model
    assert long > 60
    assert checkpoint_policy(v3, long) == CheckpointPolicy(every_steps=None, every_s=120.0)
    assert checkpoint_policy(v3, 59.0) is None
    tiny = load_preset("wan-tiny")
    assert checkpoint_policy(tiny, tiny.runtime(17, 64, 64, steps=4, guidance=1.0)) is None
    assert checkpoint_policy(load_preset("animatic"), 1e6) is None      # no denoising steps to checkpoint


def test_a_preset_sets_the_steps_the_seconds_and_the_threshold(tmp_path, monkeypatch):
    preset, _ = preset_with(tmp_path, monkeypatch, "{every_steps: 2, every_s: 30, min_segment_s: 1}")
    policy = checkpoint_policy(preset, 5.0)
    assert policy == (2, 30.0)
    assert options(preset).checkpoint.every_steps == 2                 # the engine reads the same block
    assert [policy.due(steps, 0.0) for steps in (1, 2, 3)] == [False, True, True]
    assert policy.due(1, 30.0) and not policy.due(1, 29.9)
    assert not CheckpointPolicy(None, 30.0).due(100, 1.0) and not CheckpointPolicy(3, None).due(2, 1e9)


@pytest.mark.parametrize("block, field, words", [
    ("{every_steps: 0}", "options.checkpoint.every_steps", "greater than or equal to 1"),
    ("{every_s: -5}", "options.checkpoint.every_s", "greater than 0"),
    ("{every_steps: null, every_s: null}", "options.checkpoint", "give every_steps or every_s"),
    ("{every_step: 2}", "options.checkpoint.every_step", "Extra inputs are not permitted"),
])
def test_a_bad_checkpoint_block_names_the_preset_file_line_and_field(tmp_path, monkeypatch, block, field, words):
    preset, line = preset_with(tmp_path, monkeypatch, block)
    for read in (lambda: checkpoint_policy(preset, 1e4), lambda: options(preset)):
        with pytest.raises(InputError) as e:
            read()
        (problem,) = e.value.problems
        assert problem.file.endswith("ckpt.yaml") and problem.line == line
        assert field in problem.message and words in problem.message
