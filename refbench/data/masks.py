"""Ground-truth rasterization: COCO segmentations -> boolean masks, under a named rule.

Rules (``Protocol.gt_rule``):
    ``lavt``   official LAVT/MagNet ``test.py``: per annotation, decode every polygon, sum
               the per-polygon masks and keep pixels where the sum == 1 (a pixel covered
               by two polygons of the same object becomes background).
    ``union``  DMMI / ReLA: a pixel is foreground where any polygon covers it.
A multi-target sample (Ref-ZOM, gRefCOCO) is the union over its annotations, each
rasterized under the rule; a zero-target sample is all background.

Segmentations may be polygon lists, an RLE dict (compressed string or uncompressed
count list), or a list of RLE dicts.  Polygons with fewer than 3 points are dropped
(pycocotools would read a 4-number polygon as a box; ReLA drops them the same way).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from refbench.core.errors import RefbenchError

RULES = ("lavt", "union")


def _is_polygon_list(segm: Any) -> bool:
    return isinstance(segm, list) and (len(segm) == 0 or isinstance(segm[0], (list, tuple)))


def _rles(segm: Any, h: int, w: int, where: str) -> list[dict]:
    """pycocotools RLEs (one per polygon / RLE part) for a segmentation at size (h, w)."""
    if _is_polygon_list(segm):
        polys = [list(map(float, p)) for p in segm if len(p) >= 6]
        return mask_utils.frPyObjects(polys, h, w) if polys else []
    parts = segm if isinstance(segm, list) else [segm]
    out = []
    for part in parts:
        if not isinstance(part, dict) or "counts" not in part or "size" not in part:
            raise RefbenchError(f"{where}: segmentation is neither a polygon list nor an RLE dict with counts/size")
        if list(part["size"]) != [h, w]:
            raise RefbenchError(f"{where}: RLE size {list(part['size'])} does not match the image size [{h}, {w}]")
        if isinstance(part["counts"], list):
            out.append(_from_uncompressed(part["counts"], h, w, where))
        else:
            counts = part["counts"]
            out.append({"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts})
    return out


def _from_uncompressed(counts: list, h: int, w: int, where: str) -> dict:
    """A pycocotools RLE from an uncompressed COCO count list (column-major runs, starting with
    background), checked first: pycocotools decodes a list that covers fewer than h*w pixels
    without complaint and leaves the remaining pixels uninitialized (random masks)."""
    runs = np.asarray(counts)
    if runs.ndim != 1 or not np.issubdtype(runs.dtype, np.integer) or (runs < 0).any() or runs.sum() != h * w:
        raise RefbenchError(f"{where}: uncompressed RLE counts must be non-negative integers summing to "
                            f"height*width = {h * w}")
    return mask_utils.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)


def coverage_count(segm: Any, h: int, w: int, where: str = "segmentation") -> np.ndarray:
    """uint8 (h, w): how many polygons / RLE parts of one annotation cover each pixel."""
    rles = _rles(segm, h, w, where)
    if not rles:
        return np.zeros((h, w), np.uint8)
    try:
        decoded = mask_utils.decode(rles)  # (h, w, K) uint8
    except Exception as e:  # pycocotools raises bare Exceptions on bad RLE strings
        raise RefbenchError(f"{where}: cannot decode segmentation ({e})") from None
    return decoded.sum(axis=2, dtype=np.uint8)


def rasterize(segmentations: Iterable[Any], h: int, w: int, rule: str = "lavt",
              where: str = "segmentation") -> np.ndarray:
    """bool (h, w): union over annotations of each one's mask under ``rule`` (see module doc)."""
    if rule not in RULES:
        raise RefbenchError(f"unknown GT rule {rule!r}; valid: {', '.join(RULES)}")
    out = np.zeros((h, w), bool)
    for segm in segmentations:
        count = coverage_count(segm, h, w, where)
        out |= (count == 1) if rule == "lavt" else (count != 0)
    return out


def polygons_of(segm: Any) -> list[np.ndarray] | None:
    """The polygons of a segmentation as float64 (K, 2) xy arrays, or None if it is RLE."""
    if not _is_polygon_list(segm):
        return None
    return [np.asarray(p, np.float64).reshape(-1, 2) for p in segm if len(p) >= 6]


def rasterize_polygons(polygons: Sequence[Sequence[np.ndarray]], h: int, w: int, rule: str = "lavt") -> np.ndarray:
    """bool (h, w) from per-annotation polygon lists ((K, 2) xy arrays in pixels of the target size)."""
    return rasterize([[p.reshape(-1).tolist() for p in polys] for polys in polygons], h, w, rule)
