"""GPU benchmark: the real-size Wan2.1-I2V-14B transformer and Wan VAE with random weights, per speed option.

    python bench/gpu.py                 # one CUDA GPU (H100/H200): under 10 minutes, no download
    python bench/gpu.py --smoke         # a tiny model on the CPU, under a minute (CI: the JSON's shape)
    python bench/gpu.py --budget 400 --out bench/results/gpu.json

Needs torch and diffusers only (copy diffusers' wheel and its pure-python dependencies to a machine that
has torch); nothing from sakuga is imported, the architecture is read from
configs/architectures/wan2.1-i2v-14b.transformer.json. Random bf16 weights are drawn on the GPU.

Measured, each with the peak of torch.cuda.max_memory_allocated:
- seconds per step (one transformer forward, guidance off) at 480p (832x480x81: 32,760 tokens), 720p
  (1280x720x81: 75,600) and at the per-rank token counts of a 1080p gang (1920x1088x81: 171,360 / k for
  k = 1, 2, 4, 8), with the I2V context (512 text + 257 image tokens), for native attention, every other
  attention backend this machine has (cuDNN, flash, sage), and FP8 weights (layerwise casting; torchao too
  when installed); run on one GPU, a rank's share is its token count (the quadratic fit below prices a
  gang as the cost model does: attention over the whole sequence, split k ways);
- first-block cache (threshold 0.05) over a short 8-step Euler loop: steps computed and seconds per step;
- VAE decode of 81 frames at 1280x720, tiled and untiled (AutoencoderKLWan's defaults are Wan2.1's VAE).

Every part is budgeted from what was measured before it; what would not fit in `--budget` seconds is
skipped and listed under `skipped` in the JSON. The anisora-v3 cost model is refitted from the native
figures (least squares of seconds per forward = linear x ktok + attention x ktok^2; decode per
megapixel-frame from the tiled decode, which sakuga uses from a 720 px short side) with speed factors
(option / native at 720p); the new `cost:` block is printed and written to the JSON, never to the preset.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
from costfit import cost_yaml, refit  # bench/costfit.py, beside this script: plain Python

STARTED = time.perf_counter()   # the budget counts from here (importing torch is before it)
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "architectures" / "wan2.1-i2v-14b.transformer.json"
TEXT_TOKENS, IMAGE_TOKENS = 512, 257
GANG = (1, 2, 4, 8)
# (label, latent frames, latent rows, latent cols): tokens = frames x rows/2 x cols/2 (patch 1x2x2).
# A 1080p rank's share of 171,360 tokens is laid out as a smaller grid of the same 21 frames.
RANK_GRID = {1: (136, 240), 2: (68, 240), 4: (34, 240), 8: (34, 120)}
SIZES = [("480p", 21, 60, 104), ("720p", 21, 90, 160)] + [(f"1080p/{k}", 21, *RANK_GRID[k]) for k in GANG]
SMOKE_CONFIG = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
                    out_channels=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, cross_attn_norm=True,
                    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=16, added_kv_proj_dim=24,
                    rope_max_seq_len=1024)
SMOKE_SIZES = [("480p", 3, 8, 12), ("720p", 3, 12, 16)] + [(f"1080p/{k}", 3, 16 // k if k < 8 else 2, 16)
                                                           for k in GANG]


def tokens(size) -> int:
    _, f, h, w = size
    return f * (h // 2) * (w // 2)


class Budget:
    """Seconds left before `--budget` runs out, and what was skipped for lack of them."""

    def __init__(self, seconds: float):
        self.deadline = STARTED + seconds
        self.skipped: list[dict] = []
        self.reserved = 0.0       # kept for a part still to come

    def fits(self, what: str, estimate_s: float) -> bool:
        left = self.deadline - time.perf_counter() - self.reserved
        if estimate_s <= left:
            return True
        self.skip(what, f"estimated {estimate_s:.0f} s, {max(left, 0):.0f} s of the budget left")
        return False

    def skip(self, what: str, why: str) -> None:
        self.skipped.append({"what": what, "why": why})
        print(f"skipped {what}: {why}", flush=True)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gb(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


# -- the transformer ---------------------------------------------------------------------------------

def build_transformer(config: dict, device, dtype):
    """The transformer with random weights: built on the meta device, given memory on `device` in
    `dtype` (the modules diffusers keeps in float32 stay float32), drawn there with a fan-in scale."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(config)
    for name, p in model.named_parameters():     # as from_pretrained(torch_dtype=...) keeps them
        keep = any(k in name for k in model._keep_in_fp32_modules)
        p.data = p.data.to(torch.float32 if keep else dtype)
    model.to_empty(device=device)
    gen = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=gen)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    c = model.config   # rope's buffers are computed, not loaded: build them again for real
    model.rope = WanRotaryPosEmbed(c.attention_head_dim, c.patch_size, c.rope_max_seq_len).to(device)
    return model.eval().requires_grad_(False)


