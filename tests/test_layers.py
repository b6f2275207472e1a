"""The project's import structure: layers that import one way, no import loop between files, short functions.

Every import is read from the source (``ast``), lazy imports inside functions included: a lazy import hides a
loop from Python, not from this test. The layers, lowest first; a file may import its own layer and the layers
below it, never one above:

    algorithms -> benchmarks.common -> benchmarks.data -> benchmarks.tasks -> benchmarks.rollouts
    -> benchmarks.generation -> benchmarks.run -> benchmarks.sweeps -> analysis -> benchmarks.commands

(analysis reads the results' schema from ``benchmarks.run`` and is read by the commands that make reports.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("algorithms", "benchmarks", "analysis")
LAYERS = (
    ("algorithms",),
    ("benchmarks.common",),
    ("benchmarks.data",),
    ("benchmarks.tasks",),
    ("benchmarks.rollouts",),
    ("benchmarks.generation",),
    ("benchmarks.run",),
    ("benchmarks.sweeps",),
    ("analysis",),
    ("benchmarks.commands", "benchmarks.__main__", "benchmarks"),
)
MAX_FUNCTION_LINES = 80


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import module`` resolves to the module)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def layer_of(module: str) -> int:
    best, index = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, index = len(p), i
    assert index is not None, f"{module} belongs to no declared layer: add it to LAYERS"
    return index


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}


def test_the_graph_is_read(graph):
    # a test that could not see the imports would pass on anything: the harness's own edges must be there
    assert "benchmarks.data.buffer" in graph["benchmarks.run.columns"]
    assert "benchmarks.tasks.registry" in graph["benchmarks.run.harness"]
    assert "algorithms.base" in graph["algorithms.awac"]


def test_no_import_against_the_layer_order(graph):
    wrong = [f"{m} (layer {LAYERS[layer_of(m)][0]}) imports {d} (layer {LAYERS[layer_of(d)][0]})"
             for m, deps in sorted(graph.items()) for d in sorted(deps)
             if layer_of(d) > layer_of(m) and not m.startswith(d + ".")]  # a package's __init__ may not count
    assert not wrong, "imports against the declared layer order:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. the import loops."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_loop_between_files(graph):
    # packages' __init__ files that only re-export are not loops of their own: drop the edge parent -> child
    g = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    loops = _cycles(g)
    assert not loops, "import loops: " + "; ".join(" <-> ".join(c) for c in loops)


def test_the_loop_finder_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_long_functions_in_benchmarks():
    long = []
    for path in sorted((ROOT / "benchmarks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
