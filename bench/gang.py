"""What the whole gang working saves, per segment, from the cost model: for docs/scaling.md.

    python bench/gang.py [--out bench/results/gang.json]

For anisora-v2 (40 steps, guidance 5: two passes a step) and anisora-v3 (8 steps, guidance 1: one
pass), 81 frames at 720p (1280x720) and 1080p (1920x1088), at gang degrees 1/2/4/8: the segment's
seconds with rank 0 decoding alone and both CFG passes on the whole gang one after the other (before),
with the tiled decode shared by the gang (decode), and with CFG's passes on the gang's halves as well
(both). Also the split's balance: how evenly diffusers' tiles (256 px every 192) share out over k
ranks (engine/parallel/tiled_decode.py), the bound on `cost.decode_efficiency`. Nothing runs on a GPU:
these are the cost model's figures (public xDiT-calibrated constants), not measurements.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.parallel.tiled_decode import balance, grid  # noqa: E402
from storyboard.presets import Preset, load_preset  # noqa: E402

PRESETS = ("anisora-v2", "anisora-v3")
SIZES = {"720p": (1280, 720), "1080p": (1920, 1088)}
FRAMES = 81
DEGREES = (1, 2, 4, 8)
# diffusers' AutoencoderKLWan tiles: 256 px every 192, 8x spatial compression
WAN_VAE = SimpleNamespace(spatial_compression_ratio=8, tile_sample_min_height=256, tile_sample_min_width=256,
                          tile_sample_stride_height=192, tile_sample_stride_width=192)


def variant(preset: Preset, decode: bool, cfg: bool) -> Preset:
    cost = preset.cost if decode else preset.cost.model_copy(update={"decode_efficiency": {}})
    return preset.model_copy(update={"cost": cost, "options": {**preset.options, "cfg_parallel": cfg}})


def rows() -> list[dict]:
    out = []
    for name in PRESETS:
        preset = load_preset(name)
        steps, guidance = preset.defaults.steps, preset.defaults.guidance
        kinds = {"before": variant(preset, False, False), "decode": variant(preset, True, False),
                 "both": variant(preset, True, True)}
        for size, (w, h) in SIZES.items():
            tiles = grid(WAN_VAE, (1, 16, (FRAMES - 1) // 4 + 1, h // 8, w // 8))
            for k in DEGREES:
                row = {"preset": name, "size": size, "degree": k, "steps": steps, "guidance": guidance,
                       "tiles": len(tiles), "tile_balance": round(balance(tiles, k), 3)}
                row |= {kind: round(p.runtime(FRAMES, w, h, steps, guidance, k), 1) for kind, p in kinds.items()}
                row["decode_saves_s"] = round(row["before"] - row["decode"], 1)
                row["cfg_saves_s"] = round(row["decode"] - row["both"], 1)
                row["saves"] = round(1 - row["both"] / row["before"], 3)
                out.append(row)
    return out


def markdown(table: list[dict]) -> str:
    lines = ["| preset | size | k | before | shared decode | + CFG halves | decode saves | CFG saves | total |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['preset']} | {r['size']} | {r['degree']} | {r['before']:.1f} s | {r['decode']:.1f} s | "
                     f"{r['both']:.1f} s | {r['decode_saves_s']:.1f} s | {r['cfg_saves_s']:.1f} s | "
                     f"{100 * r['saves']:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "gang.json")
    args = ap.parse_args()
    table = rows()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"frames": FRAMES, "source": "cost model (configs/models/*.yaml)",
                                    "rows": table}, indent=1) + "\n")
    print(markdown(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