def inputs(model, size, device, dtype) -> dict:
    _, f, h, w = size
    c = model.config
    gen = torch.Generator(device).manual_seed(1)
    return dict(hidden_states=torch.randn(1, c.in_channels, f, h, w, device=device, dtype=dtype, generator=gen),
                timestep=torch.tensor([700.0], device=device),
                encoder_hidden_states=torch.randn(1, TEXT_TOKENS, c.text_dim, device=device, dtype=dtype,
                                                  generator=gen),
                encoder_hidden_states_image=torch.randn(1, IMAGE_TOKENS, c.image_dim, device=device, dtype=dtype,
                                                        generator=gen),
                return_dict=False)


@torch.no_grad()
def forward_s(model, size, device, dtype, repeats: int = 1) -> float:
    """Seconds of one forward at `size` (the fastest of `repeats`)."""
    args = inputs(model, size, device, dtype)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        began = time.perf_counter()
        model(**args)
        sync(device)
        best = min(best, time.perf_counter() - began)
    return best


def estimate_s(measured: list[dict], n: int) -> float:
    """A forward at `n` tokens from figures measured so far: the one at `n`, else the largest below it
    scaled by the square of the token ratio (attention's growth: an upper bound)."""
    same = [r["s_per_step"] for r in measured if r["tokens"] == n]
    if same:
        return same[0]
    below = [r for r in measured if r["tokens"] < n]
    if not below:
        return 0.0
    last = max(below, key=lambda r: r["tokens"])
    return last["s_per_step"] * (n / last["tokens"]) ** 2


def sweep(model, option: str, sizes, device, dtype, budget: Budget, native: list[dict], factor: float) -> list[dict]:
    """Seconds per step of `option` at every size that fits the budget (smallest first, warmed up once;
    a forward under 2 s on a GPU is timed three times, the fastest kept)."""
    rows: list[dict] = []
    order = sorted(sizes, key=tokens)
    forward_s(model, order[0], device, dtype)      # warm-up: kernels chosen, workspaces made
    for size in order:
        n = tokens(size)
        guess = factor * (estimate_s(native, n) if native else estimate_s(rows, n))
        if not budget.fits(f"{option} at {size[0]} ({n} tokens)", guess):
            continue
        reset_peak(device)
        try:
            seconds = forward_s(model, size, device, dtype, repeats=3 if guess < 2 and device.type == "cuda" else 1)
        except torch.OutOfMemoryError:
            budget.skip(f"{option} at {size[0]}", "out of GPU memory")
            torch.cuda.empty_cache()
            continue
        row = {"option": option, "label": size[0], "tokens": n, "latent": list(size[1:]),
               "s_per_step": seconds, "peak_memory_gb": peak_gb(device)}
        rows.append(row)
        print(f"{option:>16} {size[0]:>9} {n:>7} tokens: {seconds:8.3f} s/step"
              + (f", peak {row['peak_memory_gb']:.1f} GB" if row["peak_memory_gb"] else ""), flush=True)
    return rows


def attention_options(device) -> list[str]:
    """The attention backends beside native that diffusers can run here."""
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    if device.type != "cuda":
        return []
    usable = []
    for name in ("_native_cudnn", "flash", "_flash_3", "sage"):
        try:
            _check_attention_backend_requirements(AttentionBackendName(name))
            usable.append(name)
        except (RuntimeError, ImportError):
            pass
    return usable


