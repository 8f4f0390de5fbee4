"""gRefCOCO (GRES / ReLA, CVPR 2023): ``grefs(unc).json`` (or ``grefs(unc).p``) + ``instances.json``.

Ref dicts carry ``ann_id`` and ``category_id`` as aligned lists; ``ann_id == [-1]``
means no target (``no_target`` is set too and is cross-checked), more than one id means
several targets (GT = union, as ReLA merges them).  Images: COCO train2014.

Crowd annotations are handled as ReLA handles them (``gres_model/data/datasets/grefcoco.py`` and
``grefer.py``'s ``getMaskByRef``): an ``iscrowd`` annotation listed in a ref's ``ann_id`` is
dropped from the target -- it adds no pixel to the GT and does not count as a target.  The ref
stays a targeted sample (ReLA keeps ``empty=False``), so in the rare case that every listed
annotation is a crowd, the sample is a one-target sample with an empty GT, as in ReLA.
``type`` is ``many`` when more than one non-crowd target remains, else ``one``.
"""
from __future__ import annotations

import os
from pathlib import Path

from refbench.core.errors import RefbenchError
from refbench.data.coco import CocoIndex, load_instances, read_json
from refbench.data.refer import field, make_ref, require_list
from refbench.data.refzom import dedupe_aligned
from refbench.data.safe_pickle import load_pickle
from refbench.data.sample import Ref

REFS_FILES = ("grefs(unc).json", "grefs(unc).p")


def _as_ids(value, path: Path, i: int, key: str) -> tuple[int, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if any(type(x) is not int for x in items):  # a bool, float or string is refused, not converted
        raise RefbenchError(f"{path}: ref at position {i} has a non-integer {key} {value!r}")
    return tuple(items)


def _drop_crowd(ann_ids: tuple[int, ...], cats: tuple[int, ...], coco: CocoIndex, desc: str
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``ann_ids`` (and the aligned ``cats``) without ``iscrowd`` annotations, as ReLA drops them."""
    keep = [not coco.ann(a, desc).get("iscrowd") for a in ann_ids]
    if all(keep):
        return ann_ids, cats
    ids = tuple(a for a, k in zip(ann_ids, keep) if k)
    if len(cats) == len(ann_ids):
        cats = tuple(c for c, k in zip(cats, keep) if k)
    return ids, cats


def load_refs(path: str | os.PathLike, coco: CocoIndex | None = None) -> list[Ref]:
    """Read gRefCOCO refs (JSON, or a pickle loaded safely) into :class:`Ref` records.

    ``coco``: the dataset's instances index, used to drop crowd targets (module doc); when None,
    the ``instances.json`` beside the refs file is read for it."""
    path = Path(path)
    data = load_pickle(path) if path.suffix == ".p" else read_json(path)
    raw = require_list(data, path, "refs")
    if coco is None:
        coco = load_instances(path.parent / "instances.json")
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
            ann_ids, cats = _drop_crowd(ann_ids, cats, coco, f"ref {r.get('ref_id')} in {path}")
            typ = "many" if len(ann_ids) > 1 else "one"
        out.append(make_ref(r, path, i, ann_ids, cats, typ))
    return out
