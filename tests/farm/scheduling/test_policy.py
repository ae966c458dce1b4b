"""The scheduling policies in virtual time: validity, moldability, priorities, and `sakuga bench schedule`."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from farm.scheduling.check import check_schedule, lower_bound
from farm.scheduling.policy import (
    POLICIES,
    Cluster,
    Moldable,
    Running,
    Task,
    View,
    policy,
)
from farm.scheduling.sim import simulate
from farm.scheduling.workload import Workload

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))
import workloads  # noqa: E402


def scaling(one: float) -> dict[int, float]:
    """A sequence-parallel task: near-linear to 2, then diminishing."""
    return {1: one, 2: one / 1.9, 4: one / 3.4, 8: one / 5.6}


def as_workload(data: dict) -> Workload:
    tasks = [Task(t["id"], {int(k): v for k, v in t["runtime"].items()}, tuple(t["deps"]), t["job"],
                  t["priority"], t["release"]) for t in data["tasks"]]
    return Workload(Cluster.uniform(data["cluster"]["nodes"], data["cluster"]["gpus_per_node"]), tasks)


@pytest.mark.parametrize("family", list(workloads.FAMILIES))
def test_every_policy_makes_a_valid_schedule_on_every_family(family):
    w = as_workload(workloads.generate(family, 7))
    for name in POLICIES:
        schedule = simulate(w, policy(name))
        assert check_schedule(w, schedule) == []
        assert schedule.makespan >= lower_bound(w)["lower_bound"] - 1e-6


def test_the_default_policy_beats_both_baselines_on_random_dags():
    rng = random.Random(11)
    for _ in range(5):
        tasks = []
        for i in range(40):
            deps = tuple(f"t{j}" for j in rng.sample(range(i), k=min(i, rng.choice([0, 0, 1, 2]))))
            tasks.append(Task(f"t{i}", scaling(rng.uniform(20, 200)), deps))
        w = Workload(Cluster.uniform(2, 4), tasks)
        ours = simulate(w, policy("moldable")).makespan
        assert ours < simulate(w, policy("fifo1")).makespan
        assert ours < simulate(w, policy("node")).makespan


def test_a_lone_chain_gets_the_widest_gangs():
    tasks = [Task(f"c{i}", scaling(100.0), (f"c{i - 1}",) if i else ()) for i in range(6)]
    w = Workload(Cluster.uniform(1, 8), tasks)
    schedule = simulate(w, Moldable())
    assert {len(a.gpus) for a in schedule.assignments} == {8}
    assert schedule.makespan == pytest.approx(lower_bound(w)["critical_path"])


def test_independent_work_packs_onto_single_gpus():
    tasks = [Task(f"i{i}", scaling(100.0)) for i in range(32)]
    w = Workload(Cluster.uniform(2, 8), tasks)
    schedule = simulate(w, Moldable())
    assert {len(a.gpus) for a in schedule.assignments} == {1}
    assert schedule.makespan == pytest.approx(200.0)          # two full waves: the area bound


def test_gangs_stay_on_one_node_and_use_only_listed_degrees():
    tasks = [Task(f"c{i}", {1: 90.0, 4: 30.0}, (f"c{i - 1}",) if i else ()) for i in range(4)]
    tasks += [Task(f"x{i}", {1: 50.0, 2: 27.0}) for i in range(6)]
    w = Workload(Cluster((4, 2)), tasks)
    schedule = simulate(w, Moldable())
    assert check_schedule(w, schedule) == []
    for a in schedule.assignments:
        assert len(a.gpus) in {1, 4} if a.id.startswith("c") else len(a.gpus) in {1, 2}
        assert a.node == 0 or len(a.gpus) <= 2


def test_an_urgent_job_released_later_goes_before_the_waiting_batch():
    batch = [Task(f"batch/{i}", {1: 100.0}, job="batch", priority=-1) for i in range(40)]
    urgent = [Task(f"urgent/{i}", {1: 30.0}, job="urgent", priority=10, release=150.0) for i in range(4)]
    w = Workload(Cluster.uniform(1, 4), batch + urgent)
    schedule = simulate(w, Moldable())
    start = {a.id: a.start for a in schedule.assignments}
    assert all(start[f"urgent/{i}"] == 200.0 for i in range(4))   # the first GPUs free after release
    assert all(start[t.id] < 200.0 or start[t.id] >= 230.0 for t in batch)


def test_workers_holding_the_model_are_preferred():
    task = Task("t", {1: 10.0}, model="anisora-v3")
    view = View(0.0, Cluster.uniform(1, 4), {0: [0, 1, 2, 3]}, [task],
                resident={(0, 2): {"anisora-v3"}, (0, 1): {"other"}})
    [start] = Moldable().decide(view)
    assert start.gpus == (2,)


def test_a_task_waits_for_its_gang_rather_than_crawling_on_one_gpu():
    # 3 of 4 GPUs busy for 5 more seconds: waiting for 4 GPUs (5 + 20) beats one GPU now (80)
    chain = Task("c", {1: 80.0, 4: 20.0})
    follow = Task("d", {1: 80.0, 4: 20.0}, deps=("c",))
    busy = Running(Task("b", {3: 5.0}), 0, (0, 1, 2), 0.0, 5.0)
    view = View(0.0, Cluster.uniform(1, 4), {0: [3]}, [chain], [follow], [busy])
    assert Moldable().decide(view) == []


def test_bench_schedule_prints_the_design_format(tmp_path, sakuga):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workloads.generate("chains", 3)))
    result = sakuga("bench", "schedule", path, "--json", "--policy", "node")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert set(out) == {"policy", "makespan", "assignments"} and out["policy"] == "node"
    assert set(out["assignments"][0]) == {"id", "node", "gpus", "start", "end"}
    w = as_workload(json.loads(path.read_text()))
    assert len(out["assignments"]) == len(w.tasks)
    assert out["makespan"] == max(a["end"] for a in out["assignments"])


@pytest.mark.parametrize("text, line, message", [
    ('{"cluster": {"nodes": 1, "gpus_per_node": 4},\n "tasks": [{"id": "a", "runtime": {"1": 5}, "dep": []}]}',
     2, "unknown field `dep` (did you mean `deps`?)"),
    ('{"cluster": {"nodes": 1, "gpus_per_node": 4},\n "tasks": [{"id": "a", "runtime": {"8": 5}}]}',
     2, "degree 8 does not fit a node of 4 GPUs"),
    ('{"cluster": {"nodes": 1, "gpus_per_node": 4},\n "tasks": [{"id": "a", "runtime": {"1": 5}},\n'
     '  {"id": "b", "runtime": {"1": 5}, "deps": ["zz"]}]}', 3, "unknown task 'zz'"),
    ('{"cluster": {"nodes": 1, "gpus_per_node": 4},\n "tasks": [{"id": "a", "runtime": {"1": 5}, "deps": ["b"]},\n'
     '  {"id": "b", "runtime": {"1": 5}, "deps": ["a"]}]}', 2, "dependency cycle: a → b → a"),
    ('{"cluster": {"nodes": 1, "gpus_per_node": 4},\n "tasks": [{"id": "a", "runtime": {"1": -5}}]}',
     2, "greater than 0"),
])
def test_a_bad_workload_is_reported_at_its_line(tmp_path, sakuga, text, line, message):
    path = tmp_path / "w.json"
    path.write_text(text)
    result = sakuga("bench", "schedule", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{path}:{line}:" in result.stderr and message in result.stderr
