"""The entrypoint side of a submitted job: runs on the cluster, hands the plan to the farm service and
prints its progress (what `sakuga logs` shows) until the job is delivered, failed or cancelled."""
from __future__ import annotations

import getpass
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from farm.access.roots import confine
from farm.access.users import UserStore
from farm.api.protocol import JobRequest
from farm.workers.connect import check_cluster, connect
from storyboard.errors import InputError
from storyboard.plan import Plan

from .client import TOKEN_ENV
from .remote import ServiceFarm

logger = logging.getLogger(__name__)   # the job's log: what `sakuga logs` shows

FINAL = {"done", "failed", "cancelled"}


def submitter(claimed: str | None) -> str:
    """Whose job this is: the user whose token the job carries (checked against the farm's users on the
    head), else the OS user the submitting side named."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        user = UserStore().authenticate(token)
        if user is None:
            raise InputError.single(TOKEN_ENV, "this token is not a user's of this farm (see `sakuga users list` "
                                               "on the head)")
        return user.name
    return claimed or getpass.getuser()


def follow(plan: Plan, file: Path, job_id: str, priority: int, out: str | None, model: str | None,
           delivery: dict | None = None, owner: str | None = None) -> int:
    """`delivery`: the job's masters, profiles and upscaler (`farm.cli.options.delivery`)."""
    owner = submitter(owner)
    # under the owner's folder of the farm's root, never in Ray's temporary working dir
    folder = confine(out, owner, job_id)
    connect(address="auto")
    check_cluster(plan)
    folder.mkdir(parents=True, exist_ok=True)
    if plan.audio:   # the working dir goes away with this job: the soundtrack moves next to the output
        kept = folder / f"soundtrack{Path(plan.audio).suffix}"
        shutil.copyfile(plan.audio, kept)
        plan = replace(plan, audio=str(kept))
    assets = {ref: Path(path).read_bytes() for ref, path in plan.assets.items()}
    farm = ServiceFarm()
    config = {"source": str(file), "engine": model, "priority": priority, "submitted": True,
              "deliver": [], **(delivery or {})}
    state = farm.submit(JobRequest(plan, folder, priority, config, assets, job_id, owner=owner))
    job_id = state.id   # the folder's own job when it holds one: the same output continues it
    logger.info("%s: queued with priority %d, %d segments (%d reused), output %s", job_id, priority,
                state.segments, state.reused, folder)

    def stop(signum, frame):   # `sakuga cancel` (Ray's stop_job) sends SIGTERM
        farm.cancel(job_id)
        logger.info("%s: cancelled", job_id)
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    seen = 0
    while True:
        lines = farm.lines(job_id, seen)
        if not lines and seen and not farm.lines(job_id, 0):   # a restarted service has new lines only
            seen = 0
        for line in lines:
            logger.info("%s", line)
            seen += 1
        state = farm.job(job_id).summary
        if state.state in FINAL:
            break
        time.sleep(1.0)
    for line in farm.lines(job_id, seen):
        logger.info("%s", line)
    logger.info("%s: %s — %d/%d segments%s%s", job_id, state.state, state.done, state.segments,
                f", failed shots: {', '.join(state.failed_shots)}" if state.failed_shots else "",
                f"; episode {state.episode}" if state.episode else "")
    return 0 if state.state == "done" else 1
