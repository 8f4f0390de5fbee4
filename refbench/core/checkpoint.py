"""Reading and strictly loading checkpoints: official layouts and refbench's own.

Checkpoints are untrusted pickles: everything goes through :func:`read_checkpoint`, which uses
``torch.load(weights_only=True)`` (only tensors, containers and plain values; the official
training scripts also store their ``argparse.Namespace`` of arguments, which is allow-listed).

Layouts understood by :func:`load_model_checkpoint`:

* refbench's own (written by :func:`save_checkpoint`)::

      {"refbench": {"format": 1, "model": "lavt", "variant": "paper", ...}, "model": state_dict}

* official ones, described per model by a :class:`CheckpointLayout`, e.g. LAVT/DMMI
  ``{"model": ..., "bert_model": ..., "optimizer": ..., "args": ...}`` where ``bert_model`` goes
  under the model's ``text_encoder.`` prefix; MagNet ``{"model": ...}``; ``{"state_dict": ...}``;
  or a bare state dict.  A DistributedDataParallel ``module.`` prefix is removed.

Loading is strict by default: the key sets and shapes must match exactly, and a mismatch raises
one RefbenchError line listing missing / unexpected / mis-shaped keys grouped by prefix.  Integer
buffers that a model computes itself (Swin ``relative_position_index``, BatchNorm
``num_batches_tracked``) may be absent from a checkpoint; the model's own are kept (with a note).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import gzip
import mmap as mmap_module
import os
import pickle
import re
import shutil
import sys
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from refbench.core.errors import RefbenchError

REFBENCH_FORMAT = 1
# Only plain containers/tensors/numbers plus these classes may be unpickled.
SAFE_GLOBALS = [argparse.Namespace]


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    With ``mmap=True`` the tensors of a zip-format file (every ``torch.save`` since torch 1.6)
    are views of a private, read-only-in-practice memory map of the file instead of copies in
    process memory: nothing is read until a tensor is used, and the pages are shared with the
    page cache.  Use it to copy the tensors somewhere else (as :func:`load_model_checkpoint`
    does) and drop the result; do not keep mmap'd tensors alive while the file may be
    overwritten in place.  Older (non-zip) files are read normally.  A gzip file (refbench's
    compact shipped checkpoints, ``*.pt.gz``) is decompressed in 1 MiB pieces into a temporary
    file, never as a whole in memory, which is mapped (whatever ``mmap`` says) and unlinked at
    once, so nothing can overwrite it.

    Raises RefbenchError when the file is missing, truncated/corrupt, not a torch file, or
    holds pickled objects other than tensors and plain values (possible code execution).
    """
    return _read_checkpoint(path, mmap)[0]


def _read_checkpoint(path: str | os.PathLike, mmap: bool) -> tuple[Any, bool]:
    """:func:`read_checkpoint`, also saying whether the tensors are views of a file mapping."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RefbenchError(f"checkpoint {path!r} does not exist (pass the path of a .pth file)")
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if gzipped:
            return _read_gzip(path)
        mapped = mmap and zipfile.is_zipfile(path)
        return _torch_load(path, mapped), mapped
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise RefbenchError(
                f"checkpoint {path!r} contains a reference to {found.group(1)}; refusing to unpickle it "
                "(weights_only=True). Only load checkpoints made by refbench or the official code, or re-save "
                "the tensors alone") from None
        detail = re.search(r"(Unsupported [^\n]*)", str(e))
        reason = detail.group(1) if detail else "unpickling refused"
        raise RefbenchError(f"checkpoint {path!r} cannot be read: it is not a PyTorch checkpoint of tensors "
                            f"({reason[:120]})") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/EOFError/KeyError/... for bad files
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        reason = f"{type(e).__name__}: {text.split('. ')[0]}"[:120]
        if zipfile.is_zipfile(path) or "zip archive" in reason or "central directory" in reason:
            hint = "it is truncated or corrupt (re-download or re-copy it)"
        else:
            hint = "it is not a PyTorch checkpoint or it is truncated"
        raise RefbenchError(f"checkpoint {path!r} cannot be read: {hint} ({reason})") from None


def _torch_load(source: str, mmap: bool) -> Any:
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)


def _read_gzip(path: str) -> tuple[Any, bool]:
    """Stream-decompress ``path`` into a temporary file and load that (memory-mapped when it is a zip).

    The mapping keeps the data reachable after the file is unlinked (POSIX); where unlinking an
    open file fails (Windows), the tensors are read into memory instead and the file removed.
    """
    fd, tmp = tempfile.mkstemp(prefix="refbench-ckpt-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        mapped = zipfile.is_zipfile(tmp) and os.name == "posix"
        return _torch_load(tmp, mapped), mapped
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Remove ``prefix`` from every key when *all* keys carry it (else return a plain copy)."""
    keys = list(state)
    if keys and all(k.startswith(prefix) for k in keys):
        return OrderedDict((k[len(prefix):], v) for k, v in state.items())
    return OrderedDict(state)


