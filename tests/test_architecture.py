"""The shape of the project, read from its source (AST, nothing imported): no import cycles between
any two modules, Ray only in the farm's runtime rooms, torch nowhere in storyboard/, modules and
functions of a readable size, light modules kept light."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("storyboard", "engine", "farm")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_REASON = "# long:"      # a comment inside a longer function that says why it is one piece


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module `name` imports, at the top or inside a function, plus the packages whose
    `__init__` importing them runs (an import of `engine.wan.tiny` runs `engine` and `engine.wan`).
    A module's own packages are not counted: a package's `__init__` importing its modules (as
    `storyboard.adapters` does, to pick one) is how packages work, not a cycle."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    closed = set()
    for target in targets:
        parts = target.split(".")
        closed.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}   # already running
    return {t for t in closed if t in known and t != name and t not in own}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_import_checker_finds_a_cycle_and_resolves_relative_imports():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
    edges = graph()
    wan = {"engine.wan.tiny", "engine.wan.options", "engine.parallel.sharding", "engine.base", "engine.wan.weights"}
    assert wan <= edges["engine.wan.engine"]                       # `engine.wan.weights`: imported lazily
    assert "engine.logs" in edges["engine.wan.tiny"]               # `from .. import logs`
    assert "engine.wan" in edges["engine.parallel.selftest"]       # the package whose __init__ runs first


def test_no_two_modules_import_each_other_even_lazily():
    edges = graph()
    assert len(edges) > 100 and {"engine.wan", "farm.run.loop", "storyboard.plan"} <= set(edges)
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def third_party(path: Path) -> set[str]:
    """The top-level names of everything a module imports, lazily or not."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


# STYLE.md: only farm/ imports Ray, and inside it only the runtime rooms (the workers, the cluster)
RAY_ROOMS = ("farm.workers.", "farm.cluster.")
RAY_FREE_THERE = {"farm.workers.slots", "farm.cluster.errors"}   # what the loop and the CLI import


def test_ray_is_imported_only_by_the_farm_runtime_and_torch_never_by_the_storyboard():
    for name, path in modules().items():
        used = third_party(path)
        if "ray" in used:
            assert name.startswith(RAY_ROOMS) and name not in RAY_FREE_THERE, f"{name} imports Ray"
        if name.startswith("storyboard"):
            assert not used & {"torch", "diffusers", "ray", "transformers"}, f"{name} imports {used}"
    assert "ray" not in third_party(ROOT / "farm" / "run" / "loop.py")      # the loop is tested without Ray


def test_modules_and_functions_stay_readable_sizes():
    for name, path in modules().items():
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name}: {len(text.splitlines())} lines"
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                body = "\n".join(lines[node.lineno - 1:node.end_lineno])
                assert length <= MAX_FUNCTION_LINES or LONG_REASON in body, \
                    f"{name}.{node.name}: {length} lines and no '{LONG_REASON} why' comment"


def test_option_and_layout_modules_load_without_torch_or_diffusers():
    """The command line checks presets and plans gangs before loading any model."""
    light = ["engine.base", "engine.registry", "engine.options", "engine.wan.options", "engine.wan.speed_options",
             "engine.parallel.layout", "engine.wan.similarity", "engine.qc", "engine.fit", "engine.bank"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in light)
            + "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'ray') if m in sys.modules)\n"
            + "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_storyboard_module_imports_without_torch_ray_diffusers_farm_or_engine():
    """DESIGN.md: storyboard/ is plain Python that plans without any model or cluster."""
    names = sorted(n for n in modules() if n.startswith("storyboard"))
    code = ("import importlib, json, sys\n" + f"for name in {names!r}:\n    importlib.import_module(name)\n"
            + "print(json.dumps(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert [m for m in loaded if m.split(".")[0] in ("torch", "ray", "diffusers", "farm", "engine")] == []
    assert set(names) <= set(loaded)
