"""CGFormer's generalization setting: seen / unseen category subsets (CVPR 2023, Sec. 4).

Category lists: the open-vocabulary COCO split of OVR-CNN (48 seen, 17 unseen; the other
15 COCO classes belong to neither), shipped as ``coco_ovr_categories.json``; synthetic
datasets ship their own ``seen_unseen.json`` in the same schema.

Rule ``ref`` (default; the one CGFormer's published ref counts point to, see
datasets_and_splits.md §A.2): a ref belongs to the subset of its referent's category.
Training keeps only ``seen`` refs; evaluation splits into ``:seen`` and ``:unseen`` and
drops refs of the excluded categories.  RefCOCO(+) ``test`` is testA ∪ testB (REFER's
``test`` selection).  Rule ``image`` (the alternative, behind ``generalization_rule``):
training drops every image that has a referred object outside the seen set; evaluation
subsets are the same as under ``ref``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

from refbench.data.sample import Ref
from refbench.core.errors import RefbenchError

RULES = ("ref", "image")
COCO_PARTITION_FILE = "coco_ovr_categories.json"
SYNTH_PARTITION_FILE = "seen_unseen.json"


@dataclass(frozen=True)
class Partition:
    """Category ids per generalization subset; ``source`` names the file they came from."""

    seen: frozenset[int]
    unseen: frozenset[int]
    excluded: frozenset[int]
    source: str

    def subset_of(self, category_id: int) -> str | None:
        if category_id in self.seen:
            return "seen"
        if category_id in self.unseen:
            return "unseen"
        return None


def _parse(doc: dict, source: str) -> Partition:
    try:
        seen = frozenset(int(i) for i in doc["seen_coco_ids"])
        unseen = frozenset(int(i) for i in doc["unseen_coco_ids"])
        excluded = frozenset(int(i) for i in doc.get("excluded_coco_ids", []))
    except (KeyError, TypeError, ValueError):
        raise RefbenchError(f"{source}: needs integer lists seen_coco_ids and unseen_coco_ids") from None
    if seen & unseen:
        raise RefbenchError(f"{source}: categories {sorted(seen & unseen)} are both seen and unseen")
    return Partition(seen, unseen, excluded, source)


def coco_partition() -> Partition:
    """OVR-COCO 48 seen / 17 unseen / 15 excluded (package data)."""
    text = resources.files("refbench.data").joinpath(COCO_PARTITION_FILE).read_text()
    return _parse(json.loads(text), f"refbench/data/{COCO_PARTITION_FILE}")


def load_partition(path: str | Path) -> Partition:
    from refbench.data.coco import read_json

    return _parse(read_json(path), str(path))


def apply_subset(refs: Iterable[Ref], split: str, subset: str, partition: Partition, rule: str = "ref") -> list[Ref]:
    """The refs of ``split`` (already selected) that belong to ``subset`` under ``rule``."""
    if rule not in RULES:
        raise RefbenchError(f"unknown generalization rule {rule!r}; valid: {', '.join(RULES)}")
    refs = list(refs)
    for r in refs:
        if len(r.category_ids) != 1:
            raise RefbenchError(f"ref {r.ref_id} has {len(r.category_ids)} categories; the seen/unseen subsets are "
                                f"defined for one-target datasets only")
    if split == "train" and rule == "image":
        bad_images = {r.image_id for r in refs if partition.subset_of(r.category_ids[0]) != "seen"}
        return [r for r in refs if r.image_id not in bad_images]
    return [r for r in refs if partition.subset_of(r.category_ids[0]) == subset]
