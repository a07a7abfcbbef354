"""The import graph of `verifier/` has no cycle, function-local imports included, and the layers that
must stay pure do: the drift statistics import no checks or providers, checks import no providers.

The graph is read from the source with `ast` (every `import` statement, wherever it stands), so an
import hidden inside a function to dodge a cycle is seen like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "verifier"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `name` names (a module, or an attribute of a package: its package)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of `verifier` that the module imports, at top level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "verifier":
                continue
            resolved = _resolve(target, known)
            if resolved and resolved not in (name, "verifier"):
                found.add(resolved)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_function_local_imports_are_edges(tmp_path):
    source = tmp_path / "verifier" / "x.py"
    source.parent.mkdir()
    source.write_text("def f():\n    from verifier.y import z\n    import verifier.w\n")
    known = {"verifier.x": source, "verifier.y": source, "verifier.w": source}
    assert imports_of("verifier.x", source, known) == {"verifier.y", "verifier.w"}


def test_verifier_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("layer,forbidden", [
    ("verifier.drift", ("verifier.checks", "verifier.providers", "verifier.runner", "verifier.cli")),
    ("verifier.checks", ("verifier.providers", "verifier.runner", "verifier.cli")),
    ("verifier.journal", ("verifier.checks",)),
    ("verifier.observation", ("verifier.suites", "verifier.providers")),
])
def test_layers_stay_pure(layer, forbidden):
    edges = graph()
    members = [name for name in edges if name == layer or name.startswith(layer + ".")]
    assert members, f"{layer} does not exist"
    bad = sorted({(m, dep) for m in members for dep in _reachable(edges, m)
                  if any(dep == f or dep.startswith(f + ".") for f in forbidden)})
    assert not bad, f"{layer} reaches {bad[:5]}"
