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
(pycocotools would read a 4-number polygon as a box; ReLA and detectron2 drop them the same
way; their area is zero, so dropping them changes no pixel).

Validation (:func:`validate_segmentation`, vectorized over many annotations by
:func:`screen_segmentations`) runs before pycocotools sees anything, because pycocotools
trusts its input: a NaN or huge polygon coordinate makes ``frPyObjects`` allocate memory in
proportion to the coordinate (a NaN becomes INT_MIN: ~20 GB), and an RLE whose counts do not
add up to height*width is decoded past its buffer or leaves pixels uninitialized.  Refused:
non-numeric, NaN/inf or odd-length polygon coordinates; points more than one image size
outside the image; polygons whose boundary walk (what pycocotools allocates, 16 bytes per
step at 5 steps per pixel of edge) exceeds ``h*w + 65536`` steps; RLE of another size,
malformed compressed strings, negative counts and counts that do not cover h*w.  So the
scratch memory of rasterizing any accepted polygon is at most 16 bytes per pixel of the
mask it makes (1 MiB for tiny masks), and masks above :data:`MAX_PIXELS` are refused.
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from refbench.core.errors import RefbenchError

RULES = ("lavt", "union")
# The largest image or mask refbench decodes or rasterizes: 100 megapixels (COCO images are ~0.3 MP).
# Also the bound under which PIL's decompression-bomb check stays quiet (see refbench.data.transforms).
MAX_PIXELS = 100_000_000
_SCALE = 5            # pycocotools rleFrPoly upsamples polygons 5x before walking their edges
_WALK_FLOOR = 1 << 16  # boundary steps always allowed (tiny masks); 16 bytes each = 1 MiB


def check_size(h: Any, w: Any, where: str) -> tuple[int, int]:
    """(h, w) as ints, or a RefbenchError when they are not positive or exceed :data:`MAX_PIXELS`."""
    if isinstance(h, bool) or isinstance(w, bool) or not isinstance(h, (int, np.integer)) \
            or not isinstance(w, (int, np.integer)) or h <= 0 or w <= 0:
        raise RefbenchError(f"{where}: mask size {h!r}x{w!r} is not a pair of positive integers")
    if int(h) * int(w) > MAX_PIXELS:
        raise RefbenchError(f"{where}: mask size {w}x{h} = {int(h) * int(w) / 1e6:.0f} MP is above refbench's limit of "
                            f"{MAX_PIXELS // 1_000_000} MP; fix the image size in the annotations")
    return int(h), int(w)


def _is_polygon_list(segm: Any) -> bool:
    return isinstance(segm, list) and (len(segm) == 0 or isinstance(segm[0], (list, tuple)))


def walk_steps(xy: np.ndarray) -> int:
    """Boundary steps pycocotools' rleFrPoly allocates for one polygon (flat x0, y0, x1, y1, ... in
    pixels, finite): sum over the closed polygon's edges of max(|dx|, |dy|) + 1 on the 5x grid."""
    up = np.trunc(xy * _SCALE + 0.5)  # C's (int)(scale*v + .5): truncation toward zero
    x, y = up[0::2], up[1::2]
    dx = np.abs(np.diff(x, append=x[:1]))  # each vertex to the next, the last back to the first
    dy = np.abs(np.diff(y, append=y[:1]))
    return int(np.maximum(dx, dy).sum()) + len(x)


def walk_limit(h: int, w: int) -> int:
    """The most boundary steps a polygon of an (h, w) mask may need: one per pixel, plus 65536."""
    return h * w + _WALK_FLOOR


def _numeric_types(values: Sequence) -> bool:
    """Whether every value is an int or float (numpy's included), not a bool."""
    types = set(map(type, values)) - {int, float}
    return all(issubclass(t, (np.integer, np.floating)) for t in types)


