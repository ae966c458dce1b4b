"""Scheduling benchmark: every policy on every workload in bench/workloads/, in virtual time.

    python bench/schedule.py [--workloads bench/workloads] [--out bench/results/schedule.json]

For each workload it prints makespan, the lower bound max(critical path at best degree, best
GPU-seconds / GPUs), bound/makespan, and the baselines' makespans over the default policy's. It
checks every schedule against DESIGN.md's validity rules and the acceptance target: the default
policy beats both baselines on every workload and averages >= 0.9 of the lower bound (exit 1 if not).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farm.scheduling.check import check_schedule, lower_bound  # noqa: E402
from farm.scheduling.policy import DEFAULT, POLICIES, policy  # noqa: E402
from farm.scheduling.sim import simulate  # noqa: E402
from farm.scheduling.workload import load_workload  # noqa: E402

TARGET = 0.9


def run(path: Path) -> dict:
    workload = load_workload(path)
    bound = lower_bound(workload)
    row = {"workload": path.stem, "family": workload.family, "tasks": len(workload.tasks),
           "gpus": workload.cluster.total, **{k: round(v, 1) for k, v in bound.items()}, "policies": {}}
    for name in POLICIES:
        started = time.perf_counter()
        schedule = simulate(workload, policy(name))
        problems = check_schedule(workload, schedule)
        if problems:
            raise SystemExit(f"{path}: policy {name} made an invalid schedule: {problems[0]}")
        row["policies"][name] = {"makespan": round(schedule.makespan, 1),
                                 "bound_ratio": round(bound["lower_bound"] / schedule.makespan, 4),
                                 "decide_s": round(time.perf_counter() - started, 3)}
    ours = row["policies"][DEFAULT]["makespan"]
    row["baseline_over_default"] = {n: round(p["makespan"] / ours, 3) for n, p in row["policies"].items() if n != DEFAULT}
    return row


def main() -> int:
    root = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=Path, default=root / "workloads")
    ap.add_argument("--out", type=Path, default=root / "results" / "schedule.json")
    args = ap.parse_args()

    rows = [run(p) for p in sorted(args.workloads.glob("*.json"))]
    if not rows:
        raise SystemExit(f"no workloads in {args.workloads} (python bench/workloads.py writes them)")
    names = list(POLICIES)
    print(f"{'workload':<14}{'tasks':>6}{'bound s':>9}  " + "".join(f"{n + ' s':>11}" for n in names)
          + f"{'bound/' + DEFAULT:>17}  baselines/" + DEFAULT)
    for r in rows:
        p = r["policies"]
        print(f"{r['workload']:<14}{r['tasks']:>6}{r['lower_bound']:>9.0f}  "
              + "".join(f"{p[n]['makespan']:>11.0f}" for n in names)
              + f"{p[DEFAULT]['bound_ratio']:>17.3f}  "
              + ", ".join(f"{n} {v:.2f}x" for n, v in r["baseline_over_default"].items()))
    mean = sum(r["policies"][DEFAULT]["bound_ratio"] for r in rows) / len(rows)
    beats = all(v > 1.0 for r in rows for v in r["baseline_over_default"].values())
    ok = beats and mean >= TARGET
    print(f"{DEFAULT}: mean bound/makespan {mean:.3f} (target >= {TARGET}); "
          f"beats both baselines on every workload: {'yes' if beats else 'NO'} -> {'PASS' if ok else 'FAIL'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "default_policy": DEFAULT, "mean_bound_ratio": round(mean, 4), "beats_baselines": beats,
        "target": TARGET, "pass": ok, "python": platform.python_version(), "workloads": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
