"""``RISDataset``: a split under a protocol, as model-ready tensors.

    ds = RISDataset(open_split("refcoco/val"), "lavt")
    loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=collate)

Item (dict):
    image           float32 (3, S, S), normalized (S = protocol.input_size or ``input_size``)
    input_ids       int64 (L,);  attention_mask  int64 (L,)  (1 on real tokens)
    mask            bool GT: (C, C) on the protocol canvas C, or (H, W) when canvas is None
    sample_id, type str;  index  int (position in the split);  orig_size  int64 (2,) = (H, W)
    letterbox       float64 (3,) = (scale, pad_x, pad_y), letterbox protocols only
                    (see refbench.data.transforms.letterbox_to_original)
Missing image files: an error at construction, or with ``skip_missing_images=True`` they
are listed in ``.missing`` (sample ids) / ``.missing_paths`` and their items are None,
which :func:`collate` drops, so a run can report them and score the rest.
Images are opened header first (:func:`refbench.data.transforms.open_image`): one above the
pixel limit (100 MP) or not of the size instances.json gives it is refused before decoding;
:func:`check_image_headers` does that for a whole split before any work (~0.1 ms per image).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from refbench.data.masks import rasterize, rasterize_polygons
from refbench.data.sample import Sample
from refbench.data.split_data import SplitData
from refbench.core.tokenize import Tokenizer, get_tokenizer
from refbench.data.transforms import (Letterbox, decode, letterbox_image, letterbox_mask, open_image,
                                      resize_mask_nearest, stretch_image, to_normalized_tensor)
from refbench.core.errors import RefbenchError
from refbench.core.protocols import Protocol, get_protocol


def load_rgb(path: Path, size: tuple[int, int] | None = None) -> Image.Image:
    """An RGB PIL image (as the official loaders: ``Image.open(p).convert("RGB")``).

    The header is read first: an image above ``MAX_PIXELS`` (100 MP), or not of ``size`` =
    (width, height) when given, is refused before any pixel is decoded."""
    with open_image(path) as im:
        if size is not None and im.size != tuple(size):
            raise RefbenchError(f"{path}: image is {im.size[0]}x{im.size[1]} but instances.json says "
                                f"{size[0]}x{size[1]}; the image does not belong to these annotations")
        return decode(im, path, mode="RGB")


def check_image_headers(split_data: SplitData, samples: Sequence[Sample]) -> None:
    """Read the header of every (existing) image of ``samples`` and refuse, before any work, one
    that is above the pixel limit, unreadable, or not the size instances.json gives it.

    ~0.1 ms per image (headers only); missing files are left to the caller's missing-image rule."""
    done: set[str] = set()
    for s in samples:
        if s.image_file in done:
            continue
        done.add(s.image_file)
        path = split_data.image_path(s)
        if not path.is_file():
            continue
        with open_image(path) as im:
            if im.size != (s.width, s.height):
                raise RefbenchError(f"{path}: image is {im.size[0]}x{im.size[1]} but instances.json says "
                                    f"{s.width}x{s.height}; the image does not belong to these annotations")


