"""gRefCOCO (GRES / ReLA, CVPR 2023): ``grefs(unc).json`` (or ``grefs(unc).p``) + ``instances.json``.

Ref dicts carry ``ann_id`` and ``category_id`` as aligned lists; ``ann_id == [-1]``
means no target (``no_target`` is set too and is cross-checked), more than one id means
several targets (GT = union, as ReLA merges them).  Images: COCO train2014.
"""
from __future__ import annotations

import os
from pathlib import Path

from refbench.data.coco import read_json
from refbench.data.refer import field, make_ref, require_list
from refbench.data.refzom import dedupe_aligned
from refbench.data.safe_pickle import load_pickle
from refbench.data.sample import Ref
from refbench.core.errors import RefbenchError

REFS_FILES = ("grefs(unc).json", "grefs(unc).p")


def _as_ids(value, path: Path, i: int, key: str) -> tuple[int, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        return tuple(int(x) for x in items)
    except (TypeError, ValueError):
        raise RefbenchError(f"{path}: ref at position {i} has a non-integer {key} {value!r}") from None


def load_refs(path: str | os.PathLike) -> list[Ref]:
    """Read gRefCOCO refs (JSON, or a pickle loaded safely) into :class:`Ref` records."""
    path = Path(path)
    data = load_pickle(path) if path.suffix == ".p" else read_json(path)
    raw = require_list(data, path, "refs")
    out = []
    for i, r in enumerate(raw):
        ann_ids = _as_ids(field(r, "ann_id", path, i), path, i, "ann_id")
        cats = _as_ids(r.get("category_id", []), path, i, "category_id")
        empty = ann_ids == (-1,) or len(ann_ids) == 0
        if "no_target" in r and bool(r["no_target"]) != empty:
            raise RefbenchError(f"{path}: ref {r.get('ref_id')} has no_target={r['no_target']} but ann_id={list(ann_ids)}; "
                                f"the file is inconsistent (use the latest gRefCOCO release)")
        if empty:
            typ, ann_ids, cats = "zero", (), ()
        else:
            if -1 in ann_ids:
                raise RefbenchError(f"{path}: ref {r.get('ref_id')} mixes -1 with real ann ids {list(ann_ids)}")
            ann_ids, cats = dedupe_aligned(ann_ids, tuple(c for c in cats if c != -1))
            typ = "many" if len(ann_ids) > 1 else "one"
        out.append(make_ref(r, path, i, ann_ids, cats, typ))
    return out
