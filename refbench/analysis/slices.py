"""Slice definitions: which part of a split each sample (sentence) belongs to.

A *partition* assigns every sample exactly one *slice* label, so the slice counts of every
partition add up to the number of samples.  Samples without a target (zero-target sentences) get
the slice ``no target`` wherever a definition needs a target.  All facts come from the split's
annotations at the **original image resolution**; the exact definitions (also written into every
output, and in ``docs/results-analysis.md``):

* ``target type``: zero / one / many, as the dataset labels the sentence.
* ``expression length``: number of words, a word being a maximal run of letters or digits
  (apostrophes inside a word kept: ``man's`` is one word); bins :data:`LENGTH_BINS`.
* ``object size (COCO area)``: GT area in pixels at the original resolution (the union of the
  targets under the protocol's GT rule); COCO's bins: small < 32x32 = 1,024 px, medium < 96x96 =
  9,216 px, large otherwise.
* ``object size (share of image)``: the same area divided by the image's area; bins :data:`SHARE_BINS`.
* ``category``: the target's category name (``several categories`` when a many-target sentence
  refers to objects of different categories).
* ``seen / unseen``: the target category's subset in the generalization partition
  (:mod:`refbench.data.generalization`: OVR-COCO's 48 seen / 17 unseen categories for COCO-based
  datasets, ``seen_unseen.json`` for the synthetic ones); ``neither`` for categories in neither
  list; ``mixed`` for many-target sentences whose targets are in different subsets.
* ``spatial words`` / ``relational words`` / ``attribute words``: whether the expression contains a
  word (lower-cased, as above) of :data:`SPATIAL_WORDS` / :data:`RELATIONAL_WORDS` / :data:`ATTRIBUTE_WORDS`.
* ``same-category objects``: how many annotated objects in the image have the target's category
  (for several targets: any of their categories), the target(s) included: 1 means the category
  alone identifies the object; bins :data:`AMBIGUITY_BINS`.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from refbench.core.errors import RefbenchError
from refbench.core.progress import SILENT, Reporter

NO_TARGET = "no target"

#: words that place the object in the image (absolute position)
SPATIAL_WORDS = frozenset("""
left right top bottom middle center centre upper lower corner side edge leftmost rightmost topmost bottommost
front back background foreground far closest nearest farthest furthest first second third last
""".split())
#: words that relate the object to another object or describe an interaction
RELATIONAL_WORDS = frozenset("""
behind above below under underneath beneath over beside besides between next near by against across among around
toward towards facing touching holding wearing carrying riding sitting standing leaning inside outside than
""".split())
#: colour, size, shape, material and appearance words
ATTRIBUTE_WORDS = frozenset("""
red orange yellow green blue purple pink brown black white gray grey dark light bright golden silver
big bigger biggest large larger largest small smaller smallest little tiny huge tall taller tallest short shorter
long longer wide narrow thin thick fat round striped spotted plaid wooden metal plastic glass old young empty full
open closed
""".split())

#: (low, high, label): words in [low, high]
LENGTH_BINS = ((1, 2, "1-2 words"), (3, 4, "3-4 words"), (5, 6, "5-6 words"), (7, 9, "7-9 words"),
               (10, math.inf, "10+ words"))
#: COCO's object-size bins by absolute area in pixels: (upper bound exclusive, label)
COCO_AREA_BINS = ((32 ** 2, "small (< 32x32 px)"), (96 ** 2, "medium (32x32 to 96x96 px)"),
                  (math.inf, "large (>= 96x96 px)"))
#: bins by the target's share of the image: (upper bound exclusive, label)
SHARE_BINS = ((0.02, "< 2% of the image"), (0.10, "2-10%"), (0.30, "10-30%"), (math.inf, ">= 30%"))
#: (low, high, label): number of same-category objects in the image
AMBIGUITY_BINS = ((1, 1, "1 (unique category)"), (2, 2, "2"), (3, 3, "3"), (4, math.inf, "4+"))

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(sentence: str) -> list[str]:
    """The expression's words, lower-cased (maximal runs of letters/digits; inner apostrophes kept)."""
    return [w.lower() for w in _WORD.findall(sentence)]


