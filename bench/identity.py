"""Identity without an image encoder: character similarity with and without `identity: keyframe`.

    python bench/identity.py [--steps 4] [--out bench/results/identity.json]

On the tiny Wan2.2-shaped model (`engine/wan/tiny_wan22.py`: no CLIP image encoder, no image
cross-attention, as AniSora V3.2), with the tiny Wan2.1's CLIP as its QC encoder (`qc_encoder`), it
renders the same storyboard twice: a shot with no start picture, then a chain of shots each
continuing from the previous one (`start: previous`), all featuring one character. Once with
`identity: embedding` (the default, which on this model changes nothing: there are no image
embeddings to put the bank in), once with `identity: keyframe` (the character's reference picture
as a condition picture: on frame 0 of the shot without a start, on the last frame of each
continuing shot). It prints and writes, per segment, `character_similarity` (cosine of the QC
encoder's vectors of the reference and of 4 output frames) and the render time.

The weights are random, so the model has learnt nothing about reproducing a condition picture: the
figures show that the path works end to end and what it costs, not how much identity it holds on
AniSora V3.2. Only a run with the real weights can say that.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.bank import CharacterBank  # noqa: E402
from engine.wan import tiny, tiny_wan22  # noqa: E402
from engine.wan.engine import WanEngine  # noqa: E402
from storyboard.load import load  # noqa: E402
from storyboard.plan import Plan, build_plan  # noqa: E402
from storyboard.presets import load_preset  # noqa: E402

SIZE, FRAMES, CHAIN = 64, 9, 3
STORYBOARD = """\
sakuga: 1
model: wan-tiny
output: {{width: {size}, height: {size}}}
defaults: {{steps: {steps}, identity: {identity}}}
characters:
  hana: {{name: Hana, refs: [hana.png], description: "short silver hair, red scarf"}}
scenes:
  - id: roof
    shots:
      - {{id: open, frames: {frames}, prompt: "@hana stands on the roof"}}
{chain}"""


def draw_character(path: Path) -> None:
    """A plain model sheet: a face with silver hair and a red scarf on white."""
    picture = Image.new("RGB", (96, 96), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((28, 14, 68, 58), fill=(250, 220, 200))
    draw.pieslice((24, 6, 72, 50), 180, 360, fill=(200, 205, 215))
    draw.rectangle((30, 60, 66, 70), fill=(210, 30, 40))
    picture.save(path)


def storyboard(folder: Path, identity: str, steps: int) -> Plan:
    chain = "".join(f'      - {{id: turn-{i}, frames: {FRAMES}, prompt: "@hana turns", start: previous}}\n'
                    for i in range(1, CHAIN + 1))
    path = folder / f"identity-{identity}.yaml"
    path.write_text(STORYBOARD.format(size=SIZE, steps=steps, identity=identity, frames=FRAMES, chain=chain))
    return build_plan(load(path))


def render_all(engine: WanEngine, plan: Plan) -> list[dict]:
    """Every segment in order, chained frames passed on; per segment its conditions, similarity and time."""
    last: dict[str, np.ndarray] = {}
    rows = []
    for seg in plan.segments:
        images = {c.image: (np.asarray(Image.open(plan.assets[c.image.ref]).convert("RGB")) if c.image.kind == "asset"
                            else last[c.image.ref]) for c in seg.conditions}
        began = time.perf_counter()
        out = engine.render(seg, images)
        last[seg.id] = out.last_frame
        rows.append({"segment": seg.id, "conditions": [[c.frame, c.image.ref] for c in seg.conditions],
                     "character_similarity": out.metrics.get("character_similarity"),
                     "render_s": round(time.perf_counter() - began, 3)})
    return rows


def run(steps: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="sakuga-identity-"))
    base = tiny.ensure(scratch / "wan-tiny")
    preset = load_preset("wan-tiny")
    v32 = preset.model_copy(update={"name": "tiny-wan22", "options": {
        **preset.options, "build_tiny": False, "base": str(tiny_wan22.build(scratch / "wan22")),
        "qc_encoder": str(base)}})
    engine = WanEngine(v32)
    draw_character(scratch / "hana.png")
    results = {}
    for identity in ("embedding", "keyframe"):
        plan = storyboard(scratch, identity, steps)
        ch = plan.segments[0].characters[0]
        ref = np.asarray(Image.open(plan.assets[ch.refs[0].ref]).convert("RGB"))
        engine.use_bank(CharacterBank(engine.encode_characters([(ch.id, ch.refs[0].sha256, ref)])))
        rows = render_all(engine, plan)
        sims = [r["character_similarity"] for r in rows]
        results[identity] = {"segments": rows, "mean_similarity": float(np.mean(sims)),
                             "last_similarity": sims[-1]}
        for r in rows:
            print(f"identity: {identity:9s} {r['segment']:9s} similarity {r['character_similarity']:+.4f} "
                  f"({r['render_s']:.1f} s) conditions {r['conditions']}", flush=True)
        print(f"identity: {identity:9s} mean similarity {results[identity]['mean_similarity']:+.4f}", flush=True)
    return {"model": "tiny Wan2.2-shaped (no image encoder, no image cross-attention), random weights",
            "qc_encoder": "the tiny Wan2.1's CLIP vision encoder", "encoder_id": engine.encoder_id,
            "size": [SIZE, SIZE], "frames": FRAMES, "steps": steps, "chain": CHAIN,
            "device": str(engine.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "results": results,
            "note": "random weights: shows the path works and its cost, not how much identity AniSora V3.2 keeps"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("bench/results/identity.json"))
    args = ap.parse_args()
    report = run(args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
