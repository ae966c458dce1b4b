"""Scheduling benchmark: the policies on every workload in bench/workloads/ and on generated ones, in
virtual time, with and without preemption, and the default policy's decision time as the farm grows.

    python bench/schedule.py [--workloads bench/workloads] [--out bench/results/schedule.json] [--seeds 8]

Per workload it prints makespan, the lower bound max(critical path at best degree, best GPU-seconds /
GPUs), bound/makespan for each policy and for the default one preempting (`--preempt`), and the most
urgent job's flow time (last end - release) over its standalone bound. Every schedule is checked
against DESIGN.md's validity rules. Then the same families generated with seeds 3.. (`--seeds`), and
decision time per round on PV batches of 16, 64 and 128 nodes x 8 GPUs (about 19 segments a node):
the policy's own time, not the simulator's. Exit 1 if a schedule is invalid or the default policy
does not beat both baselines on every stored workload with a mean bound/makespan of at least 0.9.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workloads import FAMILIES, generate, pv_fleet  # noqa: E402
from farm.scheduling.check import check_schedule, flow, lower_bound, urgent_job  # noqa: E402
from farm.scheduling.policy import DEFAULT, POLICIES, policy  # noqa: E402
from farm.scheduling.sim import simulate  # noqa: E402
from farm.scheduling.workload import Workload, load_workload  # noqa: E402

TARGET = 0.9          # mean bound/makespan of the default policy (the first round's acceptance)
FAMILY_TARGET = 0.93  # every family, with and without preemption (issue 18)
FLOW_TARGET = 1.25    # the urgent job's flow over its standalone bound, preempting
DECISION_MS = 20.0    # per round at 128 nodes
SCALES = (16, 64, 128)


def run(workload: Workload, name: str) -> dict:
    bound = lower_bound(workload)
    row = {"workload": name, "family": workload.family, "tasks": len(workload.tasks), "gpus": workload.cluster.total,
           **{k: round(v, 1) for k, v in bound.items()}, "policies": {}}
    job = urgent_job(workload)
    for label, name_, preempt in [(n, n, False) for n in POLICIES] + [(DEFAULT + "+preempt", DEFAULT, True)]:
        started = time.perf_counter()
        schedule = simulate(workload, policy(name_), preempt=preempt)
        problems = check_schedule(workload, schedule)
        if problems:
            raise SystemExit(f"{name}: policy {label} made an invalid schedule: {problems[0]}")
        entry = {"makespan": round(schedule.makespan, 1),
                 "bound_ratio": round(bound["lower_bound"] / schedule.makespan, 4),
                 "simulate_s": round(time.perf_counter() - started, 3),
                 "stopped_tasks": len({a.id for a in schedule.assignments if a.steps is not None})}
        if job is not None:
            entry["urgent_flow_ratio"] = round(flow(workload, schedule, job)["ratio"], 4)
        row["policies"][label] = entry
    if job is not None:
        row["urgent_job"] = job
        row["urgent_standalone_bound"] = round(flow(workload, schedule, job)["standalone_bound"], 1)
    ours = row["policies"][DEFAULT]["makespan"]
    row["baseline_over_default"] = {n: round(row["policies"][n]["makespan"] / ours, 3) for n in POLICIES if n != DEFAULT}
    return row


def as_workload(doc: dict) -> Workload:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        return load_workload(Path(f.name))
    finally:
        Path(f.name).unlink()


def scaling() -> list[dict]:
    """Decision time per round of the default policy (preempting) on PV batches as the farm grows."""
    out = []
    for nodes in SCALES:
        w = as_workload(pv_fleet(nodes))
        started = time.perf_counter()
        schedule = simulate(w, policy(DEFAULT), preempt=True)
        wall = time.perf_counter() - started
        later = [d * 1e3 for d in schedule.decisions[1:]] or [schedule.decisions[0] * 1e3]   # after the plan
        ms = sorted(d * 1e3 for d in schedule.decisions)
        out.append({"nodes": nodes, "gpus": w.cluster.total, "tasks": len(w.tasks), "rounds": len(ms),
                    "first_round_ms": round(schedule.decisions[0] * 1e3, 2),
                    "mean_ms": round(statistics.mean(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
                    "mean_after_first_ms": round(statistics.mean(later), 3), "max_after_first_ms": round(max(later), 3),
                    "us_per_task_node": round(statistics.mean(ms) * 1e3 / (len(w.tasks) * nodes), 4),
                    "simulate_s": round(wall, 2), "bound_ratio": round(lower_bound(w)["lower_bound"] / schedule.makespan, 4)})
    return out


def print_rows(rows: list[dict]) -> None:
    names = list(POLICIES) + [DEFAULT + "+preempt"]
    print(f"{'workload':<14}{'tasks':>6}{'bound s':>9}  " + "".join(f"{n:>18}" for n in names) + "   urgent flow/bound")
    for r in rows:
        p = r["policies"]
        flows = "" if "urgent_job" not in r else (f"   {p[DEFAULT]['urgent_flow_ratio']:.2f} -> "
                                                  f"{p[DEFAULT + '+preempt']['urgent_flow_ratio']:.2f} preempting")
        print(f"{r['workload']:<14}{r['tasks']:>6}{r['lower_bound']:>9.0f}  "
              + "".join(f"{p[n]['makespan']:>10.0f} ({p[n]['bound_ratio']:.3f})" for n in names) + flows)


def families(rows: list[dict]) -> dict:
    """Per family: the worst bound/makespan without and with preemption, and the worst urgent flow."""
    out: dict[str, dict] = {}
    for r in rows:
        f = out.setdefault(r["family"], {"bound_ratio": 1.0, "bound_ratio_preempt": 1.0})
        f["bound_ratio"] = min(f["bound_ratio"], r["policies"][DEFAULT]["bound_ratio"])
        f["bound_ratio_preempt"] = min(f["bound_ratio_preempt"], r["policies"][DEFAULT + "+preempt"]["bound_ratio"])
        if "urgent_job" in r:
            for key, label in (("urgent_flow_ratio", DEFAULT), ("urgent_flow_ratio_preempt", DEFAULT + "+preempt")):
                f[key] = max(f.get(key, 0.0), r["policies"][label]["urgent_flow_ratio"])
    return out


def main() -> int:
    root = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=Path, default=root / "workloads")
    ap.add_argument("--out", type=Path, default=root / "results" / "schedule.json")
    ap.add_argument("--seeds", type=int, default=8, help="generated workloads per family (seeds 3..)")
    args = ap.parse_args()

    rows = [run(load_workload(p), p.stem) for p in sorted(args.workloads.glob("*.json"))]
    if not rows:
        raise SystemExit(f"no workloads in {args.workloads} (python bench/workloads.py writes them)")
    print_rows(rows)
    generated = [run(as_workload(generate(f, seed)), f"{f}-s{seed}") for f in FAMILIES for seed in range(3, 3 + args.seeds)]
    print(f"\ngenerated, seeds 3..{2 + args.seeds}:")
    print_rows(generated)
    scale = scaling()
    print("\ndecision time per round (default policy, preempting), PV batches:")
    for s in scale:
        print(f"  {s['nodes']:>4} nodes x 8: {s['tasks']:>5} tasks, {s['rounds']:>4} rounds: mean {s['mean_ms']:.2f} ms, "
              f"p95 {s['p95_ms']:.2f} ms, first round (planning) {s['first_round_ms']:.1f} ms; "
              f"{s['us_per_task_node']:.4f} us per task x node")

    mean = sum(r["policies"][DEFAULT]["bound_ratio"] for r in rows) / len(rows)
    beats = all(v > 1.0 for r in rows for v in r["baseline_over_default"].values())
    ok = beats and mean >= TARGET
    stored, made = families(rows), families(generated)
    print(f"\n{DEFAULT}: mean bound/makespan {mean:.3f} (target >= {TARGET}); beats both baselines on every "
          f"workload: {'yes' if beats else 'NO'} -> {'PASS' if ok else 'FAIL'}")
    for label, fams in (("stored", stored), ("generated", made)):
        for fam, f in fams.items():
            flows = ""
            if "urgent_flow_ratio_preempt" in f:
                flows = (f"; worst urgent flow/bound {f['urgent_flow_ratio']:.2f}, preempting "
                         f"{f['urgent_flow_ratio_preempt']:.2f} (target <= {FLOW_TARGET})")
            print(f"  {label:<9} {fam:<9} worst bound/makespan {f['bound_ratio']:.3f}, preempting "
                  f"{f['bound_ratio_preempt']:.3f} (target >= {FAMILY_TARGET}){flows}")
    print(f"  decision time at {SCALES[-1]} nodes: mean {scale[-1]['mean_ms']:.2f} ms (target < {DECISION_MS} ms)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "default_policy": DEFAULT, "mean_bound_ratio": round(mean, 4), "beats_baselines": beats,
        "target": TARGET, "pass": ok, "python": platform.python_version(), "machine": platform.machine(),
        "targets": {"family_bound_ratio": FAMILY_TARGET, "urgent_flow_ratio": FLOW_TARGET, "decision_ms": DECISION_MS},
        "families": stored, "generated_families": made, "scaling": scale,
        "workloads": rows, "generated": generated}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
