"""The datasets refbench reads: format, file names, image sets, splits, published counts.

Counts are the ones the specs confirm (refbench/docs: datasets_and_splits.md and
official_implementations.md §6): refs per split from REFER/CRIS (train from CGFormer's
``utils/dataset.py``), sentences per evaluation split as usually cited, and CGFormer's
seen/unseen ref counts.  Where nothing is published (Ref-ZOM, gRefCOCO per split) the
count is absent rather than guessed.  Synthetic datasets read theirs from ``manifest.json``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from refbench.core.errors import suggest


@dataclass(frozen=True)
class DatasetDef:
    """How to find and read one dataset.

    key: canonical name (``refcocog-umd``); format: ``refer`` | ``refzom`` | ``grefcoco``;
    dir_names: directory names tried under the data root; refs_files: annotation file
    names tried in that directory (first found wins); image_sets: sub-directories of the
    image root that hold its images; splits: valid split names; eval_splits: the splits
    papers report; refs / sentences: published counts per split; generalization: whether
    ``:seen`` / ``:unseen`` subsets are defined; cgformer_refs: CGFormer's ref counts per
    (split, subset); layout: one line describing where the files go.
    """

    key: str
    title: str
    format: str
    dir_names: tuple[str, ...]
    refs_files: tuple[str, ...]
    image_sets: tuple[str, ...]
    splits: tuple[str, ...]
    eval_splits: tuple[str, ...]
    refs: dict[str, int] = field(default_factory=dict)
    sentences: dict[str, int] = field(default_factory=dict)
    generalization: bool = False
    cgformer_refs: dict[tuple[str, str], int] = field(default_factory=dict)
    synthetic: bool = False
    layout: str = ""


def _sum(d: dict[str, int], a: str, b: str) -> int:
    return d[a] + d[b]


_RC_REFS = {"train": 42404, "val": 3811, "testA": 1975, "testB": 1810}
_RC_SENTS = {"val": 10834, "testA": 5657, "testB": 5095}
_RCP_REFS = {"train": 42278, "val": 3805, "testA": 1975, "testB": 1798}
_RCP_SENTS = {"val": 10758, "testA": 5726, "testB": 4889}
_COCO_LAYOUT = ("{root}/{dir}/instances.json and {root}/{dir}/{refs} (REFER layout, LAVT's refer/data/), "
                "images in {root}/images/mscoco/images/train2014")

DATASETS: dict[str, DatasetDef] = {d.key: d for d in (
    DatasetDef("refcoco", "RefCOCO (UNC)", "refer", ("refcoco",), ("refs(unc).p",), ("train2014",),
               ("train", "val", "testA", "testB", "test"), ("val", "testA", "testB"),
               {**_RC_REFS, "test": _sum(_RC_REFS, "testA", "testB")},
               {**_RC_SENTS, "test": _sum(_RC_SENTS, "testA", "testB")}, True,
               {("train", "seen"): 35473, ("val", "seen"): 3175, ("val", "unseen"): 445,
                ("test", "seen"): 3200, ("test", "unseen"): 394}, layout=_COCO_LAYOUT),
    DatasetDef("refcoco+", "RefCOCO+ (UNC)", "refer", ("refcoco+",), ("refs(unc).p",), ("train2014",),
               ("train", "val", "testA", "testB", "test"), ("val", "testA", "testB"),
               {**_RCP_REFS, "test": _sum(_RCP_REFS, "testA", "testB")},
               {**_RCP_SENTS, "test": _sum(_RCP_SENTS, "testA", "testB")}, True,
               {("train", "seen"): 35375, ("val", "seen"): 3171, ("val", "unseen"): 444,
                ("test", "seen"): 3189, ("test", "unseen"): 394}, layout=_COCO_LAYOUT),
    DatasetDef("refcocog-umd", "G-Ref / RefCOCOg (UMD partition)", "refer", ("refcocog",), ("refs(umd).p",),
               ("train2014",), ("train", "val", "test"), ("val", "test"),
               {"train": 42226, "val": 2573, "test": 5023}, {"val": 4896, "test": 9602}, True,
               {("train", "seen"): 33093, ("val", "seen"): 2000, ("val", "unseen"): 386,
                ("test", "seen"): 3935, ("test", "unseen"): 759}, layout=_COCO_LAYOUT),
    DatasetDef("refcocog-google", "G-Ref / RefCOCOg (Google partition)", "refer", ("refcocog",),
               ("refs(google).p",), ("train2014",), ("train", "val"), ("val",),
               {"train": 44822, "val": 5000}, {"val": 9536}, True,
               {("train", "seen"): 35105, ("val", "seen"): 3923, ("val", "unseen"): 760}, layout=_COCO_LAYOUT),
    DatasetDef("ref-zom", "Ref-ZOM (DMMI)", "refzom", ("ref-zom", "refzom", "Ref-ZOM", "ref_zom"),
               ("refs(final).p", "Ref-ZOM(final).p", "Ref_ZOM.p"), ("trainval2014", "train2014", "val2014"),
               ("train", "test"), ("test",),
               layout="{root}/{dir}/instances.json and {root}/{dir}/refs(final).p (DMMI's refer/data/ref-zom/; "
                      "the released Ref-ZOM(final).p and Ref_ZOM.p are accepted too), images in "
                      "{root}/images/mscoco/images/trainval2014 (COCO train2014 + val2014 merged) or train2014/ + val2014/"),
    DatasetDef("grefcoco", "gRefCOCO (GRES)", "grefcoco", ("grefcoco", "gRefCOCO"), ("grefs(unc).json", "grefs(unc).p"),
               ("train2014",), ("train", "val", "testA", "testB"), ("val", "testA", "testB"),
               layout="{root}/{dir}/instances.json and {root}/{dir}/grefs(unc).json (ReLA's datasets/grefcoco/), "
                      "images in {root}/images/train2014"),
    DatasetDef("synth", "refbench synthetic (REFER format)", "refer", ("synth",), ("refs(unc).p",), ("synth",),
               ("train", "val", "testA", "testB", "test"), ("val", "testA", "testB"), generalization=True,
               synthetic=True, layout="built by `refbench build-dataset synth --out {root}`"),
    DatasetDef("synth-zom", "refbench synthetic (Ref-ZOM format)", "refzom", ("synth-zom",), ("refs(final).p",),
               ("synth",), ("train", "val", "testA", "testB", "test"), ("val", "testA", "testB"), synthetic=True,
               layout="built by `refbench build-dataset synth --out {root}`"),
    DatasetDef("synth-grefcoco", "refbench synthetic (gRefCOCO format)", "grefcoco", ("synth-grefcoco",),
               ("grefs(unc).json",), ("synth",), ("train", "val", "testA", "testB", "test"),
               ("val", "testA", "testB"), synthetic=True,
               layout="built by `refbench build-dataset synth --out {root}`"),
)}


def get_dataset(key: str) -> DatasetDef:
    try:
        return DATASETS[key]
    except KeyError:
        raise suggest(key, DATASETS, "dataset") from None
