"""The entrypoint side of a submitted job: runs on the cluster, hands the plan to the farm service and
prints its progress (what `sakuga logs` shows) until the job is delivered, failed or cancelled."""
from __future__ import annotations

import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import ray

from storyboard.plan import Plan

from .driver import check_cluster
from .service import farm_service

FINAL = {"done", "failed", "cancelled"}


def follow(plan: Plan, file: Path, job_id: str, priority: int, out: str | None, engine: str | None,
           deliver: list[str] = ()) -> int:
    ray.init(address="auto", logging_level="WARNING", log_to_driver=False)
    check_cluster(plan)
    folder = Path(out).expanduser() if out else Path.home() / "sakuga" / "jobs" / job_id
    folder.mkdir(parents=True, exist_ok=True)
    if plan.audio:   # the working dir goes away with this job: the soundtrack moves next to the output
        kept = folder / f"soundtrack{Path(plan.audio).suffix}"
        shutil.copyfile(plan.audio, kept)
        plan = replace(plan, audio=str(kept))
    assets = {ref: Path(path).read_bytes() for ref, path in plan.assets.items()}
    service = farm_service()
    config = {"source": str(file), "engine": engine, "priority": priority, "submitted": True,
              "deliver": sorted(deliver)}
    state = ray.get(service.submit.remote(job_id, plan, str(folder), priority, config, assets))
    print(f"{job_id}: queued with priority {priority}, {state['segments']} segments "
          f"({state['reused']} reused), output {folder}", flush=True)

    def stop(signum, frame):   # `sakuga cancel` (Ray's stop_job) sends SIGTERM
        ray.get(service.cancel.remote(job_id))
        print(f"{job_id}: cancelled", flush=True)
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    seen = 0
    while True:
        state = ray.get(service.status.remote(job_id, seen))
        for line in state["lines"]:
            print(line, flush=True)
        seen += len(state["lines"])
        if state["state"] in FINAL:
            break
        time.sleep(1.0)
    print(f"{job_id}: {state['state']} — {state['done']}/{state['segments']} segments"
          + (f", failed shots: {', '.join(state['failed_shots'])}" if state["failed_shots"] else "")
          + (f"; episode {state['episode']}" if state["episode"] else ""), flush=True)
    return 0 if state["state"] == "done" else 1
