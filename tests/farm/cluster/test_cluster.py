"""The studio cluster: `sakuga submit/jobs/status/logs/cancel` against a head started with
`ray start --head` (token auth on), jobs sharing the farm service by priority, and a render across
two logical nodes of `ray.cluster_utils.Cluster`."""
from __future__ import annotations

import getpass
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from farm.job.ledger import Ledger
from farm.media.decode import probe

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent

STORYBOARD = """\
sakuga: 1
title: {title}
model: {model}
output: {{width: 64, height: 64, fps: 16}}
scenes:
  - id: one
    shots:
{shots}
"""


def write_storyboard(folder: Path, title: str, model: str, shots: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f"      - {{id: s{i}, frames: 17, prompt: {title} shot {i}}}" for i in range(shots))
    path = folder / f"{folder.name}.yaml"
    path.write_text(STORYBOARD.format(title=title, model=model, shots=lines))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A real head node (`ray start --head --block`) with 2 logical GPUs and token auth."""
    tmp = tmp_path_factory.mktemp("head")
    presets = tmp / "presets"
    presets.mkdir()
    data = yaml.safe_load((ROOT / "configs" / "models" / "noop.yaml").read_text())
    data.update(name="slow", options={"sleep_s": 1.0})
    (presets / "slow.yaml").write_text(yaml.safe_dump(data))
    # long enough per segment that a cancel (a fresh CLI process on a loaded machine) lands mid-job
    data.update(name="crawl", options={"sleep_s": 4.0})
    (presets / "crawl.yaml").write_text(yaml.safe_dump(data))
    token = secrets.token_hex(16)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": token, "SAKUGA_MODELS": str(presets), "SAKUGA_CACHE": str(tmp / "cache"),
           "SAKUGA_FARM_HOME": str(tmp / "farm"), "SAKUGA_FARM_ROOT": str(tmp / "jobs")}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    log = open(tmp / "head.log", "wb")
    gcs = free_port()
    proc = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}",
                             f"--dashboard-port={dashboard}", "--num-cpus=2", "--num-gpus=2",
                             # the session's local Ray holds the default agent ports: a second agent
                             # there cannot bind, and jobs are then refused ("No available agent")
                             f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
                             "--disable-usage-stats", "--include-dashboard=true"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    client = {**env, "RAY_ADDRESS": address}
    try:
        deadline = time.time() + 90
        while cli(client, "jobs").returncode != 0:
            assert time.time() < deadline and proc.poll() is None, (tmp / "head.log").read_text()[-3000:]
            time.sleep(1)
        yield {"env": client, "address": address, "tmp": tmp, "gcs": f"127.0.0.1:{gcs}", "root": tmp / "jobs"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


def cli(env: dict, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sakuga"), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def wait_status(env: dict, job: str, final=("SUCCEEDED", "FAILED", "STOPPED"), timeout: float = 180) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = cli(env, "status", job).stdout
        state = text.split(":", 1)[1].split()[0] if ":" in text else ""
        if state in final:
            return state
        time.sleep(1)
    raise AssertionError(f"{job} did not finish: {text}")


def mine(head, tmp_path) -> Path:
    """A folder of this test inside the submitting user's folder of the farm's root."""
    return head["root"] / getpass.getuser() / tmp_path.name


def test_submit_follow_and_read_back_a_job(head, tmp_path):
    env = head["env"]
    sb = write_storyboard(tmp_path / "sb", "Submitted", "noop", 3)
    out = mine(head, tmp_path) / "out"
    result = cli(env, "submit", sb, "--out", out)
    assert result.returncode == 0, result.stderr
    job = result.stdout.strip().splitlines()[-1]
    assert wait_status(env, job) == "SUCCEEDED"
    assert probe(out / "episode.mp4")["frames"] == 3 * 17
    assert job in cli(env, "jobs").stdout
    logs = cli(env, "logs", job).stdout
    assert "s0.0: done" in logs and "delivered" in logs
    status = cli(env, "status", out)                         # the same state, from the ledger
    assert status.returncode == 0 and f"job {job}: done" in status.stdout and "3 published of 3" in status.stdout


def test_outputs_stay_in_the_submitters_folder_of_the_farm_root(head, tmp_path):
    env = head["env"]
    sb = write_storyboard(tmp_path / "sb", "Confined", "noop", 1)
    outside = tmp_path / "elsewhere"
    job = cli(env, "submit", sb, "--out", outside).stdout.strip().splitlines()[-1]
    assert wait_status(env, job) == "FAILED"
    assert "outside" in cli(env, "logs", job).stdout and not outside.exists()
    result = cli(env, "submit", sb, "--out", f"rel-{tmp_path.name}")       # a name: under my folder there
    assert result.returncode == 0 and "your folder of the farm's root" in result.stderr
    assert wait_status(env, result.stdout.strip().splitlines()[-1]) == "SUCCEEDED"
    assert (head["root"] / getpass.getuser() / f"rel-{tmp_path.name}" / "episode.mp4").is_file()


def test_a_users_token_makes_the_job_theirs(head, tmp_path):
    from farm.access.users import UserStore

    env = head["env"]
    sb = write_storyboard(tmp_path / "sb", "Theirs", "noop", 1)
    name = "artist"
    token = UserStore(head["tmp"] / "farm" / "users.sqlite").add(name)
    job = cli({**env, "SAKUGA_TOKEN": token}, "submit", sb, "--out", "ep").stdout.strip().splitlines()[-1]
    assert wait_status(env, job) == "SUCCEEDED"
    assert (head["root"] / name / "ep" / "episode.mp4").is_file()           # their folder, not the OS user's
    job = cli({**env, "SAKUGA_TOKEN": "sk-x-forged"}, "submit", sb, "--out", "ep2").stdout.strip().splitlines()[-1]
    assert wait_status(env, job) == "FAILED" and "not a user's" in cli(env, "logs", job).stdout


def test_a_wrong_token_is_refused_with_a_clear_message(head, tmp_path):
    env = {**head["env"], "RAY_AUTH_TOKEN": "not-the-token"}
    result = cli(env, "jobs")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "cannot use the Ray cluster" in result.stderr


def test_an_urgent_job_overtakes_a_low_priority_batch(head, tmp_path):
    env = head["env"]
    # long enough (40 s on 2 GPUs) to still hold the GPUs once the urgent submit is through: each
    # `sakuga submit` first runs a check job on the cluster, a few seconds
    low = [write_storyboard(tmp_path / f"pv{i}", f"PV {i}", "slow", 40) for i in range(2)]
    result = cli(env, "batch", *low, "--out", mine(head, tmp_path) / "night", "--priority", "low", "--address", head["address"])
    assert result.returncode == 0, result.stderr
    deadline = time.time() + 90
    while not (mine(head, tmp_path) / "night" / "pv0" / "segments" / "s0.0.mp4").exists():   # the batch holds the GPUs
        assert time.time() < deadline
        time.sleep(0.5)
    urgent = write_storyboard(tmp_path / "urgent", "Urgent", "slow", 3)
    job = cli(env, "submit", urgent, "--out", mine(head, tmp_path) / "urgent-out", "--priority", "urgent").stdout.strip()
    for j in [*result.stdout.split(), job]:
        assert wait_status(env, j) == "SUCCEEDED"

    def attempts(out: Path) -> list[dict]:
        with Ledger(out / "ledger.sqlite") as ledger:
            return ledger.attempts(ledger.jobs()[-1]["id"])
    urgent_starts = [a["started"] for a in attempts(mine(head, tmp_path) / "urgent-out")]
    assert [a["status"] for a in attempts(mine(head, tmp_path) / "urgent-out")] == ["done"] * 3, attempts(mine(head, tmp_path) / "urgent-out")
    batch = [a for i in range(2) for a in attempts(mine(head, tmp_path) / "night" / f"pv{i}")]
    later = [a["started"] for a in batch if a["started"] > min(urgent_starts)]
    assert later, "the batch was over before the urgent job arrived: nothing was tested"
    # once the urgent job was queued, no batch segment started before all of its segments had
    assert min(later) >= max(urgent_starts) - 0.01
    assert max(a["ended"] for a in attempts(mine(head, tmp_path) / "urgent-out")) < max(a["ended"] for a in batch)


def test_cancel_stops_a_running_job_and_keeps_what_is_published(head, tmp_path):
    env = head["env"]
    sb = write_storyboard(tmp_path / "sb", "Long", "crawl", 12)
    out = mine(head, tmp_path) / "out"
    job = cli(env, "submit", sb, "--out", out).stdout.strip()
    deadline = time.time() + 90
    while "done (1/" not in cli(env, "logs", job).stdout:
        assert time.time() < deadline
        time.sleep(0.5)
    result = cli(env, "cancel", job)
    assert result.returncode == 0 and "cancelling" in result.stdout
    assert wait_status(env, job) in ("STOPPED", "FAILED")
    deadline = time.time() + 30
    while True:
        with Ledger(out / "ledger.sqlite") as ledger:
            row = ledger.jobs()[-1]
            counts = ledger.counts(row["id"])
        if row["status"] == "cancelled" or time.time() > deadline:
            break
        time.sleep(0.5)
    assert row["status"] == "cancelled"
    assert 1 <= counts.get("published", 0) < 12


KILL_SERVICE = """
import os, signal, sqlite3, sys, time
import ray
ray.init(address=sys.argv[1], logging_level="ERROR")
service = ray.get_actor("sakuga-farm", namespace="sakuga")
pid = ray.get(service.__ray_call__.remote(lambda self: os.getpid()))
deadline = time.time() + 90
while True:   # mid-job: two segments published, more to come
    db = sqlite3.connect(sys.argv[2])
    done = db.execute("SELECT COUNT(*) FROM segments WHERE status='published'").fetchone()[0]
    db.close()
    if done >= 2 or time.time() > deadline:
        break
    time.sleep(0.2)
