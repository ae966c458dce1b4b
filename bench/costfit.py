"""The cost model's figures from bench/gpu.py's measurements: plain Python, no torch, so it is read and
tested anywhere. `refit` fits seconds per forward = linear x ktok + attention x ktok^2 by least squares
(both terms non-negative) over the native-attention forwards, takes the decode figure per megapixel-frame
from the tiled decode, and each speed option's factor as its seconds over native's at 720p."""
from __future__ import annotations


def fit_forward(rows: list[dict]) -> tuple[float, float]:
    """Least squares of seconds = a x ktok + b x ktok^2 (a, b >= 0) over the native forwards."""
    pts = [(r["tokens"] / 1000.0, r["s_per_step"]) for r in rows]
    if not pts:
        return 0.0, 0.0
    s11 = sum(k * k for k, _ in pts)
    s12 = sum(k ** 3 for k, _ in pts)
    s22 = sum(k ** 4 for k, _ in pts)
    y1, y2 = sum(k * t for k, t in pts), sum(k * k * t for k, t in pts)
    det = s11 * s22 - s12 * s12
    if len(pts) >= 2 and det > 0:
        a, b = (y1 * s22 - y2 * s12) / det, (s11 * y2 - s12 * y1) / det
        if a >= 0 and b >= 0:
            return a, b
    # a term that fits negative is dropped: the best of linear-only and quadratic-only
    only_a, only_b = y1 / s11, y2 / s22
    err_a = sum((t - only_a * k) ** 2 for k, t in pts)
    err_b = sum((t - only_b * k * k) ** 2 for k, t in pts)
    return (only_a, 0.0) if err_a <= err_b else (0.0, only_b)


def refit(forward: list[dict], cache: list[dict], decodes: list[dict], hardware: str) -> dict:
    native = [r for r in forward if r["option"] == "native"]
    a, b = fit_forward(native)
    decode = next((d for d in decodes if d["tiled"]), decodes[0] if decodes else None)
    at_720 = {r["option"]: r["s_per_step"] for r in forward if r["label"] == "720p"}
    speed = {name: round(at_720[option] / at_720["native"], 3) for option, name in SPEED_NAMES.items()
             if option in at_720 and "native" in at_720}
    # 720p's, else 480p's; only from a loop that skipped something: random weights need not change
    # smoothly between steps as a trained model's do, and then the cache never skips
    for row in sorted(cache, key=lambda r: r["label"] != "720p"):
        base = next((r["s_per_step"] for r in native if r["label"] == row["label"]), None)
        if base and row["computed_steps"] < row["steps"]:
            speed.setdefault("cache=fbc", round(row["s_per_step"] / base, 3))
    return {"hardware": hardware, "source": f"measured with bench/gpu.py ({hardware}, random weights)",
            "linear_s_per_ktoken": round(a, 6), "attention_s_per_ktoken2": round(b, 8),
            "decode_s_per_mpixel_frame": None if decode is None else
            round(decode["seconds"] / (decode["frames"] * decode["width"] * decode["height"] / 1e6), 5),
            "speed": speed}


SPEED_NAMES = {"_native_cudnn": "attention=_native_cudnn", "flash": "attention=flash",
               "_flash_3": "attention=_flash_3", "sage": "attention=sage", "fp8 layerwise": "fp8=layerwise",
               "fp8 torchao": "fp8=torchao"}


def cost_yaml(cost: dict) -> str:
    lines = ["cost:   # overhead_s, parallel_efficiency, load_s and the timeouts: keep the preset's",
             f'  hardware: "{cost["hardware"]}"', f'  source: "{cost["source"]}"']
    for key in ("linear_s_per_ktoken", "attention_s_per_ktoken2", "decode_s_per_mpixel_frame"):
        lines.append(f"  {key}: {cost[key]}")
    if cost["speed"]:
        lines.append("  speed: {" + ", ".join(f"{k}: {v}" for k, v in cost["speed"].items()) + "}")
    return "\n".join(lines)
