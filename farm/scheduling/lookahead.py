"""Choosing a class's gang sizes by trying them in the simulator.

CPA's rule (widen the critical path while it is longer than the work spread over the GPUs) does not
see that gangs must share nodes: it may give two chains a whole node each at the moment a third needs
one. So for a class of dependent work the policy tries a few allocations (CPA with its threshold
tighter and looser, every task at one degree) in the discrete-event simulator, as if the class had the
cluster alone once the GPUs it cannot take are free (work of other classes until it ends; with
preemption, lower-priority work only until its next step boundary), and keeps the one that ends first
(then the one using fewer GPU-seconds). This happens when work arrives, not every round, and only for
classes of at most `MAX_TASKS` tasks (`MAX_INDEPENDENT` without dependencies): past that, CPA's plan
stands (a plan must stay cheap). Then a
local search (a few random allocations, then stochastic hill climbing, seeded: the same plan on every machine) changes one to three
tasks' degrees at a time and keeps what ends sooner, within a budget of simulations.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import replace

from .sim import simulate
from .tasks import Cluster, Policy, Running, Task
from .workload import Workload

logger = logging.getLogger(__name__)

MAX_TASKS = 400
MAX_INDEPENDENT = 100   # a batch of independent shots: past this its packing order does the work
STRETCHES = (0.5, 0.75, 1.0, 1.5)
BUDGET = 200        # simulations at most, and at most WORK simulated tasks in all: a plan stays under ~1 s
WORK = 4000
EXPLORE = 0.25      # the share of the budget spent on allocations drawn at random before climbing


def candidates(tasks: list[Task], cpa: Callable[[float], dict[str, int]], widest: int) -> list[dict[str, int]]:
    """The allocations worth trying: CPA at several thresholds, then CPA with its critical path at
    its fastest, then one degree for everything."""
    out = [cpa(s) for s in STRETCHES]
    levels = sorted({d for t in tasks for d in t.degrees(widest)})
    for d in levels:
        out.append({t.id: max([g for g in t.degrees(widest) if g <= d] or [min(t.runtime)]) for t in tasks})
    unique = []
    for c in out:
        if c not in unique:
            unique.append(c)
    return unique


def best(tasks: list[Task], cluster: Cluster, now: float, options: list[dict[str, int]],
         make: Callable[[dict[str, int]], Policy], busy: tuple[Running, ...] = ()) -> dict[str, int]:
    """The allocation of `options` whose simulated schedule of `tasks` ends first, on the cluster as
    it is now: `busy` holds GPUs until each one's end (times from now)."""
    if len(options) == 1:
        return options[0]
    ids = {t.id for t in tasks}
    alone = [replace(t, deps=tuple(d for d in t.deps if d in ids), release=max(t.release - now, 0.0))
             for t in tasks]
    workload = Workload(cluster, alone)

    def score(degree: dict[str, int]) -> tuple[float, float]:
        """When the class ends, then the mean end of its tasks (progress breaks ties on plateaus)."""
        ends = [a.end for a in simulate(workload, make(degree), busy=busy).assignments]
        return round(max(ends), 6), round(sum(ends) / len(ends), 6)

    scored = [(score(d), i) for i, d in enumerate(options)]
    (value, i) = min(scored)
    degree = dict(options[i])
    # random allocations, then stochastic hill climbing (one to three tasks' degrees changed, kept when
    # the class ends sooner). The seed is fixed, so a plan is the same on every machine.
    rng = random.Random(len(tasks))
    budget = start = min(BUDGET, WORK // len(tasks))
    allowed = {t.id: t.degrees(cluster.widest) for t in tasks}
    ids = sorted(allowed)
    while budget > 0:
        budget -= 1
        if budget >= start * (1 - EXPLORE):     # first, allocations drawn at random (a wide look)
            trial = {tid: rng.choice(allowed[tid]) for tid in ids}
        else:
            trial = dict(degree)
            for tid in rng.sample(ids, min(len(ids), rng.choice((1, 1, 2, 3)))):
                trial[tid] = rng.choice(allowed[tid])
        if trial == degree:
            continue
        got = score(trial)
        if got < value:
            degree, value = trial, got
    logger.debug("lookahead: %d tasks, %d allocations tried, ends at %.1f s (the best candidate's: %.1f s)",
                 len(tasks), len(options) + start - budget, value[0], min(scored)[0][0])
    return degree
