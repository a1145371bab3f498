"""The package's shape: no import cycles between tunesmith's modules or packages (lazy imports included), no
function over 80 lines. Built from the source with `ast` (as /work/shared/tools/structure.py does), so nothing
is imported and a lazy `from x import y` inside a function counts like a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "tunesmith"
MAX_FUNCTION_LINES = 80

# generation engine rewrite (issue 13) removes these
KNOWN_CYCLES: set[frozenset[str]] = set()  # none: keep it that way
KNOWN_LONG_FUNCTIONS: set[str] = set()


def module_files() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the tunesmith modules it imports anywhere in its source."""
    def target(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for name in names:
                t = target(name)
                # a package and its own modules (tunesmith/__init__ and its children) are one unit
                if t and t != mod and not mod.startswith(t + ".") and not t.startswith(mod + "."):
                    edges[mod].add(t)
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other round a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.add(w)
                    if w == v:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def package_cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Pairs of sub-packages (tunesmith.data, tunesmith.training, …) that import each other."""
    def package(mod: str) -> str:
        return ".".join(mod.split(".")[:2])

    pedges: dict[str, set[str]] = {}
    for mod, targets in edges.items():
        for t in targets:
            a, b = package(mod), package(t)
            if a != b and "tunesmith" not in (a, b):
                pedges.setdefault(a, set()).add(b)
    return {frozenset({a, b}) for a in pedges for b in pedges[a] if a in pedges.get(b, set())}


def long_functions(mods: dict[str, Path]) -> set[str]:
    found = set()
    for path in mods.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add(f"{path.relative_to(ROOT.parent).as_posix()}:{node.name}")
    return found


def test_no_import_cycles_between_modules_or_packages():
    edges = import_graph(module_files())
    cycles = {frozenset(g) for g in strongly_connected(edges)} | package_cycles(edges)
    new = sorted(" <-> ".join(sorted(c)) for c in cycles - KNOWN_CYCLES)
    assert not new, "import cycles (lazy imports included):\n" + "\n".join(new)


def test_no_function_over_80_lines():
    found = long_functions(module_files())
    new = sorted(found - KNOWN_LONG_FUNCTIONS)
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(new)


def test_the_allow_lists_hold_only_what_is_still_there():
    """An entry fixed by the engine rewrite must leave the list, so it cannot come back unnoticed."""
    edges = import_graph(module_files())
    cycles = {frozenset(g) for g in strongly_connected(edges)} | package_cycles(edges)
    assert KNOWN_CYCLES <= cycles, f"no longer cycles, remove from KNOWN_CYCLES: {KNOWN_CYCLES - cycles}"
    assert KNOWN_LONG_FUNCTIONS <= long_functions(module_files())


def test_the_check_finds_a_cycle_closed_by_a_lazy_import(tmp_path):
    """The graph and cycle search on tiny packages: a loop of three, and a lazy import closing a loop of two."""
    edges = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert strongly_connected(edges) == [{"p.a", "p.b", "p.c"}]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.a\n")
    mods = {"pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    assert strongly_connected(import_graph(mods)) == [{"pkg.a", "pkg.b"}]