@dataclass(frozen=True)
class SampleFacts:
    """What the slices of one sample are computed from (original image resolution)."""

    sample_id: str
    sentence: str
    type: str
    n_words: int
    gt_area: int                # pixels at the original resolution (union of the targets, protocol GT rule)
    image_area: int
    category: str               # NO_TARGET, a category name, or "several categories"
    subset: str                 # NO_TARGET, seen, unseen, neither, mixed
    same_category: int          # annotated objects of the target's category in the image (0 = no target)
    spatial: bool
    relational: bool
    attribute: bool

    @property
    def share(self) -> float:
        return self.gt_area / self.image_area if self.image_area else 0.0


def _bin_range(value: float, bins: Sequence[tuple]) -> str:
    for low, high, label in bins:
        if low <= value <= high:
            return label
    return bins[0][2] if value < bins[0][0] else bins[-1][2]


def _bin_upper(value: float, bins: Sequence[tuple]) -> str:
    for upper, label in bins:
        if value < upper:
            return label
    return bins[-1][1]


def _has(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True)
class Partition:
    """A way to split samples: ``name``, its exact ``definition``, the label of a sample, the label order."""

    name: str
    definition: str
    label: Callable[[SampleFacts], str]
    order: tuple[str, ...] = ()   # labels in display order (others after them, sorted)

    def sort_key(self, label: str) -> tuple:
        return (self.order.index(label), "") if label in self.order else (len(self.order), label)


def _words_def(name: str, ws: frozenset[str]) -> str:
    return f"yes if the expression contains one of the {name} words: {', '.join(sorted(ws))}"


def _targets(f: SampleFacts, label: str) -> str:
    return NO_TARGET if f.type == "zero" else label


PARTITIONS: tuple[Partition, ...] = (
    Partition("target type", "zero / one / many target objects, as the dataset labels the sentence",
              lambda f: f.type, ("zero", "one", "many")),
    Partition("expression length", "number of words (maximal runs of letters or digits); bins "
              + ", ".join(b[2] for b in LENGTH_BINS),
              lambda f: _bin_range(f.n_words, LENGTH_BINS), tuple(b[2] for b in LENGTH_BINS)),
    Partition("object size (COCO area)", "GT area in pixels at the original image resolution (union of the "
              "targets under the protocol's GT rule), COCO bins: small < 32x32 = 1024 px, medium < 96x96 = 9216 px, "
              "large otherwise",
              lambda f: _targets(f, _bin_upper(f.gt_area, COCO_AREA_BINS)),
              tuple(b[1] for b in COCO_AREA_BINS) + (NO_TARGET,)),
    Partition("object size (share of image)", "GT area / image area at the original resolution; bins "
              + ", ".join(b[1] for b in SHARE_BINS),
              lambda f: _targets(f, _bin_upper(f.share, SHARE_BINS)), tuple(b[1] for b in SHARE_BINS) + (NO_TARGET,)),
    Partition("category", "the target's category name ('several categories' when the targets differ)",
              lambda f: f.category),
    Partition("seen / unseen", "the target category's generalization subset (refbench.data.generalization); "
              "'neither' for categories in neither list, 'mixed' when targets differ",
              lambda f: f.subset, ("seen", "unseen", "neither", "mixed", NO_TARGET)),
    Partition("spatial words", _words_def("spatial", SPATIAL_WORDS), lambda f: _has(f.spatial), ("yes", "no")),
    Partition("relational words", _words_def("relational", RELATIONAL_WORDS), lambda f: _has(f.relational),
              ("yes", "no")),
    Partition("attribute words", _words_def("attribute", ATTRIBUTE_WORDS), lambda f: _has(f.attribute),
              ("yes", "no")),
    Partition("same-category objects", "annotated objects in the image with the target's category (any of the "
              "targets' categories), the target(s) included; bins " + ", ".join(b[2] for b in AMBIGUITY_BINS),
              lambda f: _targets(f, _bin_range(f.same_category, AMBIGUITY_BINS)),
              tuple(b[2] for b in AMBIGUITY_BINS) + (NO_TARGET,)),
)