def set_attention(model, name: str) -> None:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    default = _AttentionBackendRegistry.get_active_backend()[0]
    model.set_attention_backend(name)
    _AttentionBackendRegistry.set_active_backend(default)


@torch.no_grad()
def cached_loop(model, size, device, dtype, threshold: float, steps: int = 8) -> dict:
    """An 8-step Euler loop under diffusers' FirstBlockCache: seconds per step and steps computed
    (counted at the last block's feed-forward, which a skipped step never reaches)."""
    from diffusers.hooks import FirstBlockCacheConfig

    computed = []
    hook = model.blocks[-1].ffn.net[0].proj.register_forward_pre_hook(lambda m, a: computed.append(1))
    model.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    args = inputs(model, size, device, dtype)
    x = args.pop("hidden_states")
    latents, condition = x[:, :16].float(), x[:, 16:]
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    sigmas = 5.0 * sigmas / (1 + 4.0 * sigmas)          # Wan's flow shift 5
    try:
        sync(device)
        began = time.perf_counter()
        for i in range(steps):
            with model.cache_context("cond"):
                v = model(hidden_states=torch.cat([latents.to(dtype), condition], dim=1),
                          **{**args, "timestep": torch.tensor([1000.0 * sigmas[i]], device=device)})[0]
            latents = latents + (sigmas[i + 1] - sigmas[i]) * v.float()
        sync(device)
        seconds = time.perf_counter() - began
    finally:
        hook.remove()
        model.disable_cache()
    return {"option": f"cache=fbc:{threshold:g}", "label": size[0], "tokens": tokens(size), "steps": steps,
            "computed_steps": len(computed), "s_per_step": seconds / steps}


# -- the VAE -----------------------------------------------------------------------------------------

