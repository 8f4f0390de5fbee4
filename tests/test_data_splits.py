"""Split grammar, paper column names, and the CGFormer seen/unseen generalization subsets."""
from __future__ import annotations

import pytest

from refbench.data import canonical_split, paper_split, parse_split, valid_split_names
from refbench.data.generalization import apply_subset, coco_partition
from refbench.data.refer import select_split
from refbench.data.sample import Ref
from refbench.core.errors import RefbenchError


@pytest.mark.parametrize("name,canonical", [
    ("refcoco/val", "refcoco/val"), ("refcoco+/testB", "refcoco+/testB"), ("RefCOCO+ testA", "refcoco+/testA"),
    ("refcocog/val", "refcocog-umd/val"), ("refcocog-umd/test", "refcocog-umd/test"),
    ("refcocog_google/val", "refcocog-google/val"), ("G-Ref val(U)", "refcocog-umd/val"),
    ("G-Ref test(U)", "refcocog-umd/test"), ("G-Ref val(G)", "refcocog-google/val"),
    ("refcocog/val(G)", "refcocog-google/val"), ("ref-zom/test", "ref-zom/test"), ("RefZOM/train", "ref-zom/train"),
    ("grefcoco/testa", "grefcoco/testA"), ("synth/val", "synth/val"), ("synth-zom/testB", "synth-zom/testB"),
    ("synth-grefcoco/val", "synth-grefcoco/val"), ("refcocog-umd/val:unseen", "refcocog-umd/val:unseen"),
    ("refcoco/test:seen", "refcoco/test:seen"), ("synth/train:SEEN", "synth/train:seen"),
])
def test_grammar(name, canonical):
    assert canonical_split(name) == canonical
    p = parse_split(name)
    assert str(p) == canonical and p.definition.key == p.dataset


@pytest.mark.parametrize("dataset,column,canonical", [
    ("RefCOCO", "val", "refcoco/val"), ("RefCOCO+", "testA", "refcoco+/testA"), ("G-Ref", "val(U)", "refcocog-umd/val"),
    ("G-Ref", "test(U)", "refcocog-umd/test"), ("G-Ref", "val(G)", "refcocog-google/val"),
    ("G-Ref", "val_(U)", "refcocog-umd/val"), ("RefCOCOg", "test", "refcocog-umd/test"),
    ("Refcocog", "val", "refcocog-umd/val"), ("Ref-ZOM", "test", "ref-zom/test"), ("gRefCOCO", "testB", "grefcoco/testB"),
])
def test_paper_column_names(dataset, column, canonical):
    assert paper_split(dataset, column) == canonical


@pytest.mark.parametrize("name,fragment", [
    ("refcoco/tesA", "Did you mean 'refcoco/testA'"), ("refcoc/val", "Did you mean 'refcoco/val'"),
    ("refcocog-google/test", "Valid: refcocog-google/train, refcocog-google/val"),
    ("refcoco/train:unseen", "trains on seen categories only"), ("ref-zom/test:seen", "defined for refcoco"),
    ("synth/val:unsen", "unknown subset 'unsen'"), ("G-Ref val(X)", "unknown split"), ("", "empty split name"),
    ("val", "unknown split 'val'"),
])
def test_bad_names_give_one_actionable_line(name, fragment):
    with pytest.raises(RefbenchError) as e:
        parse_split(name)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_paper_dataset_unknown():
    with pytest.raises(RefbenchError, match="Did you mean 'RefCOCO'"):
        paper_split("RefCOC", "val")


def test_valid_names_cover_the_catalog():
    names = valid_split_names()
    assert {"refcoco/val", "refcoco+/testB", "refcocog-umd/test", "refcocog-google/val", "ref-zom/test",
            "grefcoco/val", "synth/val"} <= set(names)
    assert "refcocog-umd/val:unseen" in valid_split_names(include_subsets=True)
    assert "refcoco/train:unseen" not in valid_split_names(include_subsets=True)


def test_coco_partition_is_ovr_48_17_15():
    p = coco_partition()
    assert (len(p.seen), len(p.unseen), len(p.excluded)) == (48, 17, 15)
    assert p.subset_of(1) == "seen" and p.subset_of(18) == "unseen" and p.subset_of(10) is None
    assert not (p.seen | p.unseen) & p.excluded


def _r(rid, img, cat, split):
    return Ref(rid, img, (rid,), (cat,), "one", split, ((rid, "x"),))


def test_generalization_rules():
    # person (seen), dog (unseen), traffic light (excluded)
    refs = [_r(1, 1, 1, "train"), _r(2, 1, 18, "train"), _r(3, 2, 1, "train"), _r(4, 3, 10, "train"),
            _r(5, 4, 1, "val"), _r(6, 4, 18, "val"), _r(7, 5, 10, "val"), _r(8, 6, 18, "testA"), _r(9, 7, 1, "testB")]
    p = coco_partition()
    train = select_split(refs, "train")
    assert [r.ref_id for r in apply_subset(train, "train", "seen", p, "ref")] == [1, 3]
    assert [r.ref_id for r in apply_subset(train, "train", "seen", p, "image")] == [3]  # image 1 has a dog
    val = select_split(refs, "val")
    for rule in ("ref", "image"):
        assert [r.ref_id for r in apply_subset(val, "val", "seen", p, rule)] == [5]
        assert [r.ref_id for r in apply_subset(val, "val", "unseen", p, rule)] == [6]
    test = select_split(refs, "test")  # RefCOCO(+): test = testA ∪ testB
    assert [r.ref_id for r in apply_subset(test, "test", "unseen", p)] == [8]
    assert [r.ref_id for r in apply_subset(test, "test", "seen", p)] == [9]
    with pytest.raises(RefbenchError, match="unknown generalization rule"):
        apply_subset(val, "val", "seen", p, "box")
    multi = [Ref(1, 1, (1, 2), (1, 18), "many", "val", ((1, "x"),))]
    with pytest.raises(RefbenchError, match="one-target datasets only"):
        apply_subset(multi, "val", "seen", p)
