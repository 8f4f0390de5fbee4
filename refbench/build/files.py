"""Deterministic writers and record helpers shared by the dataset builders (synth, ref-zom).

Everything here depends only on the values written: JSON with sorted keys and fixed separators,
protocol-2 pickles without memoization, and COCO segmentations in the form the official loaders
read (REFER's ``getMask`` and its copies in LAVT, DMMI and ReLA):

* a polygon annotation is a list of flat ``[x0, y0, x1, y1, ...]`` lists;
* an RLE annotation is a **list** holding compressed-RLE dicts ``{"counts": str, "size": [h, w]}``.
  REFER's ``getMask`` (and the copies in LAVT, DMMI and ReLA) tests ``type(seg[0]) == list`` and
  otherwise hands ``seg`` to ``pycocotools.mask.decode``, summing the result over its last axis;
  a bare RLE dict fails there (``seg[0]`` is a KeyError), a list of RLE dicts decodes to (H, W, K).
"""
from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from pycocotools import mask as mask_utils


def dump_json(path: Path, obj: Any) -> None:
    """Compact JSON (sorted keys, ASCII), the bytes a function of the value only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


def dump_json_pretty(path: Path, obj: Any) -> None:
    """Indented JSON (sorted keys, ASCII, no NaN) for files people read (stats, manifests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n")


def dump_pickle(path: Path, obj: Any) -> None:
    """Protocol-2 pickle whose bytes depend only on the values: memoization is off (``fast``),
    so whether equal strings are shared objects (they are not, across worker processes)
    cannot change the output."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)
    p.fast = True
    p.dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def sentence_record(raw: str, sent_id: int) -> dict:
    """A REFER sentence ``{raw, sent, sent_id, tokens}``: ``sent`` is ``raw`` lower-cased with
    commas and full stops removed, ``tokens`` its words (REFER's ``sentToTokens`` reads them)."""
    sent = raw.lower().replace(",", " ").replace(".", " ")
    tokens = sent.split()
    return {"raw": raw, "sent": " ".join(tokens), "sent_id": sent_id, "tokens": tokens}


def rle_segmentation(mask: np.ndarray) -> list[dict]:
    """A bool/0-1 (H, W) mask as a REFER-readable RLE segmentation: ``[{"counts": str, "size": [H, W]}]``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return [{"counts": rle["counts"].decode("ascii"), "size": [int(x) for x in rle["size"]]}]


def official_segmentation(segm: Any, h: int, w: int) -> Any:
    """``segm`` in the form the official ``getMask`` reads, with the same decoded pixels.

    Polygon lists and lists of compressed-RLE dicts are returned unchanged; a bare RLE dict (compressed
    or with an uncompressed ``counts`` list) becomes a one-element list of a compressed-RLE dict; an
    uncompressed RLE inside a list is compressed.  Call it on checked segmentations only
    (``refbench.data.masks.validate_segmentation``)."""
    def compressed(part: dict) -> dict:
        counts = part["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
            counts = rle["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        return {"counts": counts, "size": [int(part["size"][0]), int(part["size"][1])]}

    if isinstance(segm, dict):
        return [compressed(segm)]
    if isinstance(segm, list) and segm and isinstance(segm[0], dict):
        if all(isinstance(p, dict) and isinstance(p.get("counts"), str) for p in segm):
            return segm
        return [compressed(p) for p in segm]
    return segm


def iter_files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` (sorted, symlinks neither listed nor followed)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not p.is_symlink():
                yield p
