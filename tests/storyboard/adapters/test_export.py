"""`sakuga import`: PV scripts and AniSora files become storyboard YAML that plans the same."""
import shutil
from pathlib import Path

import yaml

from storyboard.load import load
from storyboard.plan import build_plan

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def summary(plan):
    return [(s.id, s.frames, s.seed, s.prompt, s.hash, [c.frame for c in s.conditions]) for s in plan.segments]


def test_imported_pv_script_plans_exactly_like_the_script(tmp_path, sakuga):
    shutil.copytree(EXAMPLES / "pv", tmp_path / "pv")
    script = tmp_path / "pv" / "starlight.pv"
    out = tmp_path / "pv" / "starlight.yaml"
    result = sakuga("import", script, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith("# yaml-language-server: $schema=")
    assert summary(build_plan(load(out))) == summary(build_plan(load(script)))


def test_import_elsewhere_writes_absolute_paths_usable_with_an_asset_root(tmp_path, sakuga):
    out = tmp_path / "elsewhere" / "prompts.yaml"
    result = sakuga("import", EXAMPLES / "anisora" / "prompts.txt", "-o", out)
    assert result.exit_code == 0 and "--asset-root" in result.stderr
    starts = [s["start"] for s in yaml.safe_load(out.read_text())["scenes"][0]["shots"]]
    assert all(Path(p).is_absolute() for p in starts)
    assert sakuga("validate", out).exit_code == 2
    imported = build_plan(load(out, asset_roots=[EXAMPLES / "anisora"]))
    assert summary(imported) == summary(build_plan(load(EXAMPLES / "anisora" / "prompts.txt")))