class RISDataset(Dataset):
    """Samples of a :class:`SplitData` transformed by a protocol (see module doc)."""

    def __init__(self, split_data: SplitData, protocol: "str | Protocol" = "lavt", tokenizer: Tokenizer | None = None,
                 skip_missing_images: bool = False, input_size: int | None = None,
                 tokenizer_path: str | os.PathLike | None = None) -> None:
        self.split_data = split_data
        self.samples: list[Sample] = list(split_data.samples)
        self.protocol = get_protocol(protocol)
        p = self.protocol
        if p.image_resize not in ("stretch", "letterbox"):
            raise RefbenchError(f"protocol {p.name!r}: image_resize must be 'stretch' or 'letterbox'")
        if p.gt_resize not in ("nearest", "polygon", "none"):
            raise RefbenchError(f"protocol {p.name!r}: gt_resize must be 'nearest', 'polygon' or 'none'")
        self.input_size = int(input_size or p.input_size)
        self.canvas = p.canvas if p.gt_resize != "none" else None
        if tokenizer is None:  # the protocol's; a caller-supplied tokenizer (a model's own) is used as given
            tokenizer = get_tokenizer(p.tokenizer, p.token_length, tokenizer_path)
        self.token_length = tokenizer.length
        ids, att = tokenizer.encode_batch([s.sentence for s in self.samples])
        self.input_ids = torch.tensor(ids, dtype=torch.int64).reshape(len(self.samples), self.token_length)
        self.attention_mask = torch.tensor(att, dtype=torch.int64).reshape(len(self.samples), self.token_length)
        files = {s.image_file: split_data.image_path(s) for s in self.samples}
        absent = {f: path for f, path in files.items() if not path.is_file()}
        self.missing: list[str] = [s.sample_id for s in self.samples if s.image_file in absent]
        self.missing_paths: list[Path] = sorted(absent.values())
        self._missing_set = frozenset(self.missing)
        if absent and not skip_missing_images:
            first = self.missing_paths[0]
            raise RefbenchError(f"{len(absent)} image file(s) of {split_data.name} missing ({len(self.missing)} "
                                f"sentences), e.g. {first}; point --data-root/--image-root at the images or pass "
                                f"--skip-missing-images to evaluate the rest")

    def __len__(self) -> int:
        return len(self.samples)

    def gt(self, index: int) -> np.ndarray:
        """bool GT of sample ``index`` as the item's ``mask`` has it, without reading the image."""
        return self._gt(self.samples[index])

    def _gt(self, s: Sample) -> np.ndarray:
        p, sd = self.protocol, self.split_data
        if self.canvas is None:
            return sd.gt_mask(s, p.gt_rule)
        c = self.canvas
        if p.image_resize == "letterbox":
            return letterbox_mask(sd.gt_mask(s, p.gt_rule), Letterbox.fit(s.height, s.width, c), c)
        if p.gt_resize == "nearest":
            return resize_mask_nearest(sd.gt_mask(s, p.gt_rule), c)
        # "polygon" (ReLA): scale polygons to the canvas, then rasterize; RLE parts are resized nearest.
        out = np.zeros((c, c), bool)
        scale = np.array([c / s.width, c / s.height])
        for segm, polys in zip(sd.segmentations(s), sd.gt_polygons(s)):
            if polys is None:
                out |= resize_mask_nearest(rasterize([segm], s.height, s.width, p.gt_rule), c)
            else:
                out |= rasterize_polygons([[q * scale for q in polys]], c, c, p.gt_rule)
        return out

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        s = self.samples[index]
        if s.sample_id in self._missing_set:
            return None
        img = load_rgb(self.split_data.image_path(s), (s.width, s.height))
        p = self.protocol
        item: dict[str, Any] = {}
        if p.image_resize == "stretch":
            item["image"] = to_normalized_tensor(stretch_image(img, self.input_size), p.normalization)
        else:
            boxed, lb = letterbox_image(img, self.input_size, p.normalization)
            item["image"] = to_normalized_tensor(boxed, p.normalization)
            item["letterbox"] = lb.as_tensor()
        item["input_ids"] = self.input_ids[index]
        item["attention_mask"] = self.attention_mask[index]
        item["mask"] = torch.from_numpy(self._gt(s))
        item["sample_id"] = s.sample_id
        item["sentence"] = s.sentence
        item["type"] = s.type
        item["index"] = index
        item["orig_size"] = torch.tensor([s.height, s.width], dtype=torch.int64)
        return item


def collate(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack same-shape tensors, make int lists into int64 tensors, keep strings (and masks of
    differing sizes) as lists; None items (skipped missing images) are dropped; an
    all-None batch gives None."""
    items = [b for b in batch if b is not None]
    if not items:
        return None
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        v0 = vals[0]
        if torch.is_tensor(v0):
            # default_collate stacks straight into shared memory inside DataLoader workers
            same = all(v.shape == v0.shape for v in vals)
            out[key] = default_collate(vals) if same else vals
        elif isinstance(v0, (int, np.integer)) and not isinstance(v0, bool):
            out[key] = torch.tensor([int(v) for v in vals], dtype=torch.int64)
        else:
            out[key] = vals
    return out
