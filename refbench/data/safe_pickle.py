"""Load untrusted pickles (REFER ``refs(*).p``, Ref-ZOM ``refs(final).p``) without running code.

A pickle can name any importable callable and have the unpickler call it.  The REFER
family only ever needs plain containers and scalars, so :func:`load_pickle` admits
exactly those: every opcode that would import something goes through ``find_class``,
which refuses all names except ``set`` / ``frozenset`` and a latin-1-only stand-in for
``_codecs.encode`` (how protocol <= 2 stores sets and bytes); persistent ids are refused.  A refused pickle raises
:class:`~refbench.core.errors.RefbenchError` before anything it names is imported or called.

Python-2 pickles (the original REFER release) store text as byte strings; they are
decoded as UTF-8, which is a superset of what the official loaders' ASCII default reads.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from refbench.core.errors import RefbenchError

def _bytes_from_latin1(text: str, encoding: str = "latin1") -> bytes:
    """Protocol <= 2 pickles bytes as _codecs.encode(text, 'latin1'); nothing else is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refused to load: _codecs.encode used for something other than bytes (nothing was executed)")
    return text.encode("latin1")


# (module, name) -> the object a plain-data pickle may get for it.  Protocol <= 2 pickles
# sets and frozensets as REDUCE(builtins.set, [list]) (Python 2 spells the module
# __builtin__) and bytes through _codecs.encode.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _bytes_from_latin1,
}


class UnsafePickleError(RefbenchError):
    """A pickle referenced something other than plain containers and scalars."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="utf-8", errors="strict")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        raise UnsafePickleError(
            f"{self._source}: refused to load: the pickle references {module}.{name}, but refbench only "
            f"loads plain lists/dicts/strings/numbers from annotation pickles (nothing was executed); "
            f"re-download the file from the dataset's official source")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refused to load: the pickle uses persistent ids, which "
                                f"annotation pickles never need (nothing was executed)")


def loads_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` admitting only plain containers and scalars (see module doc)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except RefbenchError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, MemoryError, RecursionError) as e:
        kind = "truncated" if isinstance(e, EOFError) else "malformed"
        raise RefbenchError(f"{source}: not a readable pickle ({kind}: {type(e).__name__}: {e}); "
                            f"re-download the file") from None


def load_pickle(path: str | os.PathLike) -> Any:
    """Read and safely unpickle the file at ``path`` (plain containers and scalars only)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RefbenchError(f"{path}: file not found") from None
    except OSError as e:
        raise RefbenchError(f"{path}: cannot read ({e.strerror})") from None
    return loads_pickle(data, str(path))
