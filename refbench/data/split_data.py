"""``open_split``: a split name -> its samples, image paths and GT masks.

    split = open_split("refcocog-umd/val:unseen", "/data/refer/data")
    split.samples[0].sentence, split.image_path(split.samples[0]), split.gt_mask(split.samples[0])

The data root is the argument, else ``$REFBENCH_DATA``.  Reading never builds anything: the
commands open splits through :func:`refbench.eval.splits.open_eval_split`, which builds the
default synthetic benchmark into the cache when a ``synth*`` split is asked for without data.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refbench.data import grefcoco, refer, refzom
from refbench.data.catalog import DatasetDef
from refbench.data.coco import CocoIndex, load_instances
from refbench.data.generalization import (SYNTH_PARTITION_FILE, Partition, apply_subset, coco_partition,
                                          load_partition)
from refbench.data.layout import ImageLocator, find_dataset_files, find_images, locate_dataset, resolve_data_root
from refbench.data.masks import polygons_of, rasterize
from refbench.data.refer import select_split, to_samples
from refbench.data.sample import TYPES, Ref, Sample
from refbench.data.splits import SplitName, parse_split
from refbench.core.errors import RefbenchError


@dataclass
class SplitData:
    """One split (optionally a seen/unseen subset) of one dataset, ready to evaluate.

    name: canonical split name; dataset, split, subset: its parts; samples: one per
    sentence, in the official iteration order; refs: the selected refs; annotation_files:
    {"refs": path, "instances": path} (hashed into results files); expected_sentences /
    expected_refs: published counts when known (None otherwise); coco: the instances
    index; images: where image files are looked up.
    """

    name: str
    dataset: str
    split: str
    subset: str | None
    samples: list[Sample]
    refs: list[Ref]
    annotation_files: dict[str, Path]
    expected_sentences: int | None
    expected_refs: int | None
    definition: DatasetDef
    coco: CocoIndex = field(repr=False)
    images: ImageLocator = field(repr=False)
    data_root: Path | None = None
    generalization_rule: str = "ref"

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, sample: Sample) -> Path:
        """Where the sample's image file is (or should be) on disk."""
        return self.images.path(sample.image_file)

    def segmentations(self, sample: Sample) -> list:
        """The COCO segmentations of the sample's targets (empty for zero-target)."""
        return [self.coco.ann(a, f"sentence {sample.sent_id}")["segmentation"] for a in sample.ann_ids]

    def gt_mask(self, sample: Sample, rule: str = "lavt") -> np.ndarray:
        """bool (height, width) GT at the original image size under ``rule`` (refbench.data.masks)."""
        return rasterize(self.segmentations(sample), sample.height, sample.width, rule,
                         where=f"{self.annotation_files['instances']} (sentence {sample.sent_id})")

    def gt_polygons(self, sample: Sample) -> list[list[np.ndarray] | None]:
        """Per target annotation: its polygons as float (K, 2) xy pixel arrays, or None if stored as RLE."""
        return [polygons_of(s) for s in self.segmentations(sample)]

    def counts(self) -> dict[str, int]:
        """Sentences by type (zero / one / many) plus ``total`` and ``refs``."""
        out = {t: 0 for t in TYPES}
        for s in self.samples:
            out[s.type] += 1
        out["total"] = len(self.samples)
        out["refs"] = len(self.refs)
        return out


def read_refs(d: DatasetDef, refs_path: Path, coco: CocoIndex | None = None) -> list[Ref]:
    """All refs of a dataset file, with the reader its format needs."""
    if d.format == "refer":
        return refer.load_refs(refs_path)
    if d.format == "refzom":
        return refzom.load_refs(refs_path, coco)
    return grefcoco.load_refs(refs_path, coco)


def _partition(d: DatasetDef, directory: Path) -> Partition:
    if d.synthetic:
        path = directory / SYNTH_PARTITION_FILE
        if not path.is_file():
            raise RefbenchError(f"{path}: file not found; rebuild the synthetic benchmark (refbench build-dataset synth)")
        return load_partition(path)
    return coco_partition()


def synth_manifest_counts(root: Path, dataset: str) -> dict[str, dict] | None:
    """Per-split counts the synthetic generator wrote into manifest.json (None if absent)."""
    path = root / "manifest.json"
    if not path.is_file():
        return None
    try:
        counts = json.loads(path.read_text())["counts"][dataset]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if "testA" in counts and "testB" in counts:
        counts = dict(counts)
        counts["test"] = {k: counts["testA"][k] + counts["testB"][k] for k in counts["testA"]}
    return counts


def _expected(d: DatasetDef, sn: SplitName, root: Path) -> tuple[int | None, int | None]:
    if d.synthetic:
        counts = synth_manifest_counts(root, d.key)
        if counts is None or sn.subset is not None or sn.split not in counts:
            return None, None
        return counts[sn.split]["sentences"], counts[sn.split]["refs"]
    if sn.subset is not None:
        return None, d.cgformer_refs.get((sn.split, sn.subset))
    return d.sentences.get(sn.split), d.refs.get(sn.split)


def open_split(name: str, data_root: str | os.PathLike | None = None, *, image_root: str | os.PathLike | None = None,
               generalization_rule: str = "ref") -> SplitData:
    """Parse ``name`` (refbench.data.splits grammar) and load that split.

    data_root: directory holding the datasets (default ``$REFBENCH_DATA``); image_root:
    override for the image directory; generalization_rule: ``ref`` | ``image`` for
    ``:seen``/``:unseen`` (refbench.data.generalization).
    """
    sn = parse_split(name)
    d = sn.definition
    root = resolve_data_root(data_root)
    if data_root is not None and root is not None and not root.is_dir():
        raise RefbenchError(f"data root {root} does not exist; pass --data-root (or set REFBENCH_DATA) to the "
                            "directory that holds the dataset folders")
    files = locate_dataset(root, d)
    coco = load_instances(files.instances)
    refs = select_split(read_refs(d, files.refs, coco), sn.split)
    if sn.subset is not None:
        refs = apply_subset(refs, sn.split, sn.subset, _partition(d, files.directory), generalization_rule)
    samples = to_samples(refs, coco, sn.split, str(files.refs))
    expected_sentences, expected_refs = _expected(d, sn, root)
    return SplitData(str(sn), sn.dataset, sn.split, sn.subset, samples, refs,
                     {"refs": files.refs, "instances": files.instances}, expected_sentences, expected_refs, d, coco,
                     find_images(root, d, files.directory, image_root), root, generalization_rule)
