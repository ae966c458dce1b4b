"""`sakuga status`: a render's per-job and per-segment state with its ETA, read from its ledger (or,
for a cluster job, from Ray's job record and the job's latest progress line)."""
from __future__ import annotations

import time
from pathlib import Path

from storyboard.errors import InputError

from .ledger import Ledger, LedgerError
from .progress import clock, eta_s


def ledger_status(out: Path) -> str:
    path = out / "ledger.sqlite"
    try:
        with Ledger(path) as ledger:
            jobs = ledger.jobs()
            if not jobs:
                raise InputError.single(path, "the ledger records no job")
            job = jobs[-1]
            segments = ledger.segments(job["id"])
            attempts = ledger.attempts(job["id"])
    except LedgerError as e:
        raise InputError.single(path, str(e)) from None
    published = {s["id"] for s in segments if s["status"] in ("published", "failed", "skipped")}
    last = {a["segment"]: a for a in attempts}
    rendered = [s for s in segments if s["status"] == "published" and (s["record"] or {}).get("origin") == "rendered"]
    estimated = sum(s["estimate_s"] for s in rendered)
    actual = sum((s["record"] or {}).get("render_s", 0) + (s["record"] or {}).get("encode_s", 0) for s in rendered)
    speed = actual / estimated if estimated else 1.0
    gpus = (job["config"] or {}).get("gpus") or 1
    eta = eta_s([(s["id"], tuple(s["deps"]), s["estimate_s"]) for s in segments], published, gpus, speed)
    counts = {}
    for s in segments:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    lines = [f"job {job['id']}: {job['status']}" + (f" ({job['detail']})" if job["detail"] else ""),
             f"  source {job['source']}",
             "  " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f" of {len(segments)} segments; "
             + (f"ETA {clock(eta)} on {gpus} GPU(s) by the cost model" if job["status"] in ("running", "interrupted")
                else f"updated {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(job['updated']))}")]
    for s in segments:
        a = last.get(s["id"])
        where = f" on {a['worker']}" if a else ""
        if (s["record"] or {}).get("origin") == "cache":
            where = " (from the segment cache)"
        note = f"  {s['error']}" if s["error"] and s["status"] != "published" else ""
        lines.append(f"  {s['id']:<28} {s['status']:<10} attempts {s['attempts']}{where}{note}")
    return "\n".join(lines)


def cluster_status(address: str | None, job: str) -> str:
    from .cluster import call

    info = call(address, "get_job_info", job)
    status = info.status.value if hasattr(info.status, "value") else str(info.status)
    progress = [line for line in call(address, "get_job_logs", job).splitlines() if line.startswith(f"[{job}]")]
    text = f"job {job}: {status}" + (f" ({info.message})" if info.message else "")
    return text + (f"\n  {progress[-1]}" if progress else "")
