"""The storyboard package's import structure: no module imports back into what imports it, and the
whole package loads without torch, Ray, diffusers or the farm and engine packages (DESIGN.md)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "storyboard"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Storyboard modules `name` imports anywhere in its file (inside functions and TYPE_CHECKING too),
    with the packages whose `__init__` such an import runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & MODULES.keys()
    return found - {name, "storyboard"}   # the package's own __init__ imports nothing


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph`, as the modules along it, or None."""
    state: dict[str, str] = {}   # module → "open" while on the path, "done" after
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_import_graph_sees_the_adapters_and_the_core():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert {"storyboard.model", "storyboard.validate", "storyboard.adapters", "storyboard.adapters.pvscript"} <= graph.keys()
    assert "storyboard.model" in graph["storyboard.adapters.pvscript"]
    assert "storyboard.adapters" in graph["storyboard.presets"]   # importing a submodule runs its package


def test_no_storyboard_module_imports_back_into_what_imports_it():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert _cycle(graph) is None, " → ".join(_cycle(graph))
    # the core model knows no adapter, validator or planner
    assert graph["storyboard.model"] == set()
    assert "storyboard.validate" not in graph["storyboard.presets"]


def test_every_storyboard_module_imports_without_torch_ray_diffusers_farm_or_engine():
    code = ("import importlib, json, sys\n"
            f"for name in {sorted(MODULES)!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.splitlines()[-1])
    heavy = [m for m in loaded if m.split(".")[0] in ("torch", "ray", "diffusers", "farm", "engine")]
    assert heavy == []
    assert set(MODULES) <= set(loaded)


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
