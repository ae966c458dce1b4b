"""Step-level preemption and elastic width in virtual time: urgent work takes GPUs at the running
work's next step boundary, the stopped work resumes (at any degree) for what is left plus a restart,
the schedule's parts are valid by DESIGN.md's rules, and `bench schedule --preempt` / `--check`."""
from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from farm.scheduling.check import check_schedule, flow, lower_bound
from farm.scheduling.packing import multifit
from farm.scheduling.policy import Cluster, Moldable, Running, Task, policy
from farm.scheduling.preemption import MAX_PREEMPTIONS
from farm.scheduling.sim import Assignment, Schedule, simulate
from farm.scheduling.workload import Workload


def batch_and_urgent(release: float = 100.0) -> Workload:
    """One node of 4 GPUs full of long low-priority work, then a short urgent chain."""
    batch = [Task(f"batch/{i}", {1: 800.0}, job="batch", priority=-1) for i in range(4)]
    urgent = [Task("urgent/a", {1: 40.0, 2: 22.0, 4: 12.0}, job="urgent", priority=10, release=release),
              Task("urgent/b", {1: 40.0, 2: 22.0, 4: 12.0}, ("urgent/a",), job="urgent", priority=10, release=release)]
    return Workload(Cluster.uniform(1, 4), batch + urgent)


def test_urgent_work_starts_at_the_next_step_boundary_and_the_batch_resumes_for_what_is_left():
    w = batch_and_urgent()
    waiting = simulate(w, policy("moldable"))
    preempting = simulate(w, policy("moldable"), preempt=True)
    assert check_schedule(w, preempting) == []
    first = min(a.start for a in preempting.assignments if a.id.startswith("urgent"))
    # 800 s over 8 steps: a boundary every 100 s; the urgent chain was released at 100 s, on one
    assert first <= 100.0 + 100.0 + 1e-6
    assert flow(w, preempting, "urgent")["flow"] < flow(w, waiting, "urgent")["flow"] / 3
    parts = [a for a in preempting.assignments if a.id.startswith("batch")]
    assert all(a.steps is not None for a in parts)
    for tid in {a.id for a in parts}:
        mine = sorted((a for a in parts if a.id == tid), key=lambda a: a.start)
        assert mine[0].steps[0] == 0 and mine[-1].steps[1] == 8
        # a resumed part pays the restart on top of its share of the runtime, nothing more
        for a in mine[1:]:
            share = 800.0 * (a.steps[1] - a.steps[0]) / 8
            assert a.end - a.start == pytest.approx(share + w.restart_s)


def test_without_preemption_nothing_is_stopped():
    w = batch_and_urgent()
    schedule = simulate(w, policy("moldable"))
    assert all(a.steps is None for a in schedule.assignments)
    assert min(a.start for a in schedule.assignments if a.id.startswith("urgent")) == pytest.approx(800.0)


def test_a_task_is_stopped_at_most_twice_however_much_urgent_work_arrives():
    batch = [Task(f"batch/{i}", {1: 800.0}, job="batch", priority=-1) for i in range(2)]
    waves = [Task(f"u{k}/x", {1: 30.0, 2: 20.0}, job=f"u{k}", priority=10, release=50.0 + 150.0 * k) for k in range(6)]
    w = Workload(Cluster.uniform(1, 2), batch + waves)
    schedule = simulate(w, policy("moldable"), preempt=True)
    assert check_schedule(w, schedule) == []
    for tid in ("batch/0", "batch/1"):
        assert len([a for a in schedule.assignments if a.id == tid]) <= MAX_PREEMPTIONS + 1


def test_a_long_last_task_grows_onto_gpus_that_went_idle():
    # a plan that put every task on one GPU (as packing does): once the short ones end, the long one
    # is stopped at a boundary and resumed on all four GPUs of its node
    tasks = [Task(f"s{i}", {1: 50.0, 4: 15.0}) for i in range(3)] + [Task("long", {1: 400.0, 2: 210.0, 4: 110.0})]
    w = Workload(Cluster.uniform(1, 4), tasks)
    one_gpu = {t.id: 1 for t in tasks}
    alone = simulate(w, Moldable(one_gpu))
    grown = simulate(w, Moldable(one_gpu), preempt=True)
    assert check_schedule(w, grown) == []
    long = sorted((a for a in grown.assignments if a.id == "long"), key=lambda a: a.start)
    assert len(long) == 2 and len(long[0].gpus) == 1 and len(long[1].gpus) == 4
    assert grown.makespan < alone.makespan == pytest.approx(400.0)


def test_the_next_step_boundary_counts_the_restart_of_a_resumed_part():
    task = Task("t", {2: 80.0}, steps=8, done=4, restart_s=10.0)
    r = Running(task, 0, (0, 1), 100.0, 100.0 + task.time(2))
    assert task.time(2) == pytest.approx(80.0 * 4 / 8 + 10.0)
    assert r.next_boundary(100.0) == (5, pytest.approx(120.0))      # after the restart, one step of 10 s
    assert r.next_boundary(125.0) == (6, pytest.approx(130.0))
    assert r.next_boundary(149.0) == (8, pytest.approx(150.0))


