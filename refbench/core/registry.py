"""One registry style for everything refbench looks up by name.

Commands, models, protocols and tokenizers are all :class:`Registry` instances.  An entry is
either the object itself or a lazy ``"module:attribute"`` string, imported on first use, so
listing names never imports heavy code.  A registry may also read an entry-point group; the
entry points of the ``refbench`` distribution itself come first, so a third-party package can
add names but never silently replace refbench's own.

    MODELS = Registry("model", entry_point_group="refbench.models", check=_as_model_info)
    MODELS.get("lavt")            # imports baselines.lavt, returns its ModelInfo
    MODELS.names()                # ['dmmi', 'jmceln', 'lavt', 'magnet', 'meres', ...]
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from refbench.core.errors import RefbenchError, suggest

T = TypeVar("T")
OWN_DISTRIBUTION = "refbench"


def load_target(target: str, what: str) -> Any:
    """Import ``"module:attribute"``; one RefbenchError line if that fails."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise RefbenchError(f"{what} entry {target!r} is not of the form 'module:attribute'")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise RefbenchError(f"{what} entry {target!r} cannot be loaded ({e})") from None
    return obj


class Registry(Generic[T]):
    """Names -> objects, with lazy ``"module:attr"`` targets and an optional entry-point group.

    Args:
        kind: what the entries are, for error messages (``"model"``, ``"protocol"``).
        entry_point_group: also read this ``importlib.metadata`` entry-point group.
        check: turns a loaded target into a T (or raises RefbenchError); default: as is.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None,
                 check: Callable[[Any, str], T] | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._check = check or (lambda obj, target: obj)
        self._targets: dict[str, Any] = {}
        self._loaded: dict[str, T] = {}

    # ---- registration ------------------------------------------------------------------------
    def register(self, name: str, target: "T | str", *, replace: bool = False) -> None:
        """Add ``name`` -> object or ``"module:attr"``; re-registering another target needs ``replace``."""
        old = self._targets.get(name)
        if old is not None and old is not target and old != target and not replace:
            raise RefbenchError(f"{self.kind} {name!r} is already registered")
        self._targets[name] = target
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._targets.pop(name, None)
        self._loaded.pop(name, None)

    def _entry_points(self) -> dict[str, str]:
        if self.entry_point_group is None:
            return {}
        try:
            eps = list(metadata.entry_points(group=self.entry_point_group))
        except Exception:  # pragma: no cover - broken metadata of another package must not break refbench
            return {}

        def own(ep) -> bool:
            dist = getattr(ep, "dist", None)
            return dist is not None and (dist.metadata["Name"] or "").lower() == OWN_DISTRIBUTION

        out: dict[str, str] = {}
        for ep in sorted(eps, key=lambda ep: not own(ep)):  # refbench's own first: they cannot be shadowed
            out.setdefault(ep.name, ep.value)
        return out

    def targets(self) -> dict[str, Any]:
        """``{name: object or "module:attr"}``: explicit registrations, then entry points."""
        out = dict(self._targets)
        for name, value in self._entry_points().items():
            out.setdefault(name, value)
        return out

    def names(self) -> list[str]:
        return sorted(self.targets())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.targets()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # ---- lookup ------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry ``name`` (imported and checked on first use); did-you-mean error otherwise."""
        if name in self._loaded:
            return self._loaded[name]
        targets = self.targets()
        if name not in targets:
            raise suggest(str(name), targets, self.kind)
        target = targets[name]
        obj = load_target(target, self.kind) if isinstance(target, str) else target
        value = self._check(obj, target if isinstance(target, str) else name)
        self._loaded[name] = value
        return value

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self.names()]