def _polygon(p: Any, h: int, w: int, where: str, k: int) -> np.ndarray | None:
    """One polygon as a flat float64 array after every check; None when it has < 3 points (dropped)."""
    what = f"{where}: polygon {k}"
    if not isinstance(p, (list, tuple)):
        raise RefbenchError(f"{what} is a {type(p).__name__}, not a list of coordinates; fix or drop the annotation")
    try:
        arr = np.asarray(p) if len(p) else np.zeros(0)
    except ValueError:  # ragged nesting
        arr = np.zeros((0, 0))
    if arr.ndim != 1 or arr.dtype.kind not in "iuf" or not _numeric_types(p):
        bad = next((v for v in p if isinstance(v, bool) or not isinstance(v, (int, float))), p[0] if len(p) else None)
        raise RefbenchError(f"{what} has a non-numeric coordinate {bad!r}; fix or drop the annotation")
    if len(arr) % 2:
        raise RefbenchError(f"{what} has an odd number of coordinates ({len(arr)}): an x without its y; "
                            f"fix or drop the annotation")
    if len(arr) < 6:
        return None
    xy = arr.astype(np.float64)
    finite = np.isfinite(xy)
    if not finite.all():
        j = int(np.argmin(finite))
        kind = "NaN" if np.isnan(xy[j]) else "infinite"
        raise RefbenchError(f"{what} has a {kind} coordinate ({'xy'[j % 2]} of point {j // 2}); "
                            f"fix or drop the annotation")
    x, y = xy[0::2], xy[1::2]
    far = (x < -w) | (x > 2 * w) | (y < -h) | (y > 2 * h)
    if far.any():
        j = int(np.argmax(far))
        raise RefbenchError(f"{what}: point {j} ({x[j]:g}, {y[j]:g}) lies far outside the {w}x{h} image; "
                            f"fix or drop the annotation")
    steps = walk_steps(xy)
    if steps > walk_limit(h, w):
        raise RefbenchError(f"{what} has a boundary of {steps // _SCALE} pixels for a {w}x{h} image (zig-zag or "
                            f"corrupt coordinates; rasterizing it would need {16 * steps / 2**20:.0f} MiB); "
                            f"fix or drop the annotation")
    return xy


