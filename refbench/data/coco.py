"""COCO ``instances.json``: reading with clear errors, and an id index.

Only what the RIS readers need: ``images`` (id, file_name, height, width),
``annotations`` (id, image_id, category_id, segmentation as polygons or RLE) and
``categories`` (id, name, supercategory).  pycocotools' ``COCO`` class is not used: it
prints, and it builds indexes the readers never touch.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from refbench.core.errors import RefbenchError
from refbench.data.masks import MAX_PIXELS, screen_segmentations, validate_segmentation


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; missing, unreadable or truncated files raise one clear RefbenchError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RefbenchError(f"{path}: file not found") from None
    except OSError as e:
        raise RefbenchError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        # An unterminated string means the scanner hit the end of the data looking for the closing quote.
        truncated = e.pos >= len(data.rstrip()) or e.msg.startswith("Unterminated string")
        where = "ends early (truncated download?)" if truncated else f"line {e.lineno} column {e.colno}"
        raise RefbenchError(f"{path}: not valid JSON, {where}: {e.msg}; re-download the file") from None
    except UnicodeDecodeError as e:
        raise RefbenchError(f"{path}: not UTF-8 JSON ({e.reason} at byte {e.start}); re-download the file") from None


@dataclass(frozen=True)
class ImageInfo:
    id: int
    file_name: str
    height: int
    width: int


@dataclass
class CocoIndex:
    """The parts of a COCO instances file the readers use, indexed by id.

    images: {image_id: ImageInfo}; anns: {ann_id: annotation dict};
    categories: {category_id: {"id", "name", "supercategory"}}; path: the source file.
    Annotations are structurally checked when loaded; their segmentations are checked by
    :meth:`validate_anns` (the readers call it for every annotation a split refers to).
    """

    images: dict[int, ImageInfo]
    anns: dict[int, dict]
    categories: dict[int, dict]
    path: Path
    _valid: set[int] = field(default_factory=set, repr=False)

    def ann(self, ann_id: int, ref_desc: str) -> dict:
        try:
            return self.anns[ann_id]
        except KeyError:
            raise RefbenchError(f"{self.path}: no annotation with id {ann_id} (referenced by {ref_desc}); "
                                f"the refs file and instances.json do not belong together") from None

    def image(self, image_id: int, ref_desc: str) -> ImageInfo:
        try:
            return self.images[image_id]
        except KeyError:
            raise RefbenchError(f"{self.path}: no image with id {image_id} (referenced by {ref_desc}); "
                                f"the refs file and instances.json do not belong together") from None

    def category_name(self, category_id: int) -> str:
        c = self.categories.get(category_id)
        return str(c.get("name", category_id)) if c else str(category_id)

    def ann_where(self, ann_id: int) -> str:
        """``instances.json: annotation 1234 (image 42)``: how errors name an annotation."""
        a = self.anns.get(ann_id, {})
        return f"{self.path}: annotation {ann_id} (image {a.get('image_id', '?')})"

    def bad_anns(self, ann_ids: Iterable[int]) -> list[tuple[int, str]]:
        """(ann_id, one-line problem) for every annotation among ``ann_ids`` whose segmentation
        cannot be rasterized for its image; checked in bulk (refbench.data.masks), so this is
        fast for the 100k+ annotations of a COCO file.  Checked ids are remembered."""
        ids = [a for a in dict.fromkeys(ann_ids) if a not in self._valid and a in self.anns]
        if not ids:
            return []
        anns = [self.anns[a] for a in ids]
        imgs = [self.images[a["image_id"]] for a in anns]
        suspicious = screen_segmentations([a["segmentation"] for a in anns], [im.height for im in imgs],
                                          [im.width for im in imgs])
        out = []
        for k in np.flatnonzero(suspicious):
            try:
                validate_segmentation(anns[k]["segmentation"], imgs[k].height, imgs[k].width, self.ann_where(ids[k]))
            except RefbenchError as e:
                out.append((ids[k], str(e)))
        bad = {a for a, _ in out}
        self._valid.update(a for a in ids if a not in bad)
        return out

    def validate_anns(self, ann_ids: Iterable[int]) -> None:
        """Raise the first problem :meth:`bad_anns` finds (one line naming file, annotation and image)."""
        bad = self.bad_anns(ann_ids)
        if bad:
            more = f" ({len(bad) - 1} more annotation(s) have problems; `refbench data check` lists them)" \
                if len(bad) > 1 else ""
            raise RefbenchError(bad[0][1] + more)


def _field(obj: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise RefbenchError(f"{path}: {where} has no field {key!r}; this is not a COCO instances file")
    return obj[key]


def _column(items: list, key: str, what: str, path: Path) -> list:
    """``[item[key] for item in items]`` with a one-line error naming the first item that lacks it."""
    try:
        return [it[key] for it in items]
    except (KeyError, TypeError):
        for i, it in enumerate(items):
            _field(it, key, f"{what}[{i}]", path)
        raise


def _int_column(values: list, key: str, what: str, path: Path, positive: bool = False) -> np.ndarray:
    """int64 array of JSON integers (integral floats such as 480.0 are accepted); a one-line error
    naming the first entry that is not one (or not positive)."""
    types = set(map(type, values))
    try:
        arr = np.asarray(values, np.float64 if float in types else np.int64) if types <= {int, float} else None
    except OverflowError:  # an integer beyond int64
        arr = None
    ok = None if arr is None else (np.isfinite(arr) & (arr == np.round(arr)) if arr.dtype.kind == "f"
                                   else np.ones(len(arr), bool))
    if ok is not None and positive:
        ok &= arr > 0
    if ok is None or not ok.all():
        i = next(i for i, v in enumerate(values)
                 if type(v) not in (int, float) or v != v or v in (float("inf"), float("-inf")) or v != int(v)
                 or abs(v) >= 2**63 or (positive and v <= 0))
        need = "a positive integer" if positive else "an integer"
        raise RefbenchError(f"{path}: {what}[{i}] has {key} {values[i]!r}, not {need}; fix the file or "
                            f"re-download it")
    return arr.astype(np.int64)


def _first_duplicate(ids: np.ndarray) -> tuple[int, int, int] | None:
    """(id, first position, second position) of the first repeated id, or None."""
    if len(ids) < 2:
        return None
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    same = np.flatnonzero(s[1:] == s[:-1])
    if not len(same):
        return None
    pairs = np.stack([order[same], order[same + 1]], 1)
    a, b = pairs[np.argmin(pairs[:, 1])]
    return int(ids[a]), int(a), int(b)


def check_file_name(name: Any) -> str | None:
    """Why ``name`` cannot be an image file name under the image root, or None if it is fine:
    it must be a non-empty relative path that stays inside the root (no ``..``, no drive)."""
    if not isinstance(name, str) or not name:
        return "is not a non-empty string"
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path (it must be relative to the image folder)"
    if ".." in name.replace("\\", "/").split("/"):
        return "contains '..' (it would leave the image folder)"
    return None


def load_instances(path: str | os.PathLike) -> CocoIndex:
    """Read, check and index a COCO instances JSON (see module doc for the fields used).

    Refused with one line naming the entry: missing fields, non-integer ids, duplicate image
    or annotation ids, non-positive or non-integer image sizes, images above
    ``refbench.data.masks.MAX_PIXELS``, file names that leave the image folder, and
    annotations of an image that is not listed.  Checks run on whole columns (numpy), so a
    COCO-sized file costs little more than parsing it."""
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise RefbenchError(f"{path}: top level must be a JSON object with images/annotations/categories")
    images_list = _field(doc, "images", "the top-level object", path)
    anns_list = _field(doc, "annotations", "the top-level object", path)
    cats_list = doc.get("categories", [])
    if not isinstance(images_list, list) or not isinstance(anns_list, list) or not isinstance(cats_list, list):
        raise RefbenchError(f"{path}: 'images', 'annotations' and 'categories' must be lists")
    img_ids = _int_column(_column(images_list, "id", "images", path), "id", "images", path)
    names = _column(images_list, "file_name", "images", path)
    heights = _int_column(_column(images_list, "height", "images", path), "height", "images", path, positive=True)
    widths = _int_column(_column(images_list, "width", "images", path), "width", "images", path, positive=True)
    dup = _first_duplicate(img_ids)
    if dup:
        raise RefbenchError(f"{path}: image id {dup[0]} appears twice (images[{dup[1]}] and images[{dup[2]}]); "
                            f"ids must be unique: fix the file or re-download it")
    big = np.flatnonzero(heights * widths > MAX_PIXELS)
    if len(big):
        i = int(big[0])
        raise RefbenchError(f"{path}: images[{i}] (id {img_ids[i]}) is {widths[i]}x{heights[i]} = "
                            f"{heights[i] * widths[i] / 1e6:.0f} MP, above refbench's limit of "
                            f"{MAX_PIXELS // 1_000_000} MP; fix its height/width")
    for i, name in enumerate(names):
        if type(name) is not str or not name or ".." in name or name[0] in "/\\" or "\x00" in name \
                or name[1:2] == ":":
            why = check_file_name(name)
            if why:
                raise RefbenchError(f"{path}: images[{i}] (id {img_ids[i]}) file_name {name!r} {why}; fix the file")
    ann_ids = _int_column(_column(anns_list, "id", "annotations", path), "id", "annotations", path)
    ann_imgs = _int_column(_column(anns_list, "image_id", "annotations", path), "image_id", "annotations", path)
    _column(anns_list, "segmentation", "annotations", path)
    dup = _first_duplicate(ann_ids)
    if dup:
        raise RefbenchError(f"{path}: annotation id {dup[0]} appears twice (annotations[{dup[1]}] and "
                            f"annotations[{dup[2]}]); ids must be unique: fix the file or re-download it")
    unknown = np.flatnonzero(~np.isin(ann_imgs, img_ids))
    if len(unknown):
        i = int(unknown[0])
        raise RefbenchError(f"{path}: annotations[{i}] (id {ann_ids[i]}) belongs to image {ann_imgs[i]}, which is "
                            f"not in 'images'; fix the file or re-download it")
    images = {int(i): ImageInfo(int(i), n, int(h), int(w))
              for i, n, h, w in zip(img_ids.tolist(), names, heights.tolist(), widths.tolist())}
    # annotations keep their dict, with the checked integer ids written back (a 3.0 becomes 3)
    anns: dict[int, dict] = dict(zip(ann_ids.tolist(), anns_list))
    for a, i, im in zip(anns_list, ann_ids.tolist(), ann_imgs.tolist()):
        if type(a["id"]) is not int or type(a["image_id"]) is not int:
            a["id"], a["image_id"] = i, im
    categories = {}
    for c in cats_list:
        if isinstance(c, dict) and "id" in c:
            try:
                categories[int(c["id"])] = c
            except (TypeError, ValueError):
                raise RefbenchError(f"{path}: category {c['id']!r} has a non-integer id; fix the file") from None
    return CocoIndex(images, anns, categories, path)