@pytest.mark.parametrize("break_it, message", [
    (lambda p: [replace(p[0], steps=(0, 3)), p[1]], "tile"),
    (lambda p: [p[0], replace(p[1], end=p[1].start + 1.0)], "less than"),
    (lambda p: [p[0], replace(p[1], start=p[0].end - 5.0)], "starts before part 0 ends"),
    (lambda p: [replace(p[0], steps=None), p[1]], "runs twice"),
])
def test_check_schedule_refuses_parts_that_do_not_tile_or_are_too_short(break_it, message):
    w = batch_and_urgent()
    schedule = simulate(w, policy("moldable"), preempt=True)
    stopped = next(a.id for a in schedule.assignments if a.steps is not None)
    parts = sorted((a for a in schedule.assignments if a.id == stopped), key=lambda a: a.start)[:2]
    others = [a for a in schedule.assignments if a.id != stopped or a not in parts]
    broken = Schedule(schedule.policy, schedule.makespan, others + break_it(parts))
    assert any(message in p for p in check_schedule(w, broken))


def test_multifit_packs_no_worse_than_longest_first_and_its_order_realises_the_packing():
    rng = random.Random(5)
    for _ in range(20):
        sizes = [rng.uniform(50, 600) for _ in range(rng.randint(10, 60))]
        gpus = rng.choice([4, 8, 16])
        starts = multifit(sizes, gpus)
        loads = sorted([0.0] * gpus)
        for s in sorted(sizes, reverse=True):    # longest first on the least loaded GPU
            loads[0] += s
            loads.sort()
        packed = max(s + t for s, t in zip(starts, sizes))
        assert packed <= loads[-1] + 1e-6
        # the policy starts them in that order: list scheduling gives the packing back
        tasks = [Task(f"t{i}", {1: s}) for i, s in enumerate(sizes)]
        schedule = simulate(Workload(Cluster.uniform(1, gpus), tasks), policy("moldable"))
        assert schedule.makespan == pytest.approx(packed, abs=1e-6) or schedule.makespan <= packed + 1e-6


def test_a_plan_is_the_same_every_time():
    w = batch_and_urgent()
    first, second = (simulate(w, policy("moldable"), preempt=True) for _ in range(2))
    assert first.assignments == second.assignments


def test_bench_schedule_preempt_prints_parts_and_check_validates_them(tmp_path, sakuga):
    w = batch_and_urgent()
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"cluster": {"nodes": 1, "gpus_per_node": 4}, "preempt": {"restart_s": 10},
                                "tasks": [{"id": t.id, "job": t.job, "priority": t.priority, "release": t.release,
                                           "deps": list(t.deps), "runtime": {str(k): v for k, v in t.runtime.items()}}
                                          for t in w.tasks]}))
    result = sakuga("bench", "schedule", path, "--preempt", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    stepped = [a for a in out["assignments"] if "steps" in a]
    assert stepped and all(set(a) == {"id", "node", "gpus", "start", "end", "steps"} for a in stepped)
    schedule = tmp_path / "s.json"
    schedule.write_text(result.stdout)
    assert sakuga("bench", "schedule", path, "--check", schedule).exit_code == 0
    out["assignments"] = [a for a in out["assignments"] if a is not stepped[0]]
    schedule.write_text(json.dumps(out))
    refused = sakuga("bench", "schedule", path, "--check", schedule)
    assert refused.exit_code == 1 and "invalid" in refused.stderr
    text = sakuga("bench", "schedule", path, "--preempt")
    assert "job urgent (most urgent): flow" in text.stdout and "stopped at a step boundary" in text.stdout


def test_the_lower_bound_still_holds_with_preemption():
    for seed in range(3):
        rng = random.Random(seed)
        tasks = [Task(f"b{i}", {1: rng.uniform(200, 600), 2: rng.uniform(120, 330)}, job="b", priority=-1)
                 for i in range(12)]
        tasks += [Task(f"u{i}", {1: 60.0, 2: 33.0, 4: 19.0}, (f"u{i - 1}",) if i else (), job="u", priority=5,
                       release=150.0) for i in range(4)]
        w = Workload(Cluster.uniform(2, 4), tasks)
        schedule = simulate(w, policy("moldable"), preempt=True)
        assert check_schedule(w, schedule) == []
        assert schedule.makespan >= lower_bound(w)["lower_bound"] - 1e-6
        assert flow(w, schedule, "u")["ratio"] >= 1.0 - 1e-9


def test_a_schedule_with_a_missing_part_is_invalid():
    w = batch_and_urgent()
    a = Assignment("batch/0", 0, (0,), 0.0, 400.0, (0, 4))
    assert any("batch/0 runs steps [0, 4) of 8" in p for p in check_schedule(w, Schedule("x", 400.0, [a])))
