"""Guard trimq.actors' public surface: ``__all__``, Node's methods, errors, docstrings."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from trimq import TrimqError, actors

EXPECTED = {
    "REPORTS",
    "Actor",
    "ActorError",
    "ActorNotFoundError",
    "ActorRef",
    "ActorStoppedError",
    "ChildSpec",
    "Codec",
    "CodecError",
    "DefaultCodec",
    "ExitReason",
    "LinkedActorError",
    "Node",
    "NodeRef",
    "PeerLimits",
    "PlainLimits",
    "RestartIntensityError",
    "Supervisor",
    "SupervisorReport",
    "Timer",
    "current_node",
    "open_node",
}

#: What users call on a Node (docs/actors.md, docs/nodes.md); refs, actors and
#: supervisors reach the rest through their task's runtime.
NODE_API = {
    "actors",
    "aclose",
    "codec",
    "connect",
    "endpoints",
    "events",
    "lookup",
    "lookup_local",
    "membership_changed",
    "name",
    "peers",
    "publish",
    "spawn",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(actors.__all__) == EXPECTED
    assert len(actors.__all__) == len(set(actors.__all__))


def test_every_exported_name_exists_and_nothing_else_is_public() -> None:
    for name in actors.__all__:
        assert hasattr(actors, name), name
    public = {
        name
        for name, value in vars(actors).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(actors.__all__)


def test_a_node_offers_only_its_documented_methods() -> None:
    public = {name for name in dir(actors.Node) if not name.startswith("_")}
    assert public | {"name", "codec"} == NODE_API  # name and codec are set per node


def test_every_error_is_a_trimq_error() -> None:
    for name in (
        "ActorError",
        "ActorNotFoundError",
        "ActorStoppedError",
        "LinkedActorError",
        "RestartIntensityError",
        "CodecError",
    ):
        assert issubclass(getattr(actors, name), TrimqError), name
    assert issubclass(actors.CodecError, ValueError)
    assert issubclass(actors.ActorNotFoundError, LookupError)


def test_every_public_name_in_the_package_has_a_docstring() -> None:
    # Both halves: the network half's classes are not exported, but they are
    # the API the local half (and the next person) works with.
    missing = []
    for path in sorted(Path(actors.__file__).parent.glob("_*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"trimq.actors.{path.stem}")
        exported = getattr(module, "__all__", [])
        for name in exported:
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if value.__module__ != module.__name__:
                continue
            if not (value.__doc__ or "").strip():
                missing.append(f"{path.stem}.{name}")
            if inspect.isclass(value):
                missing += [f"{path.stem}.{name}.{inner}" for inner in _methods_without_doc(value)]
    assert missing == []


def _methods_without_doc(cls: type) -> list[str]:
    missing = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        target = value.fget if isinstance(value, property) else value
        if not (inspect.isfunction(target) or isinstance(target, classmethod | staticmethod)):
            continue
        if not (target.__doc__ or "").strip():
            missing.append(name)
    return missing
