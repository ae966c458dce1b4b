"""Joining Ray: the one place that calls `ray.init` (the CLI, the cluster entrypoint, the selftest
and the benches all come here), and asking the cluster's workers whether a plan's models load there."""
from __future__ import annotations

import logging
import os

import ray

from storyboard.errors import InputError, Problem
from storyboard.plan import Plan

from .actor import SegmentWorker

logger = logging.getLogger(__name__)


def connect(gpus: int = 0, address: str | None = None) -> None:
    """Join `address` ("auto": the cluster this process runs on), or start a local Ray with `gpus`
    logical GPUs; check there are at least `gpus` GPUs."""
    if not ray.is_initialized():
        if address:
            logger.debug("joining the Ray cluster at %s", address)
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        else:
            logger.debug("starting a local Ray with %d logical GPUs", gpus)
            ray.init(address="local", num_cpus=max(os.cpu_count() or 1, 1), num_gpus=gpus, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
    have = int(ray.cluster_resources().get("GPU", 0))
    if have < gpus:
        raise InputError.single("--gpus", f"asked for {gpus} GPUs but the Ray cluster has {have}")


def check_cluster(plan: Plan) -> None:
    """Ask a worker of the cluster whether it can load every preset of the plan (weights present)."""
    probe = SegmentWorker.options(num_gpus=0).remote("probe")
    try:
        problems = [p for pr in plan.presets.values() for p in ray.get(probe.check.remote(pr))]
    finally:
        ray.kill(probe)
    if problems:
        raise InputError([Problem(*p) for p in problems])
