"""Studio cluster client: submit renders through Ray's Job Submission API and follow them.

A submitted job ships the storyboard's folder as the Ray job's working dir; its entrypoint
(`sakuga run-job`) runs on the cluster, plans there, and hands the plan and pictures to the farm
service. Ray's own client carries the cluster's token auth (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token).
"""
from __future__ import annotations

import getpass
import os
import shlex
import time
import urllib.error
import urllib.request
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from farm.access.users import check_name
from farm.job.job import Job
from storyboard.errors import InputError
from storyboard.plan import Plan

from .errors import ClusterError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TOKEN_ENV = "SAKUGA_TOKEN"   # a user's token (`sakuga users add`): the job is theirs, not the OS user's
METADATA_KEY = "sakuga"


def address_or_default(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS
    return address if "://" in address else f"http://{address}"


def client(address: str | None, insecure: bool = False):
    if "RAY_AUTH_MODE" not in os.environ and _token_available():
        os.environ["RAY_AUTH_MODE"] = "token"   # send the token: the cluster may require it
    from ray.job_submission import JobSubmissionClient

    url = address_or_default(address)
    if not insecure:
        require_token_auth(url)
    try:
        return JobSubmissionClient(url)
    except Exception as e:   # noqa: BLE001 - connection, auth and version errors all end here
        raise ClusterError(f"cannot use the Ray cluster at {url}: {str(e).strip().splitlines()[0]}") from None


def require_token_auth(url: str, timeout_s: float = 10.0) -> None:
    """Refuse a cluster whose Job API answers without a token: anyone who reaches it could run code as
    the farm's user. Asked with no token at all: 401 or 403 means the cluster enforces auth."""
    request = urllib.request.Request(f"{url.rstrip('/')}/api/jobs/", method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return
        raise ClusterError(f"the Ray cluster at {url} answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ClusterError(f"cannot use the Ray cluster at {url}: {getattr(e, 'reason', e)}") from None
    raise ClusterError(f"the Ray cluster at {url} does not require a token: anyone who reaches it can run "
                       "code there. Start it with RAY_AUTH_MODE=token (docs/farm.md), or pass --insecure "
                       "to use it anyway")


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def submit(file: Path, plan: Plan, *, address: str | None, priority: int, out: str | None,
           model: str | None, deliver: list[str] = (), upscaler: str | None = None, insecure: bool = False,
           speed: list[str] = ()) -> str:
    """Submit one storyboard; its folder (with every picture it names) becomes the job's working dir."""
    folder = file.resolve().parent
    outside = sorted(p for p in list(plan.assets.values()) + ([plan.audio] if plan.audio else [])
                     if not Path(p).resolve().is_relative_to(folder))
    if outside:
        raise InputError.single(file, f"`sakuga submit` ships the storyboard's folder {folder}; "
                                      f"{outside[0]} lies outside it (move it in, or render with --address)")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        check_name(getpass.getuser(), "user")   # it names the output's folder on the cluster
    job_id = Job.new_id(file.stem)
    command = ["sakuga", "run-job", file.name, "--job-id", job_id, "--priority", str(priority)]
    command += [] if token else ["--owner", getpass.getuser()]   # a token names its user on the cluster
    command += ["--out", out] if out else []
    command += ["--model", model] if model else []
    command += [arg for m in deliver for arg in ("--deliver", m)]
    command += ["--upscaler", upscaler] if upscaler else []
    command += [arg for s in speed for arg in ("--speed", s)]
    c = client(address, insecure)
    check_runtime(c, address_or_default(address))
    try:
        return c.submit_job(entrypoint=shlex.join(command), submission_id=job_id,
                            runtime_env={"working_dir": str(folder), **({"env_vars": {TOKEN_ENV: token}} if token else {})},
                            metadata={METADATA_KEY: "1", "priority": str(priority), "source": file.name})
    except Exception as e:   # noqa: BLE001
        raise ClusterError(f"the cluster refused the job: {str(e).strip().splitlines()[0]}") from None


_checked: set[str] = set()   # clusters this process has seen run its sakuga (a batch asks once)


def check_runtime(c, url: str, timeout_s: float = 120.0) -> None:
    """Before queueing: can the cluster run this sakuga? A tiny job (no CPU reserved) prints the
    version its nodes have; a missing or different sakuga is refused saying how to provide it."""
    if url in _checked:
        return
    ours = sakuga_version()
    how = (f"install sakuga=={ours} on every node of the cluster (its image, or pip on each), or start the "
           "cluster with a runtime_env that installs it (docs/farm.md: ray start and KubeRay)")
    try:
        probe = c.submit_job(entrypoint="sakuga version", entrypoint_num_cpus=0, metadata={"sakuga-probe": "1"})
        deadline = time.time() + timeout_s
        while (status := str(getattr(c.get_job_status(probe), "value", c.get_job_status(probe)))) not in (
                "SUCCEEDED", "FAILED", "STOPPED"):
            if time.time() > deadline:
                raise ClusterError(f"the cluster at {url} did not run a 1-second check job within {timeout_s:.0f} s "
                                   "(no free CPU for entrypoints?)")
            time.sleep(0.5)
        lines = c.get_job_logs(probe).strip().splitlines()
    except ClusterError:
        raise
    except Exception as e:   # noqa: BLE001 - the Job API's errors, all of them one line for the user
        raise ClusterError(f"the cluster refused a check job: {str(e).strip().splitlines()[0]}") from None
    last = lines[-1].strip() if lines else ""
    if status != "SUCCEEDED":
        raise ClusterError(f"the cluster at {url} cannot run sakuga ({last or status}): {how}")
    if last != ours:
        raise ClusterError(f"the cluster at {url} runs sakuga {last}, this is sakuga {ours}: {how}")
    _checked.add(url)


def sakuga_version() -> str:
    try:
        return version("sakuga")
    except PackageNotFoundError:
        return "dev"


def sakuga_jobs(address: str | None, insecure: bool = False) -> list:
    return [j for j in client(address, insecure).list_jobs() if (j.metadata or {}).get(METADATA_KEY)]


def call(address: str | None, method: str, job: str, *args, insecure: bool = False):
    c = client(address, insecure)
    try:
        return getattr(c, method)(job, *args)
    except RuntimeError as e:
        raise ClusterError(str(e).strip().splitlines()[0]) from None
