"""An elastic pool on a real multi-node Ray (`ray.cluster_utils.Cluster`, in its own process): a GPU node
that joins mid-job gets workers and renders segments; a node that leaves mid-job has its running
attempts ended as `node-lost` (not counted against the segments) and retried on the node that stays."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from farm.media.decode import probe

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, sys, time
from pathlib import Path
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
first = cluster.add_node(num_cpus=1, num_gpus=2)
cluster.wait_for_nodes()
import ray
ray.init(address=cluster.address, logging_level="ERROR")
from farm.api.embedded import EmbeddedFarm
from farm.api.protocol import JobRequest
from farm.workers.pool import WorkerPool
from storyboard.load import load
from storyboard.plan import build_plan
farm = EmbeddedFarm(WorkerPool(2, elastic=True))
job = farm.submit(JobRequest(build_plan(load(Path(sys.argv[1]))), Path(sys.argv[2]))).id
added = removed = False
deadline = time.time() + 240
while not farm.loop.jobs[job].ended and time.time() < deadline:
    farm.step(0.2)
    if not added and farm.job(job).summary.done >= 2:
        cluster.add_node(num_cpus=1, num_gpus=2)
        added = True
    joined = any(s.node == 1 for s in farm.pool.slots)
    busy_first = any(s.node == 0 and s.busy for s in farm.pool.slots)
    if joined and not removed and busy_first and farm.job(job).summary.done >= 4:
        cluster.remove_node(first)
        removed = True
detail = farm.job(job)
print(json.dumps({"state": detail.summary.state, "added": added, "removed": removed,
                  "attempts": [(a.segment, a.worker, a.status) for a in detail.attempts],
                  "segments": [(s.id, s.status, s.attempts) for s in detail.segments]}))
farm.close()
ray.shutdown()
cluster.shutdown()
"""


def test_a_node_joining_gets_work_and_a_node_leaving_has_its_segments_retried(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    data = yaml.safe_load((ROOT / "configs" / "models" / "noop.yaml").read_text())
    data.update(name="slow", options={"sleep_s": 2.0})
    (presets / "slow.yaml").write_text(yaml.safe_dump(data))
    lines = "".join(f"      - {{id: s{i:02d}, frames: 17, prompt: shot {i}}}\n" for i in range(20))
    sb = tmp_path / "sb.yaml"
    sb.write_text("sakuga: 1\ntitle: Elastic\nmodel: slow\noutput: {width: 64, height: 64, fps: 16}\n"
                  f"scenes:\n  - id: one\n    shots:\n{lines}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SAKUGA_MODELS": str(presets)}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(sb), str(tmp_path / "out")], env=env,
                            capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["state"] == "done" and report["added"] and report["removed"], report
    workers = {w.split("-")[0] for _, w, status in report["attempts"] if status == "done"}
    assert workers == {"n0", "n1"}                                  # the node that joined rendered too
    lost = [a for a in report["attempts"] if a[2] == "node-lost"]
    assert lost and all(w.startswith("n0") for _, w, _ in lost)     # the leaving node's attempts...
    retried = {seg for seg, _, _ in lost}
    assert all(any(s == seg and st == "done" and w.startswith("n1") for s, w, st in report["attempts"])
               for seg in retried)                                  # ...finished on the node that stays
    assert all(status == "published" for _, status, _ in report["segments"])
    assert probe(tmp_path / "out" / "episode.mp4")["frames"] == 20 * 17
