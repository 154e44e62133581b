"""trimq.actors keeps its layers: the network half never imports the local half.

The rule (see ``_local.py`` and docs/architecture.md): the network half talks
to other nodes and sees this node only through the ``LocalNode`` protocol;
it may import the leaves both halves share and itself, never the node, its
cells, monitors, bus or supervisors, not even for type checking. Checked
twice: from the source (every import, ``TYPE_CHECKING`` and function-level
ones included, followed transitively) and by importing the network half in
a fresh interpreter that must not load any local module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import trimq.actors

PACKAGE = Path(trimq.actors.__file__).parent

#: Shared by both halves; import only each other.
LEAVES = {
    "_codec",
    "_errors",
    "_exit",
    "_local",
    "_plain",
    "_plain_scan",
    "_ref",
    "_security",
    "_timer",
    "_wire",
}
#: Talks to other nodes; imports leaves and itself only.
NETWORK = {
    "_flow",
    "_calls",
    "_cluster",
    "_events",
    "_link",
    "_links",
    "_remote_children",
    "_remote_monitors",
    "_turns",
}
#: Runs actors in this process; may import anything.
LOCAL = {
    "__init__",
    "_actor",
    "_bus",
    "_cell",
    "_host",
    "_inbound",
    "_mail",
    "_node",
    "_runtime",
    "_supervisor",
    "_task",
    "_watch",
}


def _imports(module: str, *, typing_too: bool = True) -> set[str]:
    """The sibling modules ``module`` imports (``from . import x``, ``from ._x import``)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    skipped: set[int] = set()
    if not typing_too:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 1 or id(node) in skipped:
            continue
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    return found


def _closure(start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(module))
    return seen


def test_every_module_belongs_to_a_layer() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert modules == LEAVES | NETWORK | LOCAL, "place each new module in a layer here"
    assert not LEAVES & NETWORK
    assert not LEAVES & LOCAL
    assert not NETWORK & LOCAL


def test_leaves_import_only_leaves() -> None:
    for module in LEAVES:
        assert _imports(module) <= LEAVES, module


def test_the_network_half_never_reaches_the_local_half() -> None:
    for module in NETWORK:
        assert _imports(module) <= LEAVES | NETWORK, module
    assert not _closure(NETWORK) & LOCAL


def test_no_import_cycle_at_run_time() -> None:
    # Type-only references may go both ways (a Node spawns Actor classes,
    # an Actor knows its Node); imports that run may not.
    graph = {path.stem: _imports(path.stem, typing_too=False) for path in PACKAGE.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


_SCRIPT = textwrap.dedent(
    """
    import importlib, sys, types

    import trimq
    # A stub for trimq.actors, so its __init__ (which imports everything) never runs.
    package = types.ModuleType("trimq.actors")
    package.__path__ = [sys.argv[1]]
    sys.modules["trimq.actors"] = package
    for name in sys.argv[2].split(","):
        importlib.import_module(f"trimq.actors.{name}")
    loaded = [m for m in sys.modules if m.startswith("trimq.actors.")]
    print(",".join(sorted(m.rsplit(".", 1)[1] for m in loaded)))
    """
)


def test_importing_the_network_half_loads_no_local_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(PACKAGE), ",".join(sorted(NETWORK))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.strip().split(","))
    assert loaded >= NETWORK
    assert loaded <= NETWORK | LEAVES, loaded - NETWORK - LEAVES
