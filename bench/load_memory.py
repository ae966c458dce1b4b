"""Host memory of loading a Wan-format FP32 transformer folder to bfloat16, and the cost of `models check`.

    python bench/load_memory.py [--layers 30] [--dim 768] [--shards 4] [--out bench/results/load_memory.json]

1. Builds a mid-size Wan-format folder (Wan's config.json, FP32 shards, index) in a temporary folder,
   then loads it to bfloat16 in a fresh subprocess two ways and reports each one's peak resident set
   (the kernel's VmHWM, reset just before loading) above its resident set then (imports, an empty model):
   - sakuga's loader (`engine.wan.weights.load_transformer`: meta model, tensor by tensor, cast as read);
   - the naive way, for contrast: every shard read whole in FP32, then converted and loaded.
2. Times `models check` (headers and the meta device only) on the tiny transformer and on a sparse
   full-size Wan2.1-I2V-14B folder (headers claiming 65 GB of FP32, no data on disk), with peak RSS.
(getrusage's ru_maxrss is not used: a child started from a big parent inherits the parent's figure.)
Figures are printed and written to a JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
import torch
from pathlib import Path
how, folder, base = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from engine.wan.architecture import base_config, empty_model
from engine.wan.layouts import detect
from engine.wan.weights import load_transformer
empty_model(detect(folder).config)         # imports and one empty model: the baseline
def status(key):                           # kB lines of /proc/self/status: VmRSS now, VmHWM its peak
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")     # the peak counts from here
started = time.perf_counter()
if how == "sakuga":
    model = load_transformer(folder, base, torch.bfloat16)
else:
    from safetensors.torch import load_file
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    state = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(shard))
    state = convert_wan_transformer_to_diffusers(state)
    model = empty_model(detect(folder).config)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in state.items()}, assign=True)
seconds = time.perf_counter() - started
weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
print(json.dumps({"baseline_rss": before, "peak_rss": status("VmHWM"), "seconds": seconds, "loaded_bytes": weights}))
"""

CHECK = r"""
import json, sys, time
from engine.wan import model_check
from storyboard.presets import Preset, load_preset
base, transformer = sys.argv[1], sys.argv[2]
preset = load_preset("anisora-v3")
preset = Preset.model_validate({**preset.model_dump(), "options": {**preset.options, "base": base,
                                                                     "transformer": transformer}})
model_check.check(preset)                  # imports and a first meta model
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
started = time.perf_counter()
report = model_check.check(preset)
seconds = time.perf_counter() - started
params = sum(c.parameters for c in report.components if c.name == "transformer")
print(json.dumps({"seconds": seconds, "baseline_rss": before, "peak_rss": status("VmHWM"),
                  "parameters": params, "ok": report.ok}))
"""


def child(script: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mid_size(tmp: Path, layers: int, dim: int, shards: int) -> tuple[Path, Path, int]:
    """A random-weight FP32 Wan-format folder of `layers` blocks of width `dim`, and a base folder whose
    transformer/config.json is its architecture."""
    import torch
    from diffusers import WanTransformer3DModel

    from engine.wan.layouts import replicas

    heads = dim // 128
    config = dict(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=128, in_channels=36,
                  out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=dim * 3, num_layers=layers,
                  cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280,
                  added_kv_proj_dim=dim, rope_max_seq_len=1024)
    torch.manual_seed(0)
    model = WanTransformer3DModel(**config)
    folder = replicas.write_wan_folder(model.state_dict(), dict(model.config), tmp / "wan", shards=shards)
    base = tmp / "base" / "transformer"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"_class_name": "WanTransformer3DModel", **config}))
    return folder, base.parent, sum(t.numel() for t in model.state_dict().values())


def sparse_14b(tmp: Path) -> tuple[Path, Path]:
    from engine.wan.layouts import replicas

    config = json.loads((ROOT / "configs/architectures/wan2.1-i2v-14b.transformer.json").read_text())
    base = tmp / "base14" / "transformer"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps(config))
    (base.parent / "model_index.json").write_text(json.dumps({"transformer": ["diffusers", "WanTransformer3DModel"]}))
    return replicas.write_sparse_wan_folder(config, tmp / "wan14", shards=7), base.parent


def tiny_folder(tmp: Path) -> tuple[Path, Path]:
    from diffusers import WanTransformer3DModel

    from engine.wan import tiny
    from engine.wan.layouts import replicas

    base = tiny.build(tmp / "tiny")
    model = WanTransformer3DModel.from_pretrained(base, subfolder="transformer")
    return replicas.write_wan_folder(model.state_dict(), dict(model.config), tmp / "tiny-wan", shards=3), base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        folder, base, params = mid_size(tmp, args.layers, args.dim, args.shards)
        fp32, bf16 = params * 4, params * 2
        print(f"Wan-format folder: {args.layers} layers of {args.dim}, {params / 1e6:.0f}M parameters, "
              f"{args.shards} shards, {fp32 / 2**20:.0f} MiB FP32, {bf16 / 2**20:.0f} MiB at bf16")
        loads = {how: child(CHILD, how, folder, base) for how in ("sakuga", "naive")}
        for how, r in loads.items():
            extra = r["peak_rss"] - r["baseline_rss"]
            r.update(extra_rss=extra, extra_over_bf16=extra / bf16)
            print(f"  {how:<7} load to bf16: peak RSS +{extra / 2**20:.0f} MiB over the process before loading "
                  f"({extra / bf16:.2f}x the bf16 copy, {extra / fp32:.2f}x the FP32 files), {r['seconds']:.1f} s")
        checks = {}
        for label, (t_folder, t_base) in (("tiny", tiny_folder(tmp)), ("wan2.1-i2v-14b-sparse", sparse_14b(tmp))):
            checks[label] = child(CHECK, t_base, t_folder)
            c = checks[label]
            print(f"  models check {label:<22} {c['parameters'] / 1e9:.5f}B params: {c['seconds'] * 1e3:.0f} ms, "
                  f"peak RSS {c['peak_rss'] / 2**20:.0f} MiB (+{(c['peak_rss'] - c['baseline_rss']) / 2**20:.0f} MiB "
                  f"while checking), would load: {c['ok']}")
    result = {"machine": platform.processor() or platform.machine(), "layers": args.layers, "dim": args.dim,
              "shards": args.shards, "parameters": params, "fp32_bytes": fp32, "bf16_bytes": bf16,
              "load": loads, "check": checks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
