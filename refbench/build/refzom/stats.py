"""Statistics of a built Ref-ZOM-style dataset, next to the published Ref-ZOM statistics.

Published numbers: DMMI paper (Hu et al., "Beyond One-to-One: Rethinking the Referring
Image Segmentation", ICCV 2023), §4 "Ref-ZOM Dataset".  The paper does not define
"objects" exactly, and its per-type object counts (42,421 one-to-one + 41,842
one-to-many) exceed its total (74,942), so an object can count under both types.  Here
``one_to_one_objects`` / ``one_to_many_objects`` count (ref, target) pairs of that type and
``objects`` counts distinct target annotations; no per-split type counts are published.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from refbench.core.records import TYPES

PUBLISHED_SOURCE = ("Hu et al., Beyond One-to-One: Rethinking the Referring Image Segmentation (DMMI), ICCV 2023, "
                    "Sec. 4 Ref-ZOM Dataset")
PUBLISHED: dict[str, int] = {
    "images": 55078, "objects": 74942,
    "train_images": 43749, "train_objects": 58356,
    "test_images": 11329, "test_objects": 16586,
    "one_to_one_objects": 42421, "one_to_many_objects": 41842, "one_to_zero_images": 11937,
}
# Defaults of the builder derived from the published numbers.
PAPER_TEST_FRACTION = PUBLISHED["test_images"] / PUBLISHED["images"]
PAPER_ZERO_FRACTION = PUBLISHED["one_to_zero_images"] / PUBLISHED["images"]
PAPER_MANY_OBJECT_RATIO = PUBLISHED["one_to_many_objects"] / PUBLISHED["one_to_one_objects"]



def _hist(values: Iterable[int]) -> list[list[int]]:
    return [[int(k), int(v)] for k, v in sorted(Counter(values).items())]


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _targets(ref: dict) -> tuple[int, ...]:
    if ref["source"] == "zero":
        return ()
    a = ref["ann_id"]
    return tuple(dict.fromkeys(a)) if isinstance(a, list) else (a,)


def split_stats(refs: list[dict], ann_cat: Mapping[int, int], cat_names: Mapping[int, str]) -> dict:
    """Counts, sentence lengths and category histogram of a list of Ref-ZOM ref dicts."""
    images = {r["image_id"] for r in refs}
    zero_images = {r["image_id"] for r in refs if r["source"] == "zero"}
    out: dict = {"images": len(images), "zero_images": len(zero_images), "target_images": len(images - zero_images)}
    out["refs"] = {t: sum(1 for r in refs if r["source"] == t) for t in TYPES}
    out["refs"]["total"] = len(refs)
    out["sentences"] = {t: sum(len(r["sentences"]) for r in refs if r["source"] == t) for t in TYPES}
    out["sentences"]["total"] = sum(out["sentences"].values())
    distinct = {a for r in refs for a in _targets(r)}
    out["objects"] = {"one": sum(len(_targets(r)) for r in refs if r["source"] == "one"),
                      "many": sum(len(_targets(r)) for r in refs if r["source"] == "many"), "distinct": len(distinct)}
    out["methods"] = dict(sorted(Counter(r["refbench_method"] for r in refs).items()))
    out["targets_per_many_ref"] = _hist(len(_targets(r)) for r in refs if r["source"] == "many")
    lengths = {t: [len(s["raw"].split()) for r in refs if r["source"] == t for s in r["sentences"]] for t in TYPES}
    out["sentence_length_words"] = {t: {"mean": _mean(v), "histogram": _hist(v)} for t, v in lengths.items()}
    cats: dict[str, Counter] = {}
    for r in refs:
        for a in _targets(r):
            cats.setdefault(cat_names[ann_cat[a]], Counter())[r["source"]] += 1
    out["categories"] = {name: {"one": c["one"], "many": c["many"]} for name, c in sorted(cats.items())}
    return out


def comparison(all_stats: dict, per_split: dict[str, dict]) -> list[dict]:
    """Rows {name, published, built, ratio} for every published number."""
    built = {"images": all_stats["images"], "objects": all_stats["objects"]["distinct"],
             "train_images": per_split["train"]["images"], "train_objects": per_split["train"]["objects"]["distinct"],
             "test_images": per_split["test"]["images"], "test_objects": per_split["test"]["objects"]["distinct"],
             "one_to_one_objects": all_stats["objects"]["one"], "one_to_many_objects": all_stats["objects"]["many"],
             "one_to_zero_images": all_stats["zero_images"]}
    return [{"name": k, "published": v, "built": built[k], "ratio": round(built[k] / v, 6)} for k, v in PUBLISHED.items()]


def dataset_stats(refs: list[dict], ann_cat: Mapping[int, int], cat_names: Mapping[int, str]) -> dict:
    """Per-split and overall statistics plus the comparison with the published Ref-ZOM numbers."""
    per_split = {s: split_stats([r for r in refs if r["split"] == s], ann_cat, cat_names) for s in ("train", "test")}
    overall = split_stats(refs, ann_cat, cat_names)
    return {"splits": per_split, "all": overall,
            "published": {"source": PUBLISHED_SOURCE, "numbers": dict(PUBLISHED),
                          "note": "objects: distinct target annotations; one/many objects: (ref, target) pairs of "
                                  "that type (the paper's per-type counts overlap)",
                          "comparison": comparison(overall, per_split)}}
