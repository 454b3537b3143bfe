"""The import graph follows the floors of pyproject.toml's import-linter contracts, and has no circle.

``lint-imports`` checks the contracts (layers, independence of the families, tasks never importing a
family, specs never importing torch); this test runs it as CI does and fails with its report. Two more
checks keep the contracts honest: every top-level module of the package has a floor (a new module cannot
slip past the layers contract), and the module graph, built here with grimp, has no circle beyond the ones
listed below as debt.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

import dlmbench

ROOT = Path(__file__).resolve().parents[1]

# Known circles, each being removed on another branch; the lead deletes an entry once it is gone.
KNOWN_CYCLES = [
    {"dlmbench.registry", "dlmbench.specs", "dlmbench.tasks.registry"},  # settings-tasks: TASK_SETTINGS leave tasks/registry
]
# Top-level names that need no floor: the version leaf (imported by the package root and provenance only).
NO_FLOOR = {"_version"}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_import_contracts_hold():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
         "--no-cache"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "0 broken" in report and "4 kept" in report, report


def test_the_package_analysed_is_this_checkout():
    assert Path(dlmbench.__file__).resolve().parent == ROOT / "dlmbench"


def test_every_top_level_module_has_a_floor():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip().removeprefix("dlmbench.") for layer in layers for name in layer.replace(":", "|").split("|")}
    modules = {m.name for m in pkgutil.iter_modules([str(ROOT / "dlmbench")])}
    assert modules - placed - NO_FLOOR == set(), "give these modules a floor in pyproject.toml's layers contract"
    assert placed - modules == set(), "the layers contract names modules that do not exist"


def _cycles(graph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            for j in range(i, len(adj[v])):
                w = adj[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
    return out


def test_cycle_finder_on_a_known_graph():
    class G:
        modules = {"a", "b", "c", "d", "e"}
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": set()}

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert _cycles(G()) == [{"a", "b", "c"}]


def test_no_import_circle_beyond_known_debt():
    graph = grimp.build_graph("dlmbench")
    cycles = _cycles(graph)
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert new == [], f"import circles: {new}"
