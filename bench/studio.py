"""The studio's pages and live events under load: time to first byte and to the full page of the Job
page for a job of 200 shots, and server-sent events fanned out to 50 clients while events flow.

    python bench/studio.py [--shots 200] [--clients 50] [--seconds 5] [--out bench/results/studio.json]

The farm is a stand-in for the farm API (no rendering): the 200-shot job is the plan of a `noop`
storyboard, half its segments published with an attempt each (so the Gantt has 100 bars), and a thread
appends events at `--rate` per second while the clients listen. The studio is the real app under
uvicorn on the loopback; the clients are httpx on threads of this process, which share its cores.
"""
from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from farm.access.users import User  # noqa: E402
from farm.api.protocol import AttemptView, JobDetail, JobSummary, SegmentView, ShotView  # noqa: E402
from farm.job.events import JobEvent  # noqa: E402
from farm.web.identity import Identities  # noqa: E402
from farm.web.studio import create_studio  # noqa: E402
from storyboard.load import load  # noqa: E402
from storyboard.plan import build_plan  # noqa: E402


class StandInFarm:
    """The farm API's read side over one planned job, with an event stream fed by `emit`."""

    def __init__(self, plan, out: Path):
        half = len(plan.segments) // 2
        now = time.time()
        self.segments = [SegmentView(g.id, g.shot, "published" if i < half else "pending", 1 if i < half else 0,
                                     None, None, f"n0-gpu{i % 8}" if i < half else None)
                         for i, g in enumerate(plan.segments)]
        self.attempts = [AttemptView(g.id, 1, f"n0-gpu{i % 8}", 1, "done", now + i, now + i + 7.5, None)
                         for i, g in enumerate(plan.segments[:half])]
        self.shots = [ShotView(s.id, s.scene, s.frames, list(s.segments)) for s in plan.shots]
        self.summary = JobSummary("bench-job", plan.title, "running", 0, str(out), len(plan.segments), half, 0, 0,
                                  600.0, [], None, "bench")
        self.log: list[JobEvent] = []
        self.lock = threading.Lock()

    def jobs(self):
        return [self.summary]

    def job(self, job_id):
        return JobDetail(self.summary, self.shots, self.segments, self.attempts) if job_id == "bench-job" else None

    def events(self, job_id, since=0):
        with self.lock:
            return list(self.log[since:])

    def emit(self, n: int) -> None:
        with self.lock:
            self.log.append(JobEvent("bench-job", "segment", f"seg{n}", "running", detail=str(n)))


def page_times(base: str, path: str, runs: int) -> dict:
    ttfb, full, size = [], [], 0
    with httpx.Client() as client:
        for _ in range(runs):
            t0 = time.perf_counter()
            with client.stream("GET", base + path) as r:
                chunks = r.iter_bytes()
                first = next(chunks)
                ttfb.append(time.perf_counter() - t0)
                size = len(first) + sum(len(c) for c in chunks)
            full.append(time.perf_counter() - t0)
    return {"path": path, "runs": runs, "bytes": size, "ttfb_ms_median": 1000 * statistics.median(ttfb),
            "full_ms_median": 1000 * statistics.median(full), "full_ms_max": 1000 * max(full)}


def fan_out(base: str, farm: StandInFarm, clients: int, seconds: float, rate: float) -> dict:
    delays: list[list[float]] = [[] for _ in range(clients)]
    ready, stop = threading.Barrier(clients + 1), threading.Event()

    def listen(k: int) -> None:
        with httpx.Client(timeout=None) as client, client.stream("GET", base + "/api/events") as r:
            lines = r.iter_lines()
            next(lines)                       # ": connected"
            ready.wait()
            for line in lines:
                if line.startswith("data: "):
                    delays[k].append(time.time() - json.loads(line[6:])["ts"])
                if stop.is_set():
                    return

    threads = [threading.Thread(target=listen, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        farm.emit(sent)
        sent += 1
        time.sleep(1.0 / rate)
    time.sleep(1.0)                           # the last poll reaches everyone
    stop.set()
    farm.emit(sent)                           # wakes every stream so it sees `stop`
    for t in threads:
        t.join(5)
    got = [len(d) for d in delays]
    every = sorted(x for d in delays for x in d)
    return {"clients": clients, "events_sent": sent, "events_received_min": min(got), "events_received_max": max(got),
            "delivered_fraction": sum(min(g, sent) for g in got) / (sent * clients),
            "latency_ms_median": 1000 * statistics.median(every), "latency_ms_p95": 1000 * every[int(0.95 * len(every))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=200)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=20.0, help="events per second while the clients listen")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "studio.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shots = "".join(f"      - {{id: s{i:04d}, frames: 17, prompt: shot {i}}}\n" for i in range(args.shots))
        (folder / "board.yaml").write_text("sakuga: 1\ntitle: bench\nmodel: noop\noutput: {width: 64, height: 64, "
                                           f"fps: 16}}\nscenes:\n  - id: one\n    shots:\n{shots}")
        farm = StandInFarm(build_plan(load(folder / "board.yaml")), folder)
        app = create_studio(farm, root=folder, identities=Identities(None, User("bench", admin=True)))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               timeout_graceful_shutdown=1))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        result = {"machine": platform.machine(), "python": platform.python_version(), "shots": args.shots,
                  "job_page": page_times(base, "/jobs/bench-job", args.runs),
                  "shots_fragment": page_times(base, "/jobs/bench-job/fragments/shots", args.runs),
                  "queue_page": page_times(base, "/", args.runs),
                  "sse": fan_out(base, farm, args.clients, args.seconds, args.rate)}
        server.should_exit = True
        thread.join(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("job_page", "shots_fragment", "queue_page"):
        r = result[name]
        print(f"{r['path']}: first byte {r['ttfb_ms_median']:.1f} ms, full page {r['full_ms_median']:.1f} ms "
              f"(median of {r['runs']}; {r['bytes'] / 1024:.0f} KiB)")
    s = result["sse"]
    print(f"SSE to {s['clients']} clients: {s['events_sent']} events, {100 * s['delivered_fraction']:.1f}% delivered, "
          f"latency median {s['latency_ms_median']:.0f} ms, p95 {s['latency_ms_p95']:.0f} ms")
    print(args.out)


if __name__ == "__main__":
    main()