def rle_string_counts(s: str | bytes) -> np.ndarray | None:
    """The run lengths (int64) of a COCO compressed RLE string, or None if it is malformed.

    The format of pycocotools' rleToString: each count is a little-endian sequence of 5-bit
    groups (character = 48 + group, bit 0x20 = more groups follow, bit 0x10 of the last group =
    negative), and from the fourth count on each is stored as the difference to the count two
    places before it.  Decoded here with numpy (no per-count Python loop)."""
    raw = np.frombuffer(s.encode("latin-1") if isinstance(s, str) else bytes(s), np.uint8).astype(np.int64) - 48
    if len(raw) == 0:
        return np.zeros(0, np.int64)
    if ((raw < 0) | (raw > 63)).any():
        return None
    more = (raw & 0x20) != 0
    if more[-1]:
        return None  # the last count is unterminated
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 7:  # > 35 bits: pycocotools' int shift overflows
        return None
    group = np.repeat(np.arange(len(ends)), lengths)
    pos = np.arange(len(raw)) - starts[group]
    # sum of each count's 5-bit groups (< 2**35: exact in float64)
    x = np.bincount(group, ((raw & 0x1F) << (5 * pos)).astype(np.float64), len(ends)).astype(np.int64)
    negative = (raw[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * lengths[negative])
    # counts[m] = x[m] + counts[m - 2] for m > 2: a cumulative sum along each parity class from index 1 / 2
    counts = x.copy()
    if len(x) > 3:
        counts[1::2] = np.cumsum(x[1::2])
        counts[2::2] = np.cumsum(x[2::2])
    return counts


def _rle(part: Any, h: int, w: int, where: str, k: int | None) -> dict:
    """One checked pycocotools RLE of size (h, w)."""
    what = where if k is None else f"{where}: RLE part {k}"
    if not isinstance(part, dict) or "counts" not in part or "size" not in part:
        raise RefbenchError(f"{what}: segmentation is neither a polygon list nor an RLE dict with counts/size; "
                            f"fix or drop the annotation")
    size = part["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and list(size) == [h, w]):
        raise RefbenchError(f"{what}: RLE size {size!r} does not match the image size [{h}, {w}]; "
                            f"fix or drop the annotation")
    counts = part["counts"]
    if isinstance(counts, list):
        runs = np.asarray(counts) if counts else np.zeros(0, np.int64)
        if runs.ndim != 1 or runs.dtype.kind not in "iu" or (runs < 0).any() or runs.sum() != h * w:
            raise RefbenchError(f"{what}: uncompressed RLE counts must be non-negative integers summing to "
                                f"height*width = {h * w}; fix or drop the annotation")
        return mask_utils.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)
    if isinstance(counts, (str, bytes)):
        runs = rle_string_counts(counts)
        if runs is None:
            raise RefbenchError(f"{what}: compressed RLE string is malformed (characters outside '0'..'o' or an "
                                f"unterminated count); fix or drop the annotation")
        if (runs < 0).any() or runs.sum() != h * w:
            raise RefbenchError(f"{what}: compressed RLE counts must be non-negative and sum to height*width = "
                                f"{h * w} (they sum to {int(runs.sum())}); fix or drop the annotation")
        return {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else bytes(counts)}
    raise RefbenchError(f"{what}: RLE counts must be a list of integers or a string, got {type(counts).__name__}; "
                        f"fix or drop the annotation")


def validate_segmentation(segm: Any, h: int, w: int, where: str = "segmentation") -> list:
    """Check one annotation's segmentation for an (h, w) image and return its parts: flat float64
    polygon arrays (>= 3 points) and pycocotools RLE dicts.  Raises one-line RefbenchErrors
    naming ``where`` and the polygon / RLE part (see the module doc for what is refused)."""
    if _is_polygon_list(segm):
        polys = (_polygon(p, h, w, where, k) for k, p in enumerate(segm))
        return [p for p in polys if p is not None]
    if isinstance(segm, list):
        return [_rle(part, h, w, where, k) for k, part in enumerate(segm)]
    return [_rle(segm, h, w, where, None)]


def screen_segmentations(segms: Sequence[Any], hs: Sequence[int], ws: Sequence[int]) -> np.ndarray:
    """bool (N,): which segmentations need the full check of :func:`validate_segmentation`.

    Polygon lists are checked all at once (numeric, even length, finite, near the image, walk
    within the limit), so only the suspicious ones and RLEs go through the per-annotation
    path.  A False entry is a segmentation :func:`validate_segmentation` accepts."""
    n = len(segms)
    suspicious = np.ones(n, bool)
    owners: list[int] = []
    polys: list = []
    for i, s in enumerate(segms):
        if type(s) is list and all(type(p) is list for p in s):
            owners.extend([i] * len(s))
            polys.extend(s)
            suspicious[i] = False
    if not polys:
        return suspicious
    owner = np.asarray(owners, np.int64)
    lengths = np.fromiter(map(len, polys), np.int64, len(polys))
    odd = lengths % 2 == 1
    suspicious[owner[odd]] = True
    even = [p for p, o in zip(polys, odd) if not o]
    owner, lengths = owner[~odd], lengths[~odd]
    flat = list(chain.from_iterable(even))
    if not set(map(type, flat)) <= {int, float}:
        suspicious[owner] = True  # something non-numeric somewhere: the precise path finds it
        return suspicious
    if not flat:
        return suspicious
    xy = np.asarray(flat, np.float64)
    npts = lengths // 2
    vert = np.repeat(np.arange(len(npts)), npts)  # polygon of every vertex
    h = np.asarray(hs, np.float64)[owner]
    w = np.asarray(ws, np.float64)[owner]
    x, y = xy[0::2], xy[1::2]
    with np.errstate(invalid="ignore", over="ignore"):
        bad_vert = ~np.isfinite(x) | ~np.isfinite(y) | (x < -w[vert]) | (x > 2 * w[vert]) | \
            (y < -h[vert]) | (y > 2 * h[vert])
        # the boundary walk of every polygon: each vertex to the next, the last one back to the first
        first = np.repeat(np.cumsum(npts) - npts, npts)
        idx = np.arange(len(x))
        nxt = np.where(idx + 1 == first + npts[vert], first, idx + 1)
        ux = np.trunc(np.nan_to_num(x) * _SCALE + 0.5)
        uy = np.trunc(np.nan_to_num(y) * _SCALE + 0.5)
        steps = np.maximum(np.abs(ux - ux[nxt]), np.abs(uy - uy[nxt])) + 1
    kept = lengths >= 6  # shorter polygons are dropped unread
    bad = kept & ((np.bincount(vert, bad_vert, len(npts)) > 0) |
                  (np.bincount(vert, steps, len(npts)) > h * w + _WALK_FLOOR))
    suspicious[owner[bad]] = True
    return suspicious


def _rles(segm: Any, h: int, w: int, where: str) -> list[dict]:
    """pycocotools RLEs (one per polygon / RLE part) for a checked segmentation at size (h, w)."""
    parts = validate_segmentation(segm, h, w, where)
    polys = [p.tolist() for p in parts if isinstance(p, np.ndarray)]
    rles = [p for p in parts if isinstance(p, dict)]
    return (mask_utils.frPyObjects(polys, h, w) if polys else []) + rles


_DECODE_CHUNK = 8  # parts decoded at once: memory stays at most 8 (h, w) uint8 planes per annotation


def coverage_count(segm: Any, h: int, w: int, where: str = "segmentation") -> np.ndarray:
    """uint8 (h, w): how many polygons / RLE parts of one annotation cover each pixel (saturating
    at 255).  Parts are decoded 8 at a time, so an annotation with thousands of polygons still
    needs only a few (h, w) planes."""
    h, w = check_size(h, w, where)
    rles = _rles(segm, h, w, where)
    count = None
    for start in range(0, len(rles), _DECODE_CHUNK):
        try:
            part = mask_utils.decode(rles[start:start + _DECODE_CHUNK]).sum(axis=2, dtype=np.uint8)  # (h, w, k)
        except Exception as e:  # pycocotools raises bare Exceptions on bad RLE
            raise RefbenchError(f"{where}: cannot decode segmentation ({e}); fix or drop the annotation") from None
        count = part if count is None else np.minimum(count.astype(np.uint16) + part, 255).astype(np.uint8)
    return np.zeros((h, w), np.uint8) if count is None else count


def rasterize(segmentations: Iterable[Any], h: int, w: int, rule: str = "lavt",
              where: str = "segmentation") -> np.ndarray:
    """bool (h, w): union over annotations of each one's mask under ``rule`` (see module doc)."""
    if rule not in RULES:
        raise RefbenchError(f"unknown GT rule {rule!r}; valid: {', '.join(RULES)}")
    h, w = check_size(h, w, where)
    out = np.zeros((h, w), bool)
    for segm in segmentations:
        count = coverage_count(segm, h, w, where)
        out |= (count == 1) if rule == "lavt" else (count != 0)
    return out


def polygons_of(segm: Any) -> list[np.ndarray] | None:
    """The polygons of a segmentation as float64 (K, 2) xy arrays, or None if it is RLE.

    Only the shape is taken here; the coordinates are checked when the scaled polygons are
    rasterized (:func:`rasterize_polygons`)."""
    if not _is_polygon_list(segm):
        return None
    out = []
    for p in segm:
        if isinstance(p, (list, tuple)) and len(p) >= 6 and len(p) % 2 == 0:
            try:
                out.append(np.asarray(p, np.float64).reshape(-1, 2))
            except (TypeError, ValueError):
                raise RefbenchError(f"segmentation polygon {p[:6]!r}...: non-numeric coordinates; "
                                    f"fix or drop the annotation") from None
        elif isinstance(p, (list, tuple)) and len(p) % 2 == 1:
            raise RefbenchError(f"segmentation polygon of {len(p)} numbers: an x without its y; "
                                f"fix or drop the annotation")
    return out


def rasterize_polygons(polygons: Sequence[Sequence[np.ndarray]], h: int, w: int, rule: str = "lavt") -> np.ndarray:
    """bool (h, w) from per-annotation polygon lists ((K, 2) xy arrays in pixels of the target size)."""
    return rasterize([[p.reshape(-1).tolist() for p in polys] for polys in polygons], h, w, rule)
