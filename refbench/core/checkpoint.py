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
import gzip
import io
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from refbench.core.errors import RefbenchError

REFBENCH_FORMAT = 1
# Only plain containers/tensors/numbers plus these classes may be unpickled.
SAFE_GLOBALS = [argparse.Namespace]


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Raises RefbenchError when the file is missing, truncated/corrupt, not a torch file, or
    holds pickled objects other than tensors and plain values (possible code execution).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RefbenchError(f"checkpoint {path!r} does not exist (pass the path of a .pth file)")
    try:
        source: Any = path
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":  # gzip: refbench's compact shipped checkpoints (*.pt.gz)
                f.seek(0)
                source = io.BytesIO(gzip.decompress(f.read()))
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(source, map_location="cpu", weights_only=True)
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
                            strict: bool = True, layout: CheckpointLayout | None = None) -> list[str]:
    """Load ``state`` into ``module`` after comparing keys and shapes; returns notes.

    Strict: any missing (other than self-computed integer buffers), unexpected or mis-shaped key
    raises one RefbenchError line grouped by prefix.  Non-strict: the matching keys are loaded
    and the rest is reported in the notes.  Tensors are cast to the model's dtypes.
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
    for k in computed:
        to_load[k] = own[k]
    for k, v in to_load.items():
        if v.dtype != own[k].dtype:
            if torch.is_floating_point(own[k]) != torch.is_floating_point(v):
                raise RefbenchError(f"checkpoint {source!r}: {k} has dtype {v.dtype}, model expects {own[k].dtype}")
            to_load[k] = v.to(own[k].dtype)
    if computed:
        notes.append(f"kept {len(computed)} self-computed integer buffers absent from the checkpoint "
                     f"({', '.join(sorted({k.rsplit('.', 1)[-1] for k in computed}))})")
    module.load_state_dict(to_load, strict=not (set(own) - set(to_load)))
    return notes


def load_model_checkpoint(model: nn.Module, path: str | os.PathLike | Any, layout: CheckpointLayout,
                          strict: bool = True) -> list[str]:
    """Read ``path`` safely, map its layout (official or refbench) and load it into ``model``.

    ``path`` may also be an already loaded checkpoint dict (e.g. generated in memory).
    Returns notes (layout found, buffers kept, keys skipped when ``strict=False``).
    """
    name, variant = getattr(model, "name", type(model).__name__), getattr(model, "variant", "")
    if isinstance(path, (str, os.PathLike)):
        source = os.fspath(path)
        obj = read_checkpoint(source)
    else:
        source, obj = "<in-memory checkpoint>", path
    state, notes = extract_state_dict(obj, layout, name, variant, source)
    what = f"model {name!r}" + (f" (variant {variant!r})" if variant else "")
    notes += load_state_dict_checked(model, state, source, what, strict=strict, layout=layout)
    return notes