def partition_names() -> list[str]:
    return [p.name for p in PARTITIONS]


# ---- facts from a split ------------------------------------------------------------------------------------------
def generalization_partition(split):
    """The seen/unseen category partition of the split's dataset: OVR-COCO's for COCO-based data; for the
    synthetic datasets the ``seen_unseen.json`` of the dataset's folder or, for the Ref-ZOM- and
    gRefCOCO-style ones (same images and categories), of the ``synth`` folder beside it."""
    from refbench.data.generalization import SYNTH_PARTITION_FILE, coco_partition, load_partition

    if split.definition.synthetic:
        folder = Path(split.annotation_files["refs"]).parent
        for path in (folder / SYNTH_PARTITION_FILE, folder.parent / "synth" / SYNTH_PARTITION_FILE):
            if path.is_file():
                return load_partition(path)
        raise RefbenchError(f"{folder / SYNTH_PARTITION_FILE}: file not found; rebuild the synthetic benchmark "
                            "(refbench build-dataset synth)")
    return coco_partition()


def sample_facts(split, samples: Sequence, gt_rule: str, reporter: Reporter = SILENT) -> list[SampleFacts]:
    """:class:`SampleFacts` of ``samples`` (of ``split``, a :class:`refbench.data.SplitData`).

    GT areas are rasterized once per distinct (image, targets) at the original resolution."""
    part = generalization_partition(split)
    coco = split.coco
    per_image: Counter = Counter((a["image_id"], a["category_id"]) for a in coco.anns.values())
    areas: dict[tuple, int] = {}
    out: list[SampleFacts] = []
    with reporter.progress(len(samples), f"slice facts of {split.name}") as advance:
        for k, s in enumerate(samples):
            key = (s.image_id, s.ann_ids)
            if key not in areas:
                areas[key] = int(split.gt_mask(s, gt_rule).sum()) if s.ann_ids else 0
            cats = sorted(set(s.category_ids))
            if s.type == "zero" or not cats:
                category, subset, same = NO_TARGET, NO_TARGET, 0
            else:
                category = coco.category_name(cats[0]) if len(cats) == 1 else "several categories"
                subsets = {part.subset_of(c) or "neither" for c in cats}
                subset = subsets.pop() if len(subsets) == 1 else "mixed"
                same = sum(per_image[(s.image_id, c)] for c in cats)
            ws = set(words(s.sentence))
            out.append(SampleFacts(s.sample_id, s.sentence, s.type, len(words(s.sentence)), areas[key],
                                   s.height * s.width, category, subset, same, bool(ws & SPATIAL_WORDS),
                                   bool(ws & RELATIONAL_WORDS), bool(ws & ATTRIBUTE_WORDS)))
            if k % 64 == 63 or k == len(samples) - 1:
                advance(k % 64 + 1, "")
    return out


def labels(partition: Partition, facts: Sequence[SampleFacts]) -> np.ndarray:
    """The slice label of every sample (object array, aligned with ``facts``)."""
    return np.array([partition.label(f) for f in facts], dtype=object)


__all__ = ["PARTITIONS", "Partition", "SampleFacts", "sample_facts", "labels", "words", "SPATIAL_WORDS",
           "RELATIONAL_WORDS", "ATTRIBUTE_WORDS", "LENGTH_BINS", "COCO_AREA_BINS", "SHARE_BINS", "AMBIGUITY_BINS",
           "NO_TARGET", "partition_names", "generalization_partition"]
