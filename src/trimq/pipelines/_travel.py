"""How a remote stage's function or class reaches nodes that may not import it.

A stage placed on other nodes (``on=``) ships its function (or Actor class)
each time its supervisor starts a worker there, at the run's start and
whenever it places a worker again. The class the workers run,
:class:`~._worker.FunctionWorker` or the wrapper ``actor_worker`` makes,
is importable wherever trimq is; what they carry may not be. It goes by
reference first; if a node answers that it cannot import its module, that
module is pickled by value (cloudpickle) for the rest of the run, so that
later placements get it too. ``__main__`` always goes by value.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import sysconfig
from types import ModuleType

import cloudpickle

from ._stage import Stage

__all__ = ["Shipping", "missing_module", "module_of"]

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


def missing_module(error: BaseException) -> bool:
    """Whether ``error`` says a node could not import a module (the stage's, say)."""
    text = f"{error!r} {error.__cause__!r}"
    return "ModuleNotFoundError" in text or "No module named" in text


def module_of(stage: Stage) -> ModuleType | None:
    """The module that defines the stage's code, if it may go by value."""
    module = sys.modules.get(getattr(stage.fn, "__module__", "") or "")
    return module if module is not None and _needs_value(module) else None


class Shipping:
    """The modules a run pickles by value (see the module docs); undone by :meth:`close`."""

    def __init__(self) -> None:
        self._modules: list[ModuleType] = []

    def add(self, module: ModuleType) -> None:
        """Pickle ``module`` by value from now on, for this run."""
        if module in self._modules:
            return
        self._modules.append(module)
        if not _REGISTERED[module.__name__]:
            cloudpickle.register_pickle_by_value(module)
        _REGISTERED[module.__name__] += 1

    def close(self) -> None:
        """Undo :meth:`add`, for the modules no other run ships."""
        for module in self._modules:
            _REGISTERED[module.__name__] -= 1
            if not _REGISTERED[module.__name__]:
                del _REGISTERED[module.__name__]
                with contextlib.suppress(ValueError):
                    cloudpickle.unregister_pickle_by_value(module)
        self._modules.clear()
