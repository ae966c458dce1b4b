"""`bench/gpu.py --smoke`: the GPU benchmark's whole path on a tiny model on the CPU, in a subprocess (as the
lead runs it on a GPU machine: its own process, torch and diffusers only). Checks the JSON's shape, not
figures (speed lives in bench/, not in tests)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu.py"
LABELS = {"480p", "720p", "1080p/1", "1080p/2", "1080p/4", "1080p/8"}
OPTIONS = {"native", "_native_cudnn", "flash", "_flash_3", "sage", "fp8 layerwise", "fp8 torchao"}


def test_the_smoke_run_writes_every_part_of_the_report(tmp_path):
    out = tmp_path / "gpu.json"
    # a larger budget than the smoke's 50 s default: the CI machine's two cores are shared
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--budget", "150", "--out", str(out)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "smoke" and report["context_tokens"] == 512 + 257
    native = [r for r in report["forward"] if r["option"] == "native"]
    assert {r["label"] for r in native} == LABELS
    tokens = {r["label"]: r["tokens"] for r in native}
    # a 1080p rank's share halves with each doubling of the gang, as 171,360 / k does at full size
    assert [tokens[f"1080p/{k}"] * k for k in (1, 2, 4, 8)] == [tokens["1080p/1"]] * 4
    for row in report["forward"]:
        assert row["option"] in OPTIONS and row["label"] in LABELS and row["s_per_step"] > 0
    assert {d["tiled"] for d in report["vae_decode"]} <= {False, True}
    for row in report["cache"]:
        assert 1 <= row["computed_steps"] <= row["steps"] == 8 and row["option"] == "cache=fbc:0.05"
    assert all(set(s) == {"what", "why"} for s in report["skipped"])
    cost = report["cost"]
    assert cost["linear_s_per_ktoken"] >= 0 and cost["attention_s_per_ktoken2"] >= 0
    assert cost["linear_s_per_ktoken"] + cost["attention_s_per_ktoken2"] > 0
    assert all("=" in name and factor > 0 for name, factor in cost["speed"].items())
    assert "cost:" in result.stdout and "linear_s_per_ktoken:" in result.stdout


def costfit():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import costfit
    finally:
        sys.path.pop(0)
    return costfit


def test_the_refit_recovers_the_linear_and_attention_terms_and_the_factors():
    a, b = 0.03, 0.0015                      # seconds per ktoken and per ktoken^2
    forward = [{"option": option, "label": label, "tokens": n, "s_per_step": f * (a * n / 1e3 + b * (n / 1e3) ** 2)}
               for option, f in (("native", 1.0), ("sage", 0.7), ("fp8 layerwise", 1.1))
               for label, n in (("1080p/8", 21_420), ("480p", 32_760), ("720p", 75_600), ("1080p/1", 171_360))]
    cache = [{"label": "720p", "steps": 8, "computed_steps": 5, "s_per_step": 0.6 * forward[2]["s_per_step"]},
             {"label": "480p", "steps": 8, "computed_steps": 8, "s_per_step": 9.0}]
    decodes = [{"tiled": False, "frames": 81, "width": 1280, "height": 720, "seconds": 20.0},
               {"tiled": True, "frames": 81, "width": 1280, "height": 720, "seconds": 29.859}]
    cost = costfit().refit(forward, cache, decodes, "H200, bf16")
    # exact data, so least squares returns the terms it was made from (up to float rounding)
    assert abs(cost["linear_s_per_ktoken"] - a) < 1e-6 and abs(cost["attention_s_per_ktoken2"] - b) < 1e-8
    assert cost["decode_s_per_mpixel_frame"] == round(29.859 / (81 * 1280 * 720 / 1e6), 5)
    assert cost["speed"] == {"attention=sage": 0.7, "fp8=layerwise": 1.1, "cache=fbc": 0.6}
    # a term that would fit negative is dropped, not written as a negative cost
    assert costfit().fit_forward([{"tokens": 1000, "s_per_step": 1.0}, {"tokens": 2000, "s_per_step": 1.5}])[1] == 0.0


def test_the_full_size_run_measures_the_real_architecture_and_gang_shares():
    """Without a GPU: the sizes the GPU run uses are the ones the issue names."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu
    finally:
        sys.path.pop(0)
    sizes = {size[0]: gpu.tokens(size) for size in gpu.SIZES}
    assert sizes == {"480p": 32_760, "720p": 75_600, "1080p/1": 171_360, "1080p/2": 85_680,
                     "1080p/4": 42_840, "1080p/8": 21_420}
    config = json.loads(gpu.CONFIG.read_text())
    assert config["num_layers"] == 40 and config["num_attention_heads"] * config["attention_head_dim"] == 5120


def test_the_script_imports_only_torch_diffusers_and_the_standard_library():
    """The lead carries diffusers' wheels to the GPU machine; nothing of sakuga (Ray, PyAV...) goes with them."""
    tree = ast.parse(SCRIPT.read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    # costfit: bench/costfit.py beside it, plain Python
    assert roots - set(sys.stdlib_module_names) <= {"torch", "diffusers", "torchao", "costfit"}
    fit = ast.parse((SCRIPT.parent / "costfit.py").read_text())
    imports = [n for n in ast.walk(fit) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]