@dataclass(frozen=True)
class CheckpointLayout:
    """How a model's official checkpoint maps onto its state dict.

    Attributes:
        dicts: official top-level dict name -> prefix of its keys in the model's state dict,
            in priority order (e.g. LAVT ``{"model": "", "bert_model": "text_encoder."}``).
        ignore_suffixes: incoming keys ending so are dropped (HF BERT ``position_ids``).
        computed_buffers: suffixes of integer buffers the model computes itself; they may be
            missing from a checkpoint (the model's own are kept and a note says so).
    """

    dicts: Mapping[str, str] = field(default_factory=lambda: {"model": ""})
    ignore_suffixes: tuple[str, ...] = ("embeddings.position_ids",)
    computed_buffers: tuple[str, ...] = ("relative_position_index", "num_batches_tracked")


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta: Any) -> None:
    """Write refbench's layout: ``{"refbench": {format, model, variant, **meta}, "model": state_dict}``.

    ``meta`` values must be plain (str, numbers, lists, dicts) so the file loads with
    ``weights_only=True``.
    """
    from refbench.core import __version__

    header = {"format": REFBENCH_FORMAT, "model": getattr(model, "name", type(model).__name__),
              "variant": getattr(model, "variant", ""), "refbench_version": __version__, **meta}
    path = os.fspath(path)
    tmp = path + ".tmp"
    torch.save({"refbench": header, "model": model.state_dict()}, tmp)
    os.replace(tmp, path)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj: Any, layout: CheckpointLayout, model_name: str, variant: str,
                       source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Turn a loaded checkpoint object into one state dict in the model's key space.

    Returns ``(state_dict, notes)``.  Raises RefbenchError when no known layout fits, or when a
    refbench checkpoint belongs to another model or variant.
    """
    notes: list[str] = []
    if not isinstance(obj, Mapping):
        raise RefbenchError(f"checkpoint {source!r} holds a {type(obj).__name__}, not a dict of state dicts")
    if "refbench" in obj:
        meta = obj["refbench"] if isinstance(obj["refbench"], Mapping) else {}
        if meta.get("model") != model_name:
            raise RefbenchError(
                f"checkpoint {source!r} is a refbench checkpoint of model {meta.get('model')!r} "
                f"(variant {meta.get('variant')!r}), not {model_name!r}; build that model to load it")
        if meta.get("variant") and variant and meta.get("variant") != variant:
            raise RefbenchError(
                f"checkpoint {source!r} holds {model_name!r} variant {meta.get('variant')!r}, but the model was built as "
                f"variant {variant!r}; build it with variant={meta.get('variant')!r}")
        if not _is_state_dict(obj.get("model")):
            raise RefbenchError(f"checkpoint {source!r}: refbench layout without a 'model' state dict")
        notes.append(f"refbench checkpoint (format {meta.get('format')}, refbench {meta.get('refbench_version')})")
        return _clean(obj["model"], layout), notes

    merged: dict[str, torch.Tensor] = OrderedDict()
    used = []
    for name, prefix in layout.dicts.items():
        part = obj.get(name)
        if part is None:
            continue
        if not _is_state_dict(part):
            raise RefbenchError(f"checkpoint {source!r}: entry {name!r} is not a state dict of tensors")
        for k, v in _clean(part, layout).items():
            merged[prefix + k] = v
        used.append(name)
    if used:
        notes.append(f"official layout: dicts {', '.join(repr(u) for u in used)}")
        return merged, notes
    for name in ("state_dict", "model_state_dict"):
        if _is_state_dict(obj.get(name)):
            notes.append(f"state dict under {name!r}")
            return _clean(obj[name], layout), notes
    if _is_state_dict(obj):
        notes.append("bare state dict")
        return _clean(obj, layout), notes
    top = ", ".join(repr(k) for k in list(obj)[:8])
    want = " / ".join(repr(k) for k in layout.dicts)
    raise RefbenchError(f"checkpoint {source!r} has no model weights this loader knows (top-level keys: {top}; "
                        f"expected {want}, 'state_dict', or a bare state dict)")


def _clean(state: Mapping[str, torch.Tensor], layout: CheckpointLayout) -> dict[str, torch.Tensor]:
    state = strip_prefix(state, "module.")
    return OrderedDict((k, v) for k, v in state.items() if not k.endswith(layout.ignore_suffixes))


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def _group(key: str) -> str:
    """Grouping prefix of a key: ``backbone.layers.*.fusion`` / ``classifier.conv1_4`` / ``text_encoder.encoder.layer``."""
    parts = ["*" if p.isdigit() else p for p in key.split(".")[:-1]] or [key]
    depth = 4 if len(parts) > 2 and parts[2] == "*" else 3
    return ".".join(parts[:depth])


def describe_keys(keys: list[str], tensors: Mapping[str, torch.Tensor], max_groups: int = 6) -> str:
    """``N keys: prefix (n, e.g. key (shape)); ...`` grouped by :func:`_group`."""
    groups: dict[str, list[str]] = OrderedDict()
    for k in keys:
        groups.setdefault(_group(k), []).append(k)
    parts = []
    for g, ks in list(groups.items())[:max_groups]:
        shown = g if g.endswith("*") else g + ".*"
        parts.append(f"{shown} ({len(ks)}, e.g. {ks[0]} {_shape(tensors[ks[0]])})")
    if len(groups) > max_groups:
        parts.append(f"+{len(groups) - max_groups} more groups")
    return f"{len(keys)} [" + "; ".join(parts) + "]"


def _top_prefixes(keys) -> list[str]:
    return sorted({k.split(".")[0] for k in keys})


def load_state_dict_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str,
                            strict: bool = True, layout: CheckpointLayout | None = None, *,
                            _release_pages: bool = False) -> list[str]:
    """Load ``state`` into ``module`` after comparing keys and shapes; returns notes.

    Strict: any missing (other than self-computed integer buffers), unexpected or mis-shaped key
    raises one RefbenchError line grouped by prefix.  Non-strict: the matching keys are loaded
    and the rest is reported in the notes.  Tensors are copied into the model's existing
    parameters and buffers (cast to their dtypes), in pieces: no second copy of the model is made.
    ``_release_pages`` is for :func:`load_model_checkpoint`, whose tensors are file-mapped.
    """
    layout = layout or CheckpointLayout()
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    computed = [k for k in missing if k.endswith(layout.computed_buffers) and not torch.is_floating_point(own[k])]
    computed_set = frozenset(computed)
    missing = [k for k in missing if k not in computed_set]
    mis_shaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    skip = frozenset(mis_shaped)
    notes: list[str] = []
    if missing or unexpected or mis_shaped:
        problems = []
        if missing:
            problems.append("missing " + describe_keys(missing, own))
        if unexpected:
            problems.append("unexpected " + describe_keys(unexpected, state))
        if mis_shaped:
            shown = ", ".join(f"{k} checkpoint {_shape(state[k])} vs model {_shape(own[k])}" for k in mis_shaped[:4])
            more = f" (+{len(mis_shaped) - 4} more)" if len(mis_shaped) > 4 else ""
            problems.append(f"shape mismatch {len(mis_shaped)} [{shown}{more}]")
        matched = len(own) - len(missing) - len(computed) - len(mis_shaped)
        foreign = sorted(set(_top_prefixes(state)) - set(_top_prefixes(own)))
        if matched < 0.5 * len(own) or foreign:
            hint = (f"{matched} of {len(own)} model keys fit: this looks like a checkpoint of another model "
                    f"(its top-level prefixes: {', '.join(_top_prefixes(state)) or 'none'}; expected: "
                    f"{', '.join(_top_prefixes(own))})")
        else:
            hint = "pass strict=False to load only the matching keys"
        message = f"checkpoint {source!r} does not fit {what}: " + "; ".join(problems) + f". {hint}"
        if strict:
            raise RefbenchError(message)
        notes.append(message.replace(f". {hint}", "") + " (loaded the matching keys only, strict=False)")
    to_load = OrderedDict((k, v) for k, v in state.items() if k in own and k not in skip)
    for k, v in to_load.items():
        if v.dtype != own[k].dtype and torch.is_floating_point(own[k]) != torch.is_floating_point(v):
            raise RefbenchError(f"checkpoint {source!r}: {k} has dtype {v.dtype}, model expects {own[k].dtype}")
    if computed:
        notes.append(f"kept {len(computed)} self-computed integer buffers absent from the checkpoint "
                     f"({', '.join(sorted({k.rsplit('.', 1)[-1] for k in computed}))})")
    _copy_into(module, to_load, release_pages=_release_pages)
    return notes


# Tensors are copied in pieces of about this many bytes (see _copy_into).
LOAD_CHUNK_BYTES = 64 << 20


def _copy_into(module: nn.Module, tensors: Mapping[str, torch.Tensor], release_pages: bool) -> None:
    """``module.load_state_dict(tensors, strict=False)`` piece by piece (keys already checked).

    ``load_state_dict`` copies (and casts, e.g. float16 -> float32) into the existing
    parameters, so nothing of the size of the model is allocated.  With ``release_pages`` the
    tensors are views of a private file mapping (``read_checkpoint(mmap=True)``): after each
    piece its pages are dropped from the process (they are re-read from the file if touched
    again), so loading holds the model plus one piece, not the model plus the whole file.
    """
    chunk: dict[str, torch.Tensor] = OrderedDict()
    size = 0

    def flush() -> None:
        result = module.load_state_dict(chunk, strict=False)
        if result.unexpected_keys:  # the key check above makes this unreachable for ordinary modules
            raise RefbenchError(f"model rejected checkpoint keys {result.unexpected_keys[:4]}")
        if release_pages:
            for t in chunk.values():
                _drop_mapped_pages(t)
        chunk.clear()

    for k, v in tensors.items():
        chunk[k] = v
        size += v.numel() * v.element_size()
        if size >= LOAD_CHUNK_BYTES:
            flush()
            size = 0
    if chunk:
        flush()


def _madvise():
    """libc ``madvise`` through ctypes, or None where it is not available (not Linux/glibc)."""
    global _MADVISE
    if _MADVISE is None:
        _MADVISE = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                fn.restype = ctypes.c_int
                _MADVISE = fn
            except (OSError, AttributeError):
                pass
    return _MADVISE or None


_MADVISE = None
_MADV_DONTNEED = 4  # Linux
_PAGE = mmap_module.PAGESIZE


def _drop_mapped_pages(t: torch.Tensor) -> None:
    """Drop the whole pages of ``t``'s storage from this process (``MADV_DONTNEED``).

    Only for storages inside a private *file* mapping, where a dropped page is read again from
    the file when touched (on anonymous memory it would read back as zeros): callers pass
    tensors of :func:`read_checkpoint` with ``mmap=True`` only.
    """
    fn = _madvise()
    if fn is None or t.device.type != "cpu":
        return
    storage = t.untyped_storage()
    start, nbytes = storage.data_ptr(), storage.nbytes()
    lo = -(-start // _PAGE) * _PAGE
    hi = (start + nbytes) // _PAGE * _PAGE
    if hi > lo:
        fn(lo, hi - lo, _MADV_DONTNEED)


def release_freed_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Freed blocks below glibc's mmap threshold stay in the heap and keep counting as resident
    memory; after a model is built and loaded nothing of that is needed any more.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass


def load_model_checkpoint(model: nn.Module, path: str | os.PathLike | Any, layout: CheckpointLayout,
                          strict: bool = True, *,
                          into: Callable[[Mapping[str, torch.Tensor]], nn.Module] | None = None) -> list[str]:
    """Read ``path`` safely, map its layout (official or refbench) and load it into ``model``.

    ``path`` may also be an already loaded checkpoint dict (e.g. generated in memory).
    ``into(state)`` may pick the module that receives the state dict from its keys (default:
    ``model``; MagNet loads an official file into a view holding only the official children).
    Returns notes (layout found, buffers kept, keys skipped when ``strict=False``).

    Memory: a file is memory-mapped (:func:`read_checkpoint` with ``mmap=True``) and copied
    into the model piece by piece, so loading needs about the model's size plus 64 MiB, and
    afterwards the process holds the model once (no transient copies left in the heap).
    """
    name, variant = getattr(model, "name", type(model).__name__), getattr(model, "variant", "")
    what = f"model {name!r}" + (f" (variant {variant!r})" if variant else "")
    if not isinstance(path, (str, os.PathLike)):
        state, notes = extract_state_dict(path, layout, name, variant, "<in-memory checkpoint>")
        target = into(state) if into is not None else model
        return notes + load_state_dict_checked(target, state, "<in-memory checkpoint>", what, strict=strict,
                                               layout=layout)
    source = os.fspath(path)
    obj, mapped = _read_checkpoint(source, mmap=True)
    state, notes = extract_state_dict(obj, layout, name, variant, source)
    del obj
    try:
        target = into(state) if into is not None else model
        notes += load_state_dict_checked(target, state, source, what, strict=strict, layout=layout,
                                         _release_pages=mapped)
    finally:
        del state
        release_freed_memory()
    return notes
