"""The module layout holds: Ray only in the distributed layer, no import cycles between mc_hull modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "mc_hull"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{a.name}" for a in node.names}
    return found


FILES = sorted(ROOT.rglob("*.py"))


def test_only_the_distributed_layer_imports_ray():
    users = {_module(p) for p in FILES
             if any(n == "ray" or n.startswith("ray.") for n in _imports(p, top_level_only=False))}
    assert users == {"mc_hull.distributed", "mc_hull.distributed_blocks"}, users


def test_no_import_cycles_at_module_level():
    modules = {_module(p): p for p in FILES}
    graph = {m: {n for n in _imports(p, top_level_only=True) if n in modules and n != m}
             for m, p in modules.items()}
    # a package's __init__ importing its own submodules is not a cycle of the layout
    for m in graph:
        graph[m] = {n for n in graph[m] if not n.startswith(m + ".")}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph[m]):
            visit(n)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, cycles


def test_the_engine_modules_do_not_import_each_other_in_a_loop_even_lazily():
    """cli/hull_test <-> cli/run and distributed <-> hulltest <-> runner were cycles; none is left."""
    modules = {_module(p): p for p in FILES}
    every = {m: _imports(p, top_level_only=False) for m, p in modules.items()}
    assert "mc_hull.cli.run" not in every["mc_hull.cli.hull_test"]
    for a, b in (("mc_hull.distributed", "mc_hull.hulltest"), ("mc_hull.distributed", "mc_hull.runner"),
                 ("mc_hull.runner", "mc_hull.hulltest"), ("mc_hull.jobs", "mc_hull.runner")):
        assert b not in every[a], (a, b)
