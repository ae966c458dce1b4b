"""`sakuga status OUT`: a render's per-job and per-item (segment, delivery stage) state with its ETA,
read from its ledger."""
from __future__ import annotations

import time
from pathlib import Path

from farm.scheduling.eta import clock, eta_s

from .folder import JobFolder
from .recorded import require_job


def ledger_status(out: Path) -> str:
    recorded = require_job(JobFolder(out), "no ledger.sqlite here: not the output folder of a sakuga render")
    job, segments, attempts = recorded.job, recorded.segments, recorded.attempts
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
             "  " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f" of {_count(segments)}; "
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


def _count(rows: list[dict]) -> str:
    """"12 segments", or "12 segments and 18 stages" (delivery stages' ids are `<shot>@<profile>.<kind>`)."""
    stages = sum("@" in r["id"] for r in rows)
    return f"{len(rows) - stages} segments" + (f" and {stages} stages" if stages else "")
