"""`sakuga status JOB` for a cluster job: Ray's job record and the job's latest progress line."""
from __future__ import annotations

from .client import call


def cluster_status(address: str | None, job: str, insecure: bool = False) -> str:
    info = call(address, "get_job_info", job, insecure=insecure)
    status = info.status.value if hasattr(info.status, "value") else str(info.status)
    progress = [line for line in call(address, "get_job_logs", job, insecure=insecure).splitlines() if line.startswith(f"[{job}]")]
    text = f"job {job}: {status}" + (f" ({info.message})" if info.message else "")
    return text + (f"\n  {progress[-1]}" if progress else "")
