"""Sequence-parallel gangs in the farm loop: a long shot at degree 4 gives the frames of one GPU, a
gang keeps its group across segments, a gang member's death fails the attempt (no hang) and the
retry succeeds, running out of memory is retried on a wider gang."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import yaml

from engine.registry import create
from farm.api.embedded import render
from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.media.decode import read_frames, read_png
from farm.run.loop import FarmLoop
from farm.workers.pool import WorkerPool
from storyboard.load import load
from storyboard.plan import build_plan
from storyboard.presets import load_preset

ROOT = Path(__file__).resolve().parents[3]

LONG_TAKE = """\
sakuga: 1
title: Long take
model: wan-tiny
output: {width: 64, height: 64, fps: 16}
scenes:
  - id: one
    shots:
      - {id: long, frames: 81, prompt: a long walk along the river at dusk}
"""


def shots(model: str, count: int, *, chained: bool = False) -> str:
    lines = [f"      - {{id: s{i}, frames: 17, prompt: shot {i}"
             + (", start: previous" if chained and i else "") + "}" for i in range(count)]
    return (f"sakuga: 1\ntitle: Gang\nmodel: {model}\noutput: {{width: 64, height: 64, fps: 16}}\n"
            "scenes:\n  - id: one\n    shots:\n" + "\n".join(lines) + "\n")


def noop_preset(folder: Path, name: str, degrees: list[int], **options) -> str:
    data = yaml.safe_load((ROOT / "configs" / "models" / "noop.yaml").read_text())
    data.update(name=name, degrees=degrees, options=options)
    # work that splits over a gang, so the policy has a reason to widen
    data["cost"].update(linear_s_per_ktoken=1.0, parallel_efficiency={d: 1.0 for d in degrees})
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return name


def plan_of(tmp_path: Path, text: str):
    path = tmp_path / "sb.yaml"
    path.write_text(text)
    return build_plan(load(path))


def frames(path: Path) -> np.ndarray:
    return np.stack(list(read_frames(path)))


def swap_shards(latents: np.ndarray, world: int = 4) -> np.ndarray:
    """The latents as a gang that gathered its ranks' token shards in the wrong order would leave them:
    the transformer's tokens (1×2×2 patches in frame, row, column order) cut into `world` contiguous
    shards, as Ulysses splits them, with shards 1 and 2 swapped."""
    _, c, f, h, w = latents.shape
    tokens = latents.reshape(c, f, h // 2, 2, w // 2, 2).transpose(1, 2, 4, 0, 3, 5).reshape(-1, c, 2, 2)
    shards = np.array_split(tokens, world)
    shards[1], shards[2] = shards[2], shards[1]
    return (np.concatenate(shards).reshape(f, h // 2, w // 2, c, 2, 2).transpose(3, 0, 1, 4, 2, 5)
            .reshape(1, c, f, h, w))


# Bounds, from what float noise does and what a wrong computation does (docs/scaling.md):
# - latents: the selftest's sharded forward is within 1e-5 of one process (fp32, values of order 1);
#   over the tiny preset's denoising steps that noise is carried, not amplified (each UniPC update
#   mixes a few model outputs with weights below 1), so 1e-4 absolute holds it with margin. A wrong
#   shard order moves whole token blocks: differences of the order of the latents themselves (~1;
#   measured: mean 0.58, worst 5.9). On a 2-core Xeon the gang's latents equal one GPU's exactly.
LATENT_ATOL = 1e-4
# - decoded frames (uint8: the lossless last frame, frames decoded here from latents): float noise flips a few values by a level or two where a value
#   sits on a rounding edge (measured on an AMD EPYC: 1.5% of values, mean 0.04 level, worst 17 where
#   the codec's decisions cascade). Mean difference at most 0.5 level and PSNR at least 40 dB hold that
#   ten times over (a Xeon shows the same: mean 0.039, worst 17, with bit-equal latents, so the noise
#   is in decoding and encoding, not the gang). Shards 1 and 2 swapped decode to mean 3.6 levels,
#   PSNR 32.7 dB; frames shifted by one, mean 10.5, PSNR 25 dB: both fail.
FRAME_MEAN = 0.5
FRAME_PSNR = 40.0


def frames_agree(a: np.ndarray, b: np.ndarray) -> bool:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float((diff.astype(np.float64) ** 2).mean())
    psnr = np.inf if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    return a.shape == b.shape and float(diff.mean()) <= FRAME_MEAN and psnr >= FRAME_PSNR


def test_a_long_shot_at_degree_4_computes_what_one_gpu_computes(ray_cluster, tmp_path, monkeypatch):
    # threads change the float reduction order: give every worker one, as a GPU gives each rank its own
    monkeypatch.setenv("SAKUGA_WORKER_THREADS", "1")
    plan = plan_of(tmp_path, LONG_TAKE)
    for gpus in (4, 1):
        outcome = render(plan, tmp_path / f"g{gpus}", gpus=gpus, show_progress=False, config={"keep_latents": True})
        assert outcome.ok
    rows = {g: pq.read_table(tmp_path / f"g{g}" / "manifest.parquet").to_pylist()[0] for g in (4, 1)}
    assert (rows[4]["degree"], rows[1]["degree"]) == (4, 1)
    assert rows[4]["worker"] == "n0-gpu0+n0-gpu1+n0-gpu2+n0-gpu3"
    wide, single = (tmp_path / f"g{g}" / "segments" for g in (4, 1))

    # where the gang's work is exact arithmetic up to float order: the denoised latents
    latents = {g: np.load(tmp_path / f"g{g}" / "segments" / "long.0.latents.npy") for g in (4, 1)}
    assert latents[4].shape == latents[1].shape == (1, 4, 21, 8, 8)
    np.testing.assert_allclose(latents[4], latents[1], rtol=0, atol=LATENT_ATOL)
    assert not np.allclose(swap_shards(latents[1]), latents[1], rtol=0, atol=LATENT_ATOL)   # the bound sees a misorder

    # and what users see: the lossless last frame (the one the next segment starts from) and the clip.
    # Not mp4 against mp4: PyAV 18's libx264 is not bit-reproducible (the same 81 frames encoded three
    # times in one process gave two different files, differing by ~2 levels from frame 24 on), so that
    # would test the codec, not the gang; the frames the workers decoded were measured equal.
    assert frames(wide / "long.0.mp4").shape == frames(single / "long.0.mp4").shape == (81, 64, 64, 3)
    assert frames_agree(read_png((wide / "long.0.png").read_bytes()), read_png((single / "long.0.png").read_bytes()))
    engine = create(load_preset("wan-tiny"))
    good = (engine.decode(torch.from_numpy(latents[1])) * 255).round().astype(np.uint8)
    bad = (engine.decode(torch.from_numpy(swap_shards(latents[1]))) * 255).round().astype(np.uint8)
    assert frames_agree(good, good) and not frames_agree(bad, good)       # nor does the frame bound miss it
    assert not frames_agree(good[1:], good[:-1])                          # or a frame out of place

    with Ledger(tmp_path / "g4" / "ledger.sqlite") as ledger:
        [attempt] = ledger.attempts(ledger.jobs()[-1]["id"])
    assert (attempt["status"], attempt["degree"]) == ("done", 4)
    # the report's schedule draws the gang as one bar across its four GPU rows
    page = (tmp_path / "g4" / "report.html").read_text()
    gantt = page[page.index('class="chart gantt"'):page.index("</svg>", page.index('class="chart gantt"'))]
    assert gantt.count('<g class="bar done">') == 1 and 'height="76.0"' in gantt and "the widest here 4" in page


def test_a_gang_keeps_its_group_across_segments(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    plan = plan_of(tmp_path, shots(noop_preset(tmp_path, "pair", [1, 2], sleep_s=0.2), 3, chained=True))
    farm = FarmLoop(WorkerPool(2))
    farm.add(Job("chain", plan, tmp_path / "out"))
    farm.run()
    with Ledger(tmp_path / "out" / "ledger.sqlite") as ledger:
        attempts = ledger.attempts("chain")
        formed = [e for e in ledger.events("chain") if e["kind"] == "gang_formed"]
    assert [(a["status"], a["degree"]) for a in attempts] == [("done", 2)] * 3
    assert len(formed) == 1          # one rendezvous; the next segments reuse the group


def test_a_gang_member_killed_mid_segment_fails_the_attempt_and_the_retry_succeeds(ray_cluster, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    plan = plan_of(tmp_path, shots(noop_preset(tmp_path, "pair", [1, 2], sleep_s=4.0), 1))
    farm = FarmLoop(WorkerPool(2))
    farm.add(Job("kill", plan, tmp_path / "out"))
    pids = {s.name: farm.pool.pid(s) for s in farm.pool.slots}
    runner = threading.Thread(target=farm.run)
    runner.start()
    with Ledger(tmp_path / "out" / "ledger.sqlite") as ledger:
        deadline = time.time() + 60
        while not any(a["status"] == "running" for a in ledger.attempts("kill")):
            assert time.time() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(pids["n0-gpu1"], signal.SIGKILL)        # rank 1; rank 0 waits for it in a collective
        runner.join(timeout=300)
        assert not runner.is_alive()                    # no wait for a collective timeout (gloo's is 30 min)
        attempts = ledger.attempts("kill")
        events = ledger.events("kill")
    assert [(a["status"], a["degree"]) for a in attempts] == [("died", 2), ("done", 2)]
    assert sum(e["kind"] == "worker_lost" for e in events) == 2   # the whole gang was replaced
    assert sum(e["kind"] == "gang_formed" for e in events) == 2   # and the retry met anew
    assert (tmp_path / "out" / "episode.mp4").is_file()


def test_out_of_memory_is_retried_on_a_wider_gang(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SAKUGA_MODELS", str(tmp_path))
    # 8 GB of activations on a 5 GB device: out of memory alone, fits split two ways
    model = noop_preset(tmp_path, "big", [1, 2], activation_gb=8.0, device_gb=5.0)
    plan = plan_of(tmp_path, shots(model, 2))
    farm = FarmLoop(WorkerPool(2))
    farm.add(Job("oom", plan, tmp_path / "out"))
    farm.run()
    with Ledger(tmp_path / "out" / "ledger.sqlite") as ledger:
        for seg in plan.segments:
            tries = ledger.attempts("oom", seg.id)
            assert [(a["status"], a["degree"], bool(a["offload"])) for a in tries] == [
                ("oom", 1, False), ("done", 2, False)], tries
