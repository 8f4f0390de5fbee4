"""Ref-ZOM (DMMI, ICCV 2023): ``refs(final).p`` (released as ``Ref-ZOM(final).p``; GSVA-style
loaders call it ``Ref_ZOM.p``) + ``instances.json``; images from COCO train2014 + val2014.

Refs are REFER-style dicts whose ``ann_id`` is an int or a list of ints and whose
``source == 'zero'`` marks a one-to-zero expression (the official loader then zeroes the
mask although an ``ann_id`` is present).  Type: ``zero`` if source is 'zero', else
``many`` when more than one distinct annotation is listed, else ``one``.  The GT of a
one/many sentence is the union of the listed instances.
"""
from __future__ import annotations

import os
from pathlib import Path

from refbench.data.coco import CocoIndex
from refbench.data.refer import field, make_ref, require_list
from refbench.data.safe_pickle import load_pickle
from refbench.data.sample import Ref
from refbench.core.errors import RefbenchError

REFS_FILES = ("refs(final).p", "Ref-ZOM(final).p", "Ref_ZOM.p")


def _ids(value, path: Path, i: int, key: str) -> tuple[int, ...]:
    """Integer ids of a ref field that holds an int or a list of ints (anything else is refused:
    ``int()`` would turn 3.7 into 3 and "12" into 12)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not all(type(x) is int for x in items):
        raise RefbenchError(f"{path}: ref at position {i} has a non-integer {key} {value!r}; fix the file")
    return tuple(items)


def dedupe_aligned(ann_ids: tuple[int, ...], cats: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Drop repeated annotation ids, keeping the category list aligned when it is."""
    if len(cats) == len(ann_ids):
        pairs = dict(zip(ann_ids, cats))
        return tuple(pairs), tuple(pairs.values())
    return tuple(dict.fromkeys(ann_ids)), cats


def load_refs(path: str | os.PathLike, coco: CocoIndex | None = None) -> list[Ref]:
    """Read a Ref-ZOM refs pickle (safely) into :class:`Ref` records with zero/one/many types.

    Category ids come from the ref's ``category_id`` when present, else from the
    annotations in ``coco``.
    """
    path = Path(path)
    raw = require_list(load_pickle(path), path, "refs")
    out = []
    for i, r in enumerate(raw):
        ann_ids = _ids(field(r, "ann_id", path, i), path, i, "ann_id")
        source = str(r.get("source", "one")) if isinstance(r, dict) else "one"
        if source == "zero":
            typ, ann_ids, cats = "zero", (), ()
        else:
            if "category_id" in r:
                cats = _ids(r["category_id"], path, i, "category_id")
            elif coco is not None:
                desc = f"ref {r.get('ref_id')} in {path}"
                cats = _ids([coco.ann(a, desc).get("category_id", -1) for a in ann_ids], coco.path, i,
                            "category_id of an annotation of the ref")
            else:
                cats = ()
            if not ann_ids:
                raise RefbenchError(f"{path}: ref at position {i} (ref_id {r.get('ref_id')}) has source {source!r} "
                                    f"but lists no annotation; mark it source 'zero' or list its targets")
            ann_ids, cats = dedupe_aligned(ann_ids, cats)
            typ = "many" if len(ann_ids) > 1 else "one"
        out.append(make_ref(r, path, i, ann_ids, cats, typ))
    return out
