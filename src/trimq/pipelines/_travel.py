"""How a remote stage's function or class reaches nodes that may not import it.

A stage placed on other nodes (``on=``) ships its function (or Actor class)
each time its supervisor starts a worker there, at the run's start and
whenever it places a worker again. The class the workers run,
:class:`~._worker.FunctionWorker` or the wrapper ``actor_worker`` makes,
is importable wherever trimq is; what they carry may not be. So for the
run's duration the module that defines the stage's code is pickled by value
(cloudpickle), unless every node imports it anyway: ``__main__`` (already
by value), the standard library, and installed packages (site-packages),
which a worker node is expected to have as the running node does.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from types import ModuleType

import cloudpickle

from ._stage import Stage

__all__ = ["by_value", "shipped_modules"]

# Modules registered by value, and by how many runs (runs may overlap).
_REGISTERED: collections.Counter[str] = collections.Counter()
_INSTALLED = tuple(
    path
    for path in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _needs_value(module: ModuleType) -> bool:
    name = module.__name__
    if name == "__main__" or name.partition(".")[0] in sys.stdlib_module_names:
        return False
    if name.partition(".")[0] == "trimq":
        return False
    path = getattr(module, "__file__", None)
    if path is None:
        return False  # built in, or a namespace: nothing to copy
    return not path.startswith(_INSTALLED)


def shipped_modules(stages: Iterable[Stage]) -> list[ModuleType]:
    """The modules of the remote stages' code that go by value (see the module docs)."""
    found: dict[str, ModuleType] = {}
    for stage in stages:
        if stage.on is None:
            continue
        module = sys.modules.get(getattr(stage.fn, "__module__", "") or "")
        if module is not None and _needs_value(module):
            found[module.__name__] = module
    return list(found.values())


@contextlib.contextmanager
def by_value(modules: list[ModuleType]) -> Iterator[None]:
    """Pickle ``modules`` by value for the block."""
    for module in modules:
        if not _REGISTERED[module.__name__]:
            cloudpickle.register_pickle_by_value(module)
        _REGISTERED[module.__name__] += 1
    try:
        yield
    finally:
        for module in modules:
            _REGISTERED[module.__name__] -= 1
            if not _REGISTERED[module.__name__]:
                del _REGISTERED[module.__name__]
                with contextlib.suppress(ValueError):
                    cloudpickle.unregister_pickle_by_value(module)
