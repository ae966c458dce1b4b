"""The workload generator reproduces the stored scheduling workloads (bench/workloads/*.json) exactly:
a change to the cost model that would retime them has to be made there on purpose."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import workloads  # noqa: E402


@pytest.mark.parametrize("family", list(workloads.FAMILIES))
def test_the_generator_gives_the_stored_workloads(family):
    for tag, seed in workloads.SEEDS.items():
        stored = json.loads((ROOT / "bench" / "workloads" / f"{family}-{tag}.json").read_text())
        assert workloads.generate(family, seed)["tasks"] == stored["tasks"], f"{family}-{tag}"
