"""`sakuga models check PRESET`: each component's layout, dtype, parameters, shards and fit, from headers
alone; exit 0 when it would load, 2 naming the file otherwise; `render` refuses the same before Ray."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import WanTransformer3DModel

import engine.wan.layouts.layout as layout_module
import engine.wan.layouts.stored as stored_module
from engine.wan import model_check, tiny
from engine.wan.layouts import replicas
from storyboard.presets import load_preset

ARCHITECTURES = "configs/architectures"
SHARD_2 = "diffusion_pytorch_model-00002-of-00003.safetensors"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    base = tiny.build(root / "tiny")
    original = WanTransformer3DModel.from_pretrained(base, subfolder="transformer")
    folder = replicas.write_wan_folder(original.state_dict(), dict(original.config), root / "V3.1", shards=3)
    return {"root": root, "base": base, "folder": folder, "original": original}


@pytest.fixture
def preset(made, tmp_path, monkeypatch):
    """`preset(name, **options)`: a wan-tiny-like preset in $SAKUGA_MODELS over the tiny base."""
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path / "presets"))
    (tmp_path / "presets").mkdir()

    def make(name: str, **options):
        data = json.loads(load_preset("wan-tiny").model_dump_json())
        data.update(name=name, degrees=[1, 2], options={"base": str(made["base"]), "dtype": "bfloat16", **options})
        (tmp_path / "presets" / f"{name}.yaml").write_text(json.dumps(data))
        return name
    return make


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Reading any tensor data fails the test: the check must work from headers alone."""
    def refuse(*args, **kwargs):
        raise AssertionError("models check read tensor data")
    monkeypatch.setattr(stored_module, "read_safetensors", refuse)
    monkeypatch.setattr(layout_module, "read_safetensors", refuse)


def test_a_good_folder_prints_the_table_and_exits_0(sakuga, made, preset, no_tensor_reads):
    result = sakuga("models", "check", preset("good", transformer=str(made["folder"])))
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    params = sum(t.numel() for t in made["original"].state_dict().values())
    assert params < 1e5      # printed whole below a hundred thousand
    assert rows["transformer"].split()[1:6] == ["wan-folder", "F32", "×87", str(params), "3/3"]
    assert "ok; config: its own, agrees with the base's" in rows["transformer"]
    assert {"text_encoder", "vae", "image_encoder"} <= set(rows)
    assert "degree 1:" in result.stdout and "degree 2:" in result.stdout
    assert result.stdout.rstrip().endswith("would load")


def test_a_folder_missing_one_shard_exits_2_naming_that_shard(sakuga, made, preset, tmp_path, no_tensor_reads):
    folder = shutil.copytree(made["folder"], tmp_path / "V3.1")
    (folder / SHARD_2).unlink()
    result = sakuga("models", "check", preset("no-shard", transformer=str(folder)))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == [f"{folder / SHARD_2}:1:1: error: shard {SHARD_2} is missing (the index names it)"]
    assert "2/3" in result.stdout and "would NOT load" in result.stdout


def test_a_wrong_shape_tensor_exits_2_naming_it(sakuga, made, preset, tmp_path, no_tensor_reads):
    sd = dict(made["original"].state_dict())
    sd["blocks.1.attn2.to_k.weight"] = torch.zeros(24, 23)
    folder = replicas.write_wan_folder(sd, dict(made["original"].config), tmp_path / "V3.1")
    result = sakuga("models", "check", preset("bad-shape", transformer=str(folder)))
    assert result.exit_code == 2
    assert "tensor blocks.1.cross_attn.k.weight has shape [24, 23], the transformer expects [24, 24]" in result.stderr
    assert "1 wrong shape" in result.stdout


def test_a_v32_pair_is_checked_expert_by_expert(sakuga, made, preset, tmp_path):
    sd, config = made["original"].state_dict(), dict(made["original"].config)
    high = replicas.write_wan_folder(sd, config, tmp_path / "V3.2" / "high_noise_model", shards=2)
    low = replicas.write_wan_folder(sd, config, tmp_path / "V3.2" / "low_noise_model", shards=2, with_config=False)
    pair = preset("pair", transformer=str(high), transformer_2=str(low), boundary_ratio=0.9)
    result = sakuga("models", "check", pair)
    assert result.exit_code == 0, result.output
    assert "low_noise_model/ has no config.json" in result.stdout
    assert "config: the base's transformer config" in result.stdout


def test_a_wan_release_folder_as_base_is_named_for_what_it_is(sakuga, made, preset, tmp_path):
    wan = tmp_path / "Wan2.1-I2V-14B-720P"
    wan.mkdir()
    (wan / "Wan2.1_VAE.pth").write_bytes(b"")
    result = sakuga("models", "check", preset("wan-release", base=str(wan)))
    assert result.exit_code == 2
    assert "Wan's original release folder (.pth files)" in result.stderr
    assert "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers" in result.stderr


def test_an_animatic_preset_needs_no_weights_and_an_unknown_one_is_an_input_error(sakuga):
    assert sakuga("models", "check", "animatic").exit_code == 0
    unknown = sakuga("models", "check", "no-such-model")
    assert unknown.exit_code == 2 and "unknown model preset 'no-such-model'" in unknown.stderr


def test_a_full_size_checkpoint_is_checked_from_its_headers(made, tmp_path, monkeypatch, no_tensor_reads):
    """A 14B Wan folder whose shards are holes (their headers claim 65 GB of FP32, the disk holds
    nothing): checked like the tiny one, 16.39B parameters, nothing read."""
    config = json.loads((model_check.Path(ARCHITECTURES) / "wan2.1-i2v-14b.transformer.json").read_text())
    base = tmp_path / "base"
    (base / "transformer").mkdir(parents=True)
    (base / "model_index.json").write_text(json.dumps({"_class_name": "WanImageToVideoPipeline",
                                                       "transformer": ["diffusers", "WanTransformer3DModel"]}))
    (base / "transformer" / "config.json").write_text(json.dumps(config))
    folder = replicas.write_sparse_wan_folder(config, tmp_path / "V3.1", shards=7)
    claimed = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    on_disk = sum(f.stat().st_blocks * 512 for f in folder.glob("*.safetensors"))
    assert claimed > 60e9 and on_disk < 1e6
    preset = load_preset("anisora-v3")
    preset = preset.model_copy(update={"options": {**preset.options, "base": str(base), "transformer": str(folder)}})

    report = model_check.check(preset)

    assert report.ok, report.problems
    (transformer,) = report.components
    assert (transformer.layout, transformer.dtypes, transformer.shards) == ("wan-folder", {"F32": 1303}, (7, 7))
    assert round(transformer.parameters / 1e9, 2) == 16.39
    # bf16 weights alone are 2 bytes a parameter on every rank of a gang
    assert all(gb > transformer.parameters * 2 / 1e9 for gb in report.memory_gb.values())
    assert report.memory_gb[1] > report.memory_gb[8]


def test_render_refuses_a_preset_whose_weights_would_not_load_before_starting_ray(sakuga, made, preset, tmp_path,
                                                                                  make_storyboard):
    folder = shutil.copytree(made["folder"], tmp_path / "V3.1")
    (folder / SHARD_2).unlink()
    name = preset("broken", transformer=str(folder))
    board = make_storyboard(f"""\
        sakuga: 1
        title: Broken
        model: {name}
        output: {{width: 64, height: 64, fps: 16}}
        scenes:
          - id: s
            shots:
              - {{id: a, frames: 5, prompt: a door}}
        """)
    result = sakuga("render", board, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert f"shard {SHARD_2} is missing" in result.stderr
    assert not (tmp_path / "out").exists()
