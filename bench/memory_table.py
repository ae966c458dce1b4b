"""GPU memory per rank of the AniSora presets, and what sakuga does, for docs/models.md.

    python bench/memory_table.py [--out bench/results/memory_table.json] [--no-replay]

For anisora-v3 and anisora-v3.2, at 720p (1280x720, 81 frames: 75,600 tokens) and 1080p (1920x1088:
1080 is not a multiple of 16, the next multiple is 1088, cropped at delivery; 171,360 tokens), at gang
degrees 1/2/4/8, on 24/48/80/141 GB cards, the residency plan's choice (engine/memory/plan.py) and
what it needs per GPU. Cards are taken at what torch reports for them (nvidia-smi's total): RTX 4090
24,564 MiB, RTX 6000 Ada 49,140 MiB, H100 SXM 81,559 MiB, H200 143,771 MiB. Weights are counted on
the meta device, activations by formula; with replay (the default) the denoising formula is also
checked against diffusers' own forward replayed on fake tensors at both sizes (engine/memory/replay.py).
Nothing here runs on a GPU: these are plans, not measurements.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.memory import activations as act  # noqa: E402
from engine.memory.plan import GIB, WHAT, ModelMemory, Work, plan  # noqa: E402
from storyboard.presets import load_preset  # noqa: E402

PRESETS = ("anisora-v3", "anisora-v3.2")
SIZES = {"720p": (1280, 720, 81), "1080p": (1920, 1088, 81)}
DEGREES = (1, 2, 4, 8)
CARDS = {"24 GB": 24_564 / 1024, "48 GB": 49_140 / 1024, "80 GB": 81_559 / 1024, "141 GB": 143_771 / 1024}
SHORT = {"gpu": "whole", "text_encoder_cpu": "TE on CPU", "fsdp": "FSDP", "model_offload": "model offload",
         "group_offload": "group offload", None: "no fit"}


def cells() -> list[dict]:
    rows = []
    for name in PRESETS:
        memory = ModelMemory.of(load_preset(name))
        for size, (w, h, f) in SIZES.items():
            for k in DEGREES:
                row = {"preset": name, "size": size, "width": w, "height": h, "frames": f, "degree": k, "cards": {}}
                for card, gib in CARDS.items():
                    p = plan(memory, gib, Work(w, h, f, k))
                    row["cards"][card] = {"mode": p.mode, "does": WHAT[p.mode], "need_gib": round(p.need.gib, 1),
                                          "peak_phase": p.need.phase,
                                          "needs_gib": {m: round(n.gib, 1) for m, n in p.needs.items()}}
                row["whole_gib"] = row["cards"]["141 GB"]["needs_gib"]["gpu"]
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| preset | size | k | whole model needs | " + " | ".join(CARDS) + " |"
    lines = [head, "|" + "---|" * (4 + len(CARDS))]
    for r in rows:
        cells_ = [f"{SHORT[c['mode']]} {c['need_gib']:.1f}" if c["mode"] else f"**no fit** ({c['need_gib']:.1f})"
                  for c in r["cards"].values()]
        lines.append(f"| {r['preset']} | {r['size']} | {r['degree']} | {r['whole_gib']:.1f} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def replay_check() -> list[dict]:
    """The denoising formula against diffusers' forward replayed on fake tensors (2 real-width layers:
    more layers repeat the same peak), at degree 1."""
    import torch
    from diffusers import WanTransformer3DModel

    from engine.memory.components import read_config
    from engine.memory.replay import fake_build, peak_bytes

    config = {**read_config("wan2.1-i2v-14b", "transformer"), "num_layers": 2}
    shape = act.TransformerShape.from_config(config)
    out = []
    for size, (w, h, f) in SIZES.items():
        mode, model = fake_build(lambda: WanTransformer3DModel.from_config(config), torch.bfloat16)
        with mode:
            latents = torch.randn(1, 36, (f - 1) // 4 + 1, h // 8, w // 8, dtype=torch.bfloat16)
            text, image = torch.randn(1, 512, 4096, dtype=torch.bfloat16), torch.randn(1, 257, 1280, dtype=torch.bfloat16)
            step = torch.tensor([500.0])
        started = time.perf_counter()
        replayed = peak_bytes(mode, model, lambda: model(latents, step, text, encoder_hidden_states_image=image,
                                                         return_dict=False)[0], [latents, text, image, step])
        formula = sum(act.denoise_bytes(shape, act.tokens(shape, act.VaeShape(96), w, h, f), 1, 2).values())
        out.append({"size": size, "formula_gib": formula / GIB, "replayed_gib": replayed / GIB,
                    "replay_s": time.perf_counter() - started})
        print(f"denoise at {size}, degree 1: formula {formula / GIB:.2f} GiB, replayed {replayed / GIB:.2f} GiB "
              f"({(formula - replayed) / replayed:+.1%})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "memory_table.json")
    parser.add_argument("--no-replay", action="store_true", help="skip the fake-tensor check of the formula")
    args = parser.parse_args()
    rows = cells()
    table = markdown(rows)
    print(table)
    checks = [] if args.no_replay else replay_check()
    weights = {n: {role: round(ModelMemory.of(load_preset(n)).weights(role) / GIB, 2)
                   for role in ModelMemory.of(load_preset(n)).components} for n in PRESETS}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cards_gib": CARDS,
                                    "weights_gib_bf16": weights, "rows": rows, "replay": checks,
                                    "markdown": table}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