@torch.no_grad()
def vae_decodes(smoke: bool, device, dtype, budget: Budget) -> list[dict]:
    """Decode of 81 frames at 1280x720 (smoke: 5 frames at 32x32 on a tiny VAE), untiled then tiled."""
    from diffusers import AutoencoderKLWan

    with torch.device(device):
        vae = (AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True]) if smoke else AutoencoderKLWan())
    vae = vae.to(dtype).eval()
    frames, width, height = (5, 32, 32) if smoke else (81, 1280, 720)
    z = torch.randn(1, vae.config.z_dim, (frames - 1) // 4 + 1, height // 8, width // 8, device=device, dtype=dtype)
    rows, guess = [], 5.0 if smoke else 120.0
    for tiled in (False, True):
        what = f"VAE decode {'tiled' if tiled else 'untiled'} {frames}x{width}x{height}"
        if not budget.fits(what, guess):
            continue
        vae.enable_tiling() if tiled else vae.disable_tiling()
        reset_peak(device)
        try:
            sync(device)
            began = time.perf_counter()
            out = vae.decode(z, return_dict=False)[0]
            sync(device)
        except torch.OutOfMemoryError:
            budget.skip(what, "out of GPU memory")
            torch.cuda.empty_cache()
            continue
        seconds = time.perf_counter() - began
        guess = 1.5 * seconds
        rows.append({"tiled": tiled, "frames": int(out.shape[2]), "width": width, "height": height,
                     "seconds": seconds, "peak_memory_gb": peak_gb(device)})
        print(f"{what}: {seconds:.2f} s" + (f", peak {rows[-1]['peak_memory_gb']:.1f} GB" if device.type == "cuda"
                                           else ""), flush=True)
        del out
    del vae
    return rows


# -- the run -----------------------------------------------------------------------------------------

def run(smoke: bool, budget: Budget) -> dict:  # long: the bench's parts in their budgeted order, one story
    device = torch.device("cpu" if smoke else "cuda")
    dtype = torch.float32 if smoke else torch.bfloat16
    config = SMOKE_CONFIG if smoke else {k: v for k, v in json.loads(CONFIG.read_text()).items()
                                         if not k.startswith("_")}
    sizes = SMOKE_SIZES if smoke else SIZES
    model = build_transformer(config, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    held = f", {torch.cuda.memory_allocated() / 1e9:.1f} GB" if device.type == "cuda" else ""
    print(f"transformer: {params / 1e6:,.1f} M parameters{held} on {device}, built at "
          f"{time.perf_counter() - STARTED:.0f} s", flush=True)

    # 1. native attention at every size: the cost model's points, and every later estimate's base
    forward = sweep(model, "native", sizes, device, dtype, budget, [], 1.0)
    native = list(forward)
    fp8_guess = 1.5 * sum(r["s_per_step"] for r in native) + 5
    budget.reserved = fp8_guess            # FP8 casting is one-way, so it runs last: keep its time

    # 2. VAE decode (the cost model's decode figure)
    decodes = vae_decodes(smoke, device, dtype, budget)

    # 3. the other attention backends this machine has
    for name in attention_options(device):
        set_attention(model, name)
        try:
            forward += sweep(model, name, sizes, device, dtype, budget, native, 1.3)
        except (RuntimeError, ValueError) as e:
            budget.skip(f"attention {name}", str(e).splitlines()[0])
    set_attention(model, "native")

    # 4. first-block cache over a short loop, at 480p then 720p
    cache = []
    for size in sizes[:2]:
        if budget.fits(f"cache=fbc:0.05 8 steps at {size[0]}", 8.5 * estimate_s(native, tokens(size))):
            cache.append(cached_loop(model, size, device, dtype, 0.05))
            print(f"{cache[-1]['option']:>16} {size[0]:>9}: {cache[-1]['computed_steps']}/8 steps computed, "
                  f"{cache[-1]['s_per_step']:.3f} s/step", flush=True)

    # 5. FP8 weights: layerwise casting, then torchao's FP8 matmuls where it can run
    budget.reserved = 0.0
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    forward += sweep(model, "fp8 layerwise", sizes, device, dtype, budget, native, 1.5)
    del model
    gc.collect()
    why = torchao_unavailable(device)
    if why:
        budget.skip("fp8 torchao", why)
    elif budget.fits("fp8 torchao", 30 + fp8_guess):
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

        torch.cuda.empty_cache()
        model = build_transformer(config, device, dtype)
        quantize_(model, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                  filter_fn=lambda m, name: isinstance(m, torch.nn.Linear) and name.startswith("blocks."))
        forward += sweep(model, "fp8 torchao", sizes, device, dtype, budget, native, 1.5)

    hardware = "CPU (smoke: tiny model)" if smoke else f"{torch.cuda.get_device_name(0)}, bf16"
    cost = refit(forward, cache, decodes, hardware)
    return {"mode": "smoke" if smoke else "gpu", "device": hardware, "torch": torch.__version__,
            "diffusers": _diffusers_version(), "python": platform.python_version(), "dtype": str(dtype),
            "transformer": {"config": config, "parameters": params}, "context_tokens": TEXT_TOKENS + IMAGE_TOKENS,
            "forward": forward, "cache": cache, "vae_decode": decodes, "skipped": budget.skipped, "cost": cost}


def torchao_unavailable(device) -> str | None:
    try:
        import torchao  # noqa: F401
    except ImportError:
        return "torchao is not installed"
    if device.type != "cuda" or torch.cuda.get_device_capability() < (8, 9):
        return "FP8 matmuls need a CUDA GPU of compute capability 8.9 or later"
    return None


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def main() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()      # no "experimental feature" notice per backend switch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model on the CPU (a minute at most)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole run, counted from the start (default 540; smoke 50)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON to write (default bench/results/gpu.json; smoke bench/results/gpu-smoke.json)")
    args = ap.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA GPU (or --smoke for the CPU)")
    budget = Budget(args.budget or (50.0 if args.smoke else 540.0))
    report = run(args.smoke, budget)
    report["elapsed_s"] = round(time.perf_counter() - STARTED, 1)
    out = args.out or ROOT / "bench" / "results" / ("gpu-smoke.json" if args.smoke else "gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(cost_yaml(report["cost"]))
    print(f"wrote {out} in {report['elapsed_s']:.0f} s ({len(budget.skipped)} parts skipped)")


if __name__ == "__main__":
    main()
