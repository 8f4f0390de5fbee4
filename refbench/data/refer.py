"""REFER format (RefCOCO, RefCOCO+, RefCOCOg): ``refs(unc|umd|google).p`` + ``instances.json``.

``refs(X).p`` is a pickled list of dicts ``{ref_id, ann_id, image_id, category_id, split,
sentences: [{raw, sent, sent_id, tokens}], ...}``; one referred object per ref, one
target per sentence.  Split selection follows REFER's ``getRefIds(split=...)`` exactly
(:func:`select_split`); the samples are every sentence of every selected ref, in file
order, as the LAVT-family test loops iterate them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from refbench.data.coco import CocoIndex
from refbench.data.safe_pickle import load_pickle
from refbench.data.sample import Ref, Sample
from refbench.core.errors import RefbenchError


def select_split(refs: Iterable[Ref], split: str) -> list[Ref]:
    """REFER's rule: ``train``/``val`` (and any other name) exact; ``testA``/``testB``/``testC``
    by letter (so ``testAB`` refs count for both); ``test`` by substring."""
    if split in ("testA", "testB", "testC"):
        return [r for r in refs if split[-1] in r.split]
    if split == "test":
        return [r for r in refs if "test" in r.split]
    return [r for r in refs if r.split == split]


def require_list(obj: Any, path: Path, what: str) -> list:
    if not isinstance(obj, list):
        raise RefbenchError(f"{path}: expected a list of {what} at the top level, got {type(obj).__name__}")
    return obj


def field(ref: Any, key: str, path: Path, i: int) -> Any:
    if not isinstance(ref, dict):
        raise RefbenchError(f"{path}: entry {i} is a {type(ref).__name__}, not a ref dict")
    if key not in ref:
        raise RefbenchError(f"{path}: ref at position {i} (ref_id {ref.get('ref_id', '?')}) has no field {key!r}")
    return ref[key]


def sentences_of(ref: dict, path: Path, i: int) -> tuple[tuple[int, str], ...]:
    sents = field(ref, "sentences", path, i)
    if not isinstance(sents, list):
        raise RefbenchError(f"{path}: ref {ref.get('ref_id')} 'sentences' must be a list")
    out = []
    for k, s in enumerate(sents):
        if not isinstance(s, dict) or "sent_id" not in s or ("raw" not in s and "sent" not in s):
            raise RefbenchError(f"{path}: ref {ref.get('ref_id')} has a sentence without sent_id/raw")
        sid, raw = s["sent_id"], s["raw"] if "raw" in s else s["sent"]
        if isinstance(sid, bool) or not isinstance(sid, int):
            raise RefbenchError(f"{path}: ref {ref.get('ref_id')} sentence {k} has sent_id {sid!r}, not an integer; "
                                f"fix the file or re-download it")
        if not isinstance(raw, str):
            raise RefbenchError(f"{path}: ref {ref.get('ref_id')} sentence {sid} is a {type(raw).__name__}, not "
                                f"text; fix the file or re-download it")
        out.append((sid, raw))
    return tuple(out)


def int_field(ref: Any, key: str, path: Path, i: int) -> int:
    """An integer field of raw ref ``i`` (a bool, float or string is refused, not converted)."""
    value = field(ref, key, path, i)
    if type(value) is not int:
        raise RefbenchError(f"{path}: ref at position {i} (ref_id {ref.get('ref_id', '?')}) has {key} {value!r}, "
                            f"not an integer; fix the file or re-download it")
    return value


def make_ref(r: dict, path: Path, i: int, ann_ids: tuple[int, ...], cats: tuple[int, ...], typ: str) -> Ref:
    """The :class:`Ref` of raw entry ``r`` (position ``i`` of ``path``) with resolved targets."""
    return Ref(int_field(r, "ref_id", path, i), int_field(r, "image_id", path, i), ann_ids, cats, typ,
               str(field(r, "split", path, i)), sentences_of(r, path, i))


def load_refs(path: str | os.PathLike) -> list[Ref]:
    """Read a REFER refs pickle (safely) into format-independent :class:`Ref` records."""
    path = Path(path)
    raw = require_list(load_pickle(path), path, "refs")
    out = []
    for i, r in enumerate(raw):
        ann = int_field(r, "ann_id", path, i)
        cat = int_field(r, "category_id", path, i)
        out.append(make_ref(r, path, i, (ann,), (cat,), "one"))
    return out


def to_samples(refs: Iterable[Ref], coco: CocoIndex, split: str, source: str,
               check_segmentations: bool = True) -> list[Sample]:
    """One :class:`Sample` per sentence; ``sample_id = str(sent_id)`` must be unique.

    Everything a sample needs is checked here, before any work: its image and annotations
    exist in ``coco``, each annotation belongs to the ref's image, and (unless
    ``check_segmentations`` is False: ``data check`` reports them separately) every
    segmentation can be rasterized (checked in bulk, :meth:`CocoIndex.validate_anns`)."""
    samples: list[Sample] = []
    seen: dict[int, int] = {}
    used: list[int] = []
    for ref in refs:
        desc = f"ref {ref.ref_id} in {source}"
        img = coco.image(ref.image_id, desc)
        for ann_id in ref.ann_ids:
            owner = coco.ann(ann_id, desc)["image_id"]
            if owner != ref.image_id:
                raise RefbenchError(f"{source}: ref {ref.ref_id} is on image {ref.image_id} but its annotation "
                                    f"{ann_id} belongs to image {owner} in {coco.path}; the refs file and "
                                    f"instances.json do not belong together")
        used.extend(ref.ann_ids)
        for sent_id, raw in ref.sentences:
            if sent_id in seen:
                raise RefbenchError(f"{source}: sent_id {sent_id} appears twice in split {split!r} (refs "
                                    f"{seen[sent_id]} and {ref.ref_id}); sample ids must be unique, the file is corrupt")
            seen[sent_id] = ref.ref_id
            samples.append(Sample(str(sent_id), ref.ref_id, sent_id, ref.image_id, img.file_name, raw, ref.ann_ids,
                                  ref.category_ids, ref.type, split, img.height, img.width))
    if check_segmentations:
        coco.validate_anns(used)
    return samples
