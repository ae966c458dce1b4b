"""Every published transformer layout, replicated from the tiny model's transformer, loads into the same
model: bit for bit where the bytes are the same, within the format's own rounding for FP8 and GGUF."""
from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel
from PIL import Image

from engine.wan import tiny
from engine.wan.engine import WanEngine
from engine.wan.layouts import UnknownLayout, detect, replicas
from engine.wan.weights import load_transformer
from storyboard.errors import InputError
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset
from tests.conftest import make_storyboard

E4M3_MANTISSA_BITS = 3


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The tiny pipeline and its transformer written in every layout."""
    root = tmp_path_factory.mktemp("layouts")
    base = tiny.build(root / "tiny")
    original = WanTransformer3DModel.from_pretrained(base, subfolder="transformer").eval()
    sd, config = original.state_dict(), dict(original.config)
    v32 = root / "Index-anisora" / "V3.2"
    paths = {
        "wan-folder": replicas.write_wan_folder(sd, config, root / "V3.1", shards=3),
        "v3.2-high": replicas.write_wan_folder(sd, config, v32 / "high_noise_model", shards=2),
        "v3.2-low": replicas.write_wan_folder(sd, config, v32 / "low_noise_model", shards=2, with_config=False),
        "wan-file": replicas.write_single_file(sd, root / "anisora.safetensors"),
        "diffusers-file": replicas.write_single_file(sd, root / "diffusers.safetensors", "diffusers"),
        "diffusers-folder": base / "transformer",
        "diffusers-shards": _saved_in_shards(original, root / "diffusers-sharded"),
        "fp8": replicas.write_fp8_scaled(sd, root / "wan_i2v_fp8_e4m3fn_scaled_KJ.safetensors"),
        "gguf": replicas.write_gguf(sd, root / "wan-i2v-Q8_0.gguf", quantise_from=0),
    }
    return {"root": root, "base": base, "original": original, "paths": paths, "v32": v32}


def _saved_in_shards(model, folder):
    model.save_pretrained(folder, max_shard_size="30KB")      # the tiny transformer is ~97 KB
    assert len(list(folder.glob("*.safetensors"))) >= 3 and list(folder.glob("*.index.json"))
    return folder


def forward(model) -> torch.Tensor:
    """The transformer's output on a fixed input, run on a deep copy (fresh, equally aligned memory)."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model(hidden_states=torch.randn(1, 12, 2, 4, 4, generator=gen), timestep=torch.tensor([500]),
                     encoder_hidden_states=torch.randn(1, tiny.TEXT_TOKENS, 16, generator=gen),
                     encoder_hidden_states_image=torch.randn(1, 5, 16, generator=gen), return_dict=False)[0]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(("case", "kind"), [
    ("wan-folder", "wan-folder"), ("v3.2-low", "wan-folder"), ("wan-file", "wan-file"),
    ("diffusers-file", "diffusers-file"), ("diffusers-folder", "diffusers-folder"),
    ("diffusers-shards", "diffusers-folder"),
    ("fp8", "fp8-scaled-file"), ("gguf", "gguf-file")])
def test_each_layout_is_told_from_its_files_not_its_name(made, tmp_path, case, kind):
    source = made["paths"][case]
    disguised = tmp_path / "model.safetensors"     # every layout under one misleading name
    (shutil.copytree if source.is_dir() else shutil.copy)(source, disguised)
    layout = detect(disguised)
    assert layout.kind == kind
    assert layout.parameters == sum(t.numel() for t in made["original"].state_dict().values())


def test_a_v32_folder_without_config_json_says_it_uses_the_base_config(made):
    assert detect(made["paths"]["v3.2-low"]).notes == [
        "low_noise_model/ has no config.json (as some AniSora V3.2 downloads): using the base's transformer config"]
    assert detect(made["paths"]["v3.2-high"]).config is not None and not detect(made["paths"]["v3.2-high"]).notes


def test_wan_config_json_is_read_in_diffusers_terms(made):
    config = detect(made["paths"]["wan-folder"]).config
    original = made["original"].config
    for key in ("num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "ffn_dim", "freq_dim",
                "num_layers", "image_dim", "added_kv_proj_dim", "text_dim", "qk_norm", "cross_attn_norm"):
        assert config[key] == original[key], key


def test_the_v32_root_folder_points_at_its_expert_subfolders(made):
    with pytest.raises(UnknownLayout, match=r"high_noise_model/, low_noise_model/: point the option at one"):
        detect(made["v32"])


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    junk = tmp_path / "model.safetensors"
    junk.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(UnknownLayout, match="neither a GGUF file nor a safetensors file"):
        detect(junk)


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("case", ["wan-folder", "v3.2-high", "v3.2-low", "wan-file", "diffusers-file",
                                  "diffusers-folder", "diffusers-shards"])
def test_a_layout_with_the_same_bytes_loads_the_same_transformer_exactly(made, case):
    loaded = load_transformer(made["paths"][case], made["base"], torch.float32)
    expected = made["original"].state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.equal(forward(loaded), forward(made["original"]))


