"""The entrypoint side of a submitted job: runs on the cluster, hands the plan to the farm service and
prints its progress (what `sakuga logs` shows) until the job is delivered, failed or cancelled."""
from __future__ import annotations

import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from farm.api.protocol import JobRequest
from farm.workers.connect import check_cluster, connect
from storyboard.plan import Plan

from .remote import ServiceFarm

FINAL = {"done", "failed", "cancelled"}


def follow(plan: Plan, file: Path, job_id: str, priority: int, out: str | None, model: str | None,
           deliver: list[str] = ()) -> int:
    connect(address="auto")
    check_cluster(plan)
    folder = Path(out).expanduser() if out else Path.home() / "sakuga" / "jobs" / job_id
    folder.mkdir(parents=True, exist_ok=True)
    if plan.audio:   # the working dir goes away with this job: the soundtrack moves next to the output
        kept = folder / f"soundtrack{Path(plan.audio).suffix}"
        shutil.copyfile(plan.audio, kept)
        plan = replace(plan, audio=str(kept))
    assets = {ref: Path(path).read_bytes() for ref, path in plan.assets.items()}
    farm = ServiceFarm()
    config = {"source": str(file), "engine": model, "priority": priority, "submitted": True,
              "deliver": sorted(deliver)}
    state = farm.submit(JobRequest(plan, folder, priority, config, assets, job_id))
    print(f"{job_id}: queued with priority {priority}, {state.segments} segments "
          f"({state.reused} reused), output {folder}", flush=True)

    def stop(signum, frame):   # `sakuga cancel` (Ray's stop_job) sends SIGTERM
        farm.cancel(job_id)
        print(f"{job_id}: cancelled", flush=True)
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    seen = 0
    while True:
        for line in farm.lines(job_id, seen):
            print(line, flush=True)
            seen += 1
        state = farm.job(job_id).summary
        if state.state in FINAL:
            break
        time.sleep(1.0)
    for line in farm.lines(job_id, seen):
        print(line, flush=True)
    print(f"{job_id}: {state.state} — {state.done}/{state.segments} segments"
          + (f", failed shots: {', '.join(state.failed_shots)}" if state.failed_shots else "")
          + (f"; episode {state.episode}" if state.episode else ""), flush=True)
    return 0 if state.state == "done" else 1