os.kill(pid, signal.SIGKILL)   # the process dies as on a crash; Ray restarts the actor
print(pid, done)
"""


def test_the_farm_service_killed_mid_job_restarts_and_finishes_it(head, tmp_path):
    env = head["env"]
    sb = write_storyboard(tmp_path / "sb", "Restart", "crawl", 6)
    out = mine(head, tmp_path) / "out"
    job = cli(env, "submit", sb, "--out", out).stdout.strip()
    deadline = time.time() + 90
    while not (out / "ledger.sqlite").is_file():
        assert time.time() < deadline
        time.sleep(0.2)
    killed = subprocess.run([sys.executable, "-c", KILL_SERVICE, head["gcs"], str(out / "ledger.sqlite")],
                            env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=180,
                            cwd=ROOT)
    assert killed.returncode == 0, killed.stderr[-3000:]
    with Ledger(out / "ledger.sqlite") as ledger:
        segments = ledger.segments(ledger.jobs()[-1]["id"])
    published = {s["id"] for s in segments if s["status"] == "published"}
    assert 2 <= len(published) < 6                     # killed mid-job
    before = {sid: (out / "segments" / f"{sid}.mp4").stat() for sid in published}
    assert wait_status(env, job) == "SUCCEEDED"
    assert probe(out / "episode.mp4")["frames"] == 6 * 17
    for sid, stat in before.items():        # published before the crash: the very same files
        now = (out / "segments" / f"{sid}.mp4").stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


TWO_NODES = """
import json, sys
from pathlib import Path
from ray.cluster_utils import Cluster
from farm.api.embedded import render
from storyboard.load import load
from storyboard.plan import build_plan
import pyarrow.parquet as pq
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 2})
cluster.add_node(num_cpus=1, num_gpus=2)
cluster.wait_for_nodes()
out = Path(sys.argv[2])
outcome = render(build_plan(load(Path(sys.argv[1]))), out, gpus=4, address=cluster.address, show_progress=False)
rows = pq.read_table(out / "manifest.parquet").to_pylist()
print(json.dumps({"ok": outcome.ok, "nodes": sorted({r["node"] for r in rows}),
                  "workers": sorted({r["worker"] for r in rows})}))
import ray
ray.shutdown()
cluster.shutdown()
"""


def test_a_render_spreads_over_two_nodes(tmp_path):
    sb = write_storyboard(tmp_path / "sb", "Two nodes", "noop", 8)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", TWO_NODES, str(sb), str(tmp_path / "out")], env=env,
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"]
    assert len(report["nodes"]) == 2                            # both nodes rendered segments
    assert {w.split("-")[0] for w in report["workers"]} == {"n0", "n1"}
    assert probe(tmp_path / "out" / "episode.mp4")["frames"] == 8 * 17