def test_casting_happens_while_loading_and_keeps_the_fp32_modules_diffusers_keeps(made):
    loaded = load_transformer(made["paths"]["wan-folder"], made["base"], torch.bfloat16)
    stock = WanTransformer3DModel.from_pretrained(made["base"], subfolder="transformer", torch_dtype=torch.bfloat16)
    for name, tensor in stock.state_dict().items():   # the same cast of the same bytes: equal exactly
        got = loaded.state_dict()[name]
        assert got.dtype == tensor.dtype and torch.equal(got, tensor), name
    assert {t.dtype for t in loaded.state_dict().values()} == {torch.bfloat16, torch.float32}


def fp8_bound(original: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Round-to-nearest into float8 e4m3 (3 mantissa bits) errs by at most half a step: 2^-4 of the value
    for normal numbers, half the subnormal step (2^-10 of the scale) below them; plus float32 slack."""
    return torch.maximum(original.abs() * 2.0 ** -(E4M3_MANTISSA_BITS + 1), scale * 2.0 ** -10) * 1.0001 + 1e-12


def q8_0_bound(original: torch.Tensor) -> torch.Tensor:
    """Q8_0 stores blocks of 32 values as round(x / d) with d = block absmax / 127 kept in float16: each
    value errs by at most d / 2, plus |q| <= 127 times the float16 rounding of d (2^-11 d)."""
    blocks = original.reshape(-1, 32)
    d = blocks.abs().amax(dim=1, keepdim=True) / 127
    return (d * (0.5 + 127 * 2.0 ** -11) * 1.0001 + 1e-12).expand_as(blocks).reshape(original.shape)


def fp8_expectations(made) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{diffusers name: (stored float8 times its scale, the rounding bound)} of every scaled weight."""
    stored = replicas.fp8_scaled(made["original"].state_dict())
    out = {}
    for name, tensor in made["original"].state_dict().items():
        wan = next(iter(replicas.naming.to_wan([name])))
        scale = stored.get(wan.removesuffix(".weight") + ".scale_weight")
        if scale is not None:
            out[name] = (stored[wan].float() * scale, fp8_bound(tensor, scale))
    return out


def q8_0_expectations(made) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{diffusers name: (the Q8_0 blocks dequantised, the rounding bound)} of every quantised tensor."""
    import gguf

    layout = detect(made["paths"]["gguf"])
    out = {}
    for name, tensor in made["original"].state_dict().items():
        if layout.tensors[name].dtype == "Q8_0":
            q = gguf.quants.quantize(tensor.numpy(), gguf.GGMLQuantizationType.Q8_0)
            back = torch.from_numpy(gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)).reshape(tensor.shape)
            out[name] = (back, q8_0_bound(tensor))
    return out


EXPECTATIONS = {"fp8": fp8_expectations, "gguf": q8_0_expectations}


@pytest.mark.parametrize(("case", "at_least"), [("fp8", 20), ("gguf", 3)])   # the tiny model has few 32-wide rows
def test_quantised_weights_are_their_stored_values_exactly_and_within_the_formats_rounding(made, case, at_least):
    """The loader must rebuild exactly what the file stores (float8 x scale, Q8_0 blocks x d: the same
    bytes through the same arithmetic); that is within the format's rounding of the original weights.
    Tensors the file keeps in float32 come back bit for bit."""
    loaded = load_transformer(made["paths"][case], made["base"], torch.float32).state_dict()
    expected = EXPECTATIONS[case](made)
    assert len(expected) >= at_least
    for name, tensor in made["original"].state_dict().items():
        if name not in expected:
            assert torch.equal(loaded[name], tensor), name
            continue
        stored, bound = expected[name]
        assert torch.equal(loaded[name], stored), name
        assert ((loaded[name] - tensor).abs() <= bound).all(), name


@pytest.mark.parametrize("case", ["fp8", "gguf"])
def test_the_rounding_bound_catches_a_zeroed_or_transposed_weight(made, case):
    loaded = load_transformer(made["paths"][case], made["base"], torch.float32).state_dict()
    name = next(n for n, (t, _) in EXPECTATIONS[case](made).items() if t.dim() == 2)
    original = made["original"].state_dict()[name]
    bound = EXPECTATIONS[case](made)[name][1]
    for broken in (torch.zeros_like(loaded[name]), loaded[name].flip(0), loaded[name].roll(1, dims=-1)):
        assert not ((broken - original).abs() <= bound).all()


# Output check on top of the weights: each weight errs by under 2^-4 of itself (FP8) or 0.4% of its
# block's largest value (Q8_0), independently, so the output's relative error is of that order: measured
# 0.018 and 0.0007 on this model; the bounds are ~3x that. (An output check alone could not tell FP8
# rounding from one damaged tensor here: the residual stream carries most of a 2-layer random model's
# output. The weight bounds above do that.)
OUTPUT_TOLERANCE = {"fp8": 0.05, "gguf": 0.002}


@pytest.mark.parametrize("case", ["fp8", "gguf"])
def test_quantised_layouts_give_the_transformer_output_within_tolerance(made, case):
    loaded = load_transformer(made["paths"][case], made["base"], torch.float32)
    error = relative_error(forward(loaded), forward(made["original"]))
    assert 0 < error < OUTPUT_TOLERANCE[case]


# ---------------------------------------------------------------- refusals


def _damaged_file(made, tmp_path, damage: str):
    from safetensors.torch import save_file

    wan = replicas.wan_state_dict(made["original"].state_dict())
    if damage == "missing":
        del wan["blocks.1.cross_attn.k.weight"]
    elif damage == "wrong-shape":
        wan["blocks.1.cross_attn.k.weight"] = torch.zeros(24, 23)
    else:
        wan["blocks.1.cross_attn.extra.weight"] = torch.zeros(24, 24)
    save_file(wan, tmp_path / "damaged.safetensors")
    return tmp_path / "damaged.safetensors"


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "missing 1 tensors of the transformer: blocks.1.attn2.to_k.weight"),
    ("wrong-shape", r"tensor blocks.1.cross_attn.k.weight has shape \[24, 23\], the transformer expects \[24, 24\]"),
    ("extra", "1 tensors the transformer has no place for: blocks.1.cross_attn.extra.weight")])
def test_a_damaged_checkpoint_is_refused_naming_the_tensor(made, tmp_path, damage, message):
    with pytest.raises(InputError, match=message):
        load_transformer(_damaged_file(made, tmp_path, damage), made["base"], torch.float32)


def test_a_missing_shard_is_refused_naming_it(made, tmp_path):
    folder = shutil.copytree(made["paths"]["wan-folder"], tmp_path / "V3.1")
    (folder / "diffusion_pytorch_model-00002-of-00003.safetensors").unlink()
    with pytest.raises(InputError, match="shard diffusion_pytorch_model-00002-of-00003.safetensors is missing") as e:
        load_transformer(folder, made["base"], torch.float32)
    assert not any("missing" in p.message and "tensors of the transformer" in p.message for p in e.value.problems)


def test_a_config_that_disagrees_with_the_base_is_refused_naming_the_fields(made, tmp_path):
    folder = shutil.copytree(made["paths"]["wan-folder"], tmp_path / "V3.1")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_heads": 2}))
    with pytest.raises(InputError, match=r"num_attention_heads 2 \(base: 4\); attention_head_dim 12 \(base: 6\)"):
        load_transformer(folder, made["base"], torch.float32)


# ---------------------------------------------------------------- rendering

W = H = 64


def _preset(made, monkeypatch, name: str, **options):
    folder = made["root"] / "presets"
    folder.mkdir(exist_ok=True)
    text = (load_preset("wan-tiny").model_dump_json())
    data = json.loads(text)
    data.update(name=name, options={"base": str(made["base"]), "dtype": "float32", **options})
    (folder / f"{name}.yaml").write_text(json.dumps(data))     # JSON is YAML
    monkeypatch.setenv("SAKUGA_MODELS", str(folder))
    return load_preset(name)


@pytest.fixture(scope="module")
def segment(made):
    folder = made["root"] / "sb"
    folder.mkdir()
    Image.new("RGB", (80, 60), (220, 30, 30)).save(folder / "red.png")
    plan = build_plan(load(make_storyboard(folder, f"""\
        sakuga: 1
        title: Layouts
        model: wan-tiny
        output: {{width: {W}, height: {H}, fps: 16}}
        defaults: {{steps: 2}}
        scenes:
          - id: s
            shots:
              - {{id: a, frames: 5, prompt: a red door, start: red.png}}
        """)))
    seg = plan.segment("a.0")
    return seg, {c.image: np.asarray(Image.open(plan.assets[c.image.ref]).convert("RGB")) for c in seg.conditions}


@pytest.fixture(scope="module")
def plain_frames(made, segment):
    from storyboard.presets import Preset
    preset = Preset.model_validate({**load_preset("wan-tiny").model_dump(), "name": "plain",
                                    "options": {"base": str(made["base"]), "dtype": "float32"}})
    return WanEngine(preset).render(*segment)


@pytest.mark.parametrize(("case", "options"), [
    ("anisora-v3-folder", {"transformer": "wan-folder"}),
    ("anisora-v3.2-pair", {"transformer": "v3.2-high", "transformer_2": "v3.2-low", "boundary_ratio": 0.9})])
def test_a_replica_renders_the_same_frames_as_the_plain_tiny_model(made, segment, plain_frames, monkeypatch,
                                                                  case, options):
    options = {k: str(made["paths"][v]) if k.startswith("transformer") else v for k, v in options.items()}
    rendered = WanEngine(_preset(made, monkeypatch, case, **options)).render(*segment)
    assert np.array_equal(rendered.frames, plain_frames.frames)
    assert np.array_equal(rendered.latents, plain_frames.latents)
