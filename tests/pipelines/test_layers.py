"""trimq.pipelines is built on trimq.actors' public API only, and documents its own."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from trimq import pipelines

PACKAGE = Path(pipelines.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_public_actors_api_is_used() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for name in _imports(path):
            assert "actors._" not in name, f"{path.name} imports a private actors name: {name}"
            if name.startswith(".."):
                # Outside the package: trimq.actors (public) and the common error base.
                assert name in (
                    "..actors",
                    "...actors",
                    "..actors.NodeRef",
                    ".._errors.TrimqError",
                ), f"{path.name} imports {name}"


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in pipelines.__all__:
        obj = getattr(pipelines, name)
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member) and not inspect.getdoc(member):
                    missing.append(f"{name}.{attr}")
    assert missing == []
