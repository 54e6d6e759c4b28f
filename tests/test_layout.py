"""The shape of the source tree: no import cycles, no oversized files, cheap imports where promised.

The import graph is read statically with ``ast`` so that a cycle is found even where the
import order of the test run happens to hide it. Only module-level imports count (an import
inside a function runs later, once every module is loaded); ``if TYPE_CHECKING:`` blocks
never run and are skipped. The tree is walked, not listed, so moved or new modules are covered.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "trainlab"
MAX_LINES = 330  # a guard; the aim is ~300
AIM_LINES = 300


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(body: list[ast.stmt]):
    """Import statements that run when the module is imported (class bodies and try/if/with included)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level_imports(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _module_level_imports(node.body)


def _targets(node: ast.stmt, module: str, is_package: bool, modules: dict) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target not in modules:
        return set()
    # 'from pkg import sub' imports the submodule; 'from pkg import name' needs pkg's __init__
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names}


def import_graph() -> dict[str, set[str]]:
    """module -> trainlab modules it imports at module level, with the packages that importing runs.

    Importing ``trainlab.engine.checkpoint`` from outside ``trainlab.engine`` first runs
    ``trainlab/engine/__init__.py``, so that package is an edge too; from inside it is already loading.
    """
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        own = module.split(".")
        loading = {".".join(own[:i]) for i in range(1, len(own) + (1 if is_package else 0))}
        edges = set()
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            for target in _targets(node, module, is_package, modules):
                parts = target.split(".")
                edges.add(target)
                edges.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts)))
                             if p not in loading and p in modules)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state = {}  # module -> "open" while on the current path, "done" once fully explored
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = "open"
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = "done"
                stack.pop()
            elif state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = "open"
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    graph = import_graph()
    assert "trainlab.config" in graph and graph["trainlab.config"], "the graph reads no imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_source_files_stay_small():
    sizes = {p.relative_to(SRC).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}
    over_aim = sorted(f"{name} ({n})" for name, n in sizes.items() if n > AIM_LINES)
    too_long = [name for name, n in sizes.items() if n > MAX_LINES]
    assert not too_long, f"over {MAX_LINES} lines: {too_long}; over {AIM_LINES}: {', '.join(over_aim)}"


def _modules_loaded_by(code: str) -> set[str]:
    code = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_reading_run_directories_needs_no_torch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"epoch": e, "split": "valid", "loss": loss} for e, loss in ((1, 0.9), (2, 0.5), (3, 0.7))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text("train: {monitor: valid.loss}\n")
    loaded = _modules_loaded_by(
        "import trainlab, trainlab.config\n"
        "from trainlab.analysis.rundata import RunData\n"
        f"assert RunData.load({str(run)!r}).best_epoch == 2\n"
        "trainlab.config.read_recipe(" + repr(str(run / "config.yaml")) + ")")
    assert "trainlab.analysis.rundata" in loaded
    assert "torch" not in loaded, "reading a run directory loads torch"


def test_package_entry_points_load_on_first_use():
    import trainlab

    assert callable(trainlab.train) and callable(trainlab.load) and callable(trainlab.evaluate)
    assert trainlab.config.load({}).optim.lr > 0


def test_no_function_is_longer_than_sixty_lines():
    """design.md: functions under ~60 lines."""
    import ast

    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 60 lines: " + "; ".join(long)
