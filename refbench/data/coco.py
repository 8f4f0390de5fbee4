"""COCO ``instances.json``: reading with clear errors, and an id index.

Only what the RIS readers need: ``images`` (id, file_name, height, width),
``annotations`` (id, image_id, category_id, segmentation as polygons or RLE) and
``categories`` (id, name, supercategory).  pycocotools' ``COCO`` class is not used: it
prints, and it builds indexes the readers never touch.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refbench.core.errors import RefbenchError


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
    """

    images: dict[int, ImageInfo]
    anns: dict[int, dict]
    categories: dict[int, dict]
    path: Path

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


def _field(obj: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise RefbenchError(f"{path}: {where} has no field {key!r}; this is not a COCO instances file")
    return obj[key]


def load_instances(path: str | os.PathLike) -> CocoIndex:
    """Read and index a COCO instances JSON (see module doc for the fields used)."""
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise RefbenchError(f"{path}: top level must be a JSON object with images/annotations/categories")
    images_list = _field(doc, "images", "the top-level object", path)
    anns_list = _field(doc, "annotations", "the top-level object", path)
    cats_list = doc.get("categories", [])
    if not isinstance(images_list, list) or not isinstance(anns_list, list):
        raise RefbenchError(f"{path}: 'images' and 'annotations' must be lists")
    images: dict[int, ImageInfo] = {}
    for i, im in enumerate(images_list):
        where = f"images[{i}]"
        try:
            info = ImageInfo(int(_field(im, "id", where, path)), str(_field(im, "file_name", where, path)),
                             int(_field(im, "height", where, path)), int(_field(im, "width", where, path)))
        except (TypeError, ValueError):
            raise RefbenchError(f"{path}: {where} has a non-integer id/height/width") from None
        images[info.id] = info
    anns: dict[int, dict] = {}
    for i, a in enumerate(anns_list):
        where = f"annotations[{i}]"
        for key in ("id", "image_id", "segmentation"):
            _field(a, key, where, path)
        anns[int(a["id"])] = a
    categories = {int(c["id"]): c for c in cats_list if isinstance(c, dict) and "id" in c}
    return CocoIndex(images, anns, categories, path)
