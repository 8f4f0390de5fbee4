"""REFER / Ref-ZOM / gRefCOCO readers on hand-made annotation files: split selection, sample
types, GT rules, layouts, and one-line errors for bad input."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from refbench.data import open_split
from refbench.data.masks import coverage_count, rasterize
from refbench.core.errors import RefbenchError

H, W = 40, 60
SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]        # 20x20 square
OVERLAP = [20, 20, 40, 20, 40, 35, 20, 35]       # overlaps SQUARE on [20,30]x[20,30]


def _images(n=3):
    return [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": H, "width": W} for i in range(1, n + 1)]


def _anns():
    return [
        {"id": 100, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]},
        {"id": 101, "image_id": 1, "category_id": 18, "segmentation": [SQUARE, OVERLAP]},  # two polygons, one object
        {"id": 200, "image_id": 2, "category_id": 5, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        {"id": 300, "image_id": 3, "category_id": 1, "segmentation": [[5, 5, 15, 5, 15, 15]]},
    ]


def _sent(i, raw):
    return {"raw": raw, "sent": raw.lower(), "sent_id": i, "tokens": raw.lower().split()}


def _ref(rid, ann, img, cat, split, sids):
    return {"ref_id": rid, "ann_id": ann, "image_id": img, "category_id": cat, "split": split,
            "sentences": [_sent(s, f"thing {s}") for s in sids], "sent_ids": list(sids), "file_name": "x.jpg"}


REFER_REFS = [
    _ref(1, 100, 1, 1, "train", [1, 2]),
    _ref(2, 101, 1, 18, "val", [3]),
    _ref(3, 200, 2, 5, "testA", [4, 5, 6]),
    _ref(4, 300, 3, 1, "testB", [7]),
    _ref(5, 100, 1, 1, "testAB", [8]),
]


def write_refer(root, name="refcoco", refs_file="refs(unc).p", refs=REFER_REFS, prefix="", images=True):
    d = root / prefix / name if prefix else root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / refs_file).write_bytes(pickle.dumps(refs, protocol=2))
    (d / "instances.json").write_text(json.dumps({"images": _images(), "annotations": _anns(),
                                                  "categories": [{"id": 1, "name": "person"}, {"id": 5, "name": "airplane"},
                                                                 {"id": 18, "name": "dog"}]}))
    if images:
        img_dir = root / prefix / "images" / "mscoco" / "images" / "train2014" if prefix else \
            root / "images" / "mscoco" / "images" / "train2014"
        img_dir.mkdir(parents=True, exist_ok=True)
        for im in _images():
            Image.new("RGB", (W, H), (im["id"] * 40, 0, 0)).save(img_dir / im["file_name"])
    return d


def test_refer_split_selection_follows_refer(tmp_path):
    write_refer(tmp_path)
    ids = {s: [x.sample_id for x in open_split(f"refcoco/{s}", tmp_path).samples]
           for s in ("train", "val", "testA", "testB", "test")}
    assert ids["train"] == ["1", "2"]
    assert ids["val"] == ["3"]
    assert ids["testA"] == ["4", "5", "6", "8"]     # testAB counts for testA (by letter)
    assert ids["testB"] == ["7", "8"]               # ... and for testB
    assert ids["test"] == ["4", "5", "6", "7", "8"]  # by substring
    sd = open_split("refcoco/testA", tmp_path)
    s = sd.samples[0]
    assert (s.ref_id, s.sent_id, s.image_id, s.ann_ids, s.category_ids, s.type, s.split) == \
        (3, 4, 2, (200,), (5,), "one", "testA")
    assert (s.image_file, s.height, s.width, s.sentence) == ("COCO_train2014_000000000002.jpg", H, W, "thing 4")
    assert sd.image_path(s).is_file()
    assert set(sd.annotation_files) == {"refs", "instances"}
    assert sd.expected_sentences == 5657 and sd.expected_refs == 1975  # published RefCOCO testA counts


def test_lavt_rule_drops_pixels_covered_twice_union_keeps_them(tmp_path):
    write_refer(tmp_path)
    sd = open_split("refcoco/val", tmp_path)
    s = sd.samples[0]
    lavt, union = sd.gt_mask(s, "lavt"), sd.gt_mask(s, "union")
    count = coverage_count([SQUARE, OVERLAP], H, W)
    assert count.max() == 2
    assert np.array_equal(lavt, count == 1) and np.array_equal(union, count > 0)
    assert union.sum() - lavt.sum() == (count == 2).sum() > 0
    single = mask_utils.decode(mask_utils.frPyObjects([SQUARE], H, W))[..., 0].astype(bool)
    assert np.array_equal(rasterize([[SQUARE]], H, W, "lavt"), single)


def test_rle_segmentations_in_every_coco_form():
    m = np.zeros((H, W), np.uint8)
    m[5:20, 7:33] = 1
    m[10:12, 10:12] = 0  # a hole polygons cannot express
    rle = mask_utils.encode(np.asfortranarray(m))
    compressed = {"size": [H, W], "counts": rle["counts"].decode()}
    flat = m.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))  # run boundaries
    runs = np.diff(np.concatenate([[0], changes])).tolist()  # the last run included: counts sum to H*W
    uncompressed = {"size": [H, W], "counts": runs if flat[0] == 0 else [0] + runs}
    for segm in (compressed, uncompressed, [compressed]):
        for rule in ("lavt", "union"):
            assert np.array_equal(rasterize([segm], H, W, rule), m.astype(bool))
    with pytest.raises(RefbenchError, match="does not match the image size"):
        rasterize([{"size": [H + 1, W], "counts": compressed["counts"]}], H, W)
    with pytest.raises(RefbenchError, match="summing to height\\*width = 2400"):
        rasterize([{"size": [H, W], "counts": runs[:-1]}], H, W)  # pycocotools would leave 1,100 pixels random


def test_degenerate_polygons_are_dropped_not_read_as_boxes():
    # A 4-number "polygon" would be a box to pycocotools; ReLA drops polygons with < 3 points.
    assert not rasterize([[[1, 1, 30, 30]]], H, W).any()
    assert rasterize([[[1, 1, 30, 30], SQUARE]], H, W).sum() == rasterize([[SQUARE]], H, W).sum()


def test_layouts_of_the_official_repos_are_found(tmp_path):
    write_refer(tmp_path, prefix="refer/data")
    sd = open_split("refcoco/val", tmp_path)
    assert sd.annotation_files["refs"] == tmp_path / "refer/data/refcoco/refs(unc).p"
    assert sd.image_path(sd.samples[0]).is_file()
    other = tmp_path / "gref"
    write_refer(other, name="refcocog", refs_file="refs(umd).p", prefix="datasets")
    write_refer(other, name="refcocog", refs_file="refs(google).p", prefix="datasets", images=False)
    assert len(open_split("G-Ref val(U)", other)) == 1
    assert open_split("refcocog/val(G)", other).annotation_files["refs"].name == "refs(google).p"


def test_environment_variable_is_the_default_root(tmp_path, monkeypatch):
    write_refer(tmp_path)
    monkeypatch.setenv("REFBENCH_DATA", str(tmp_path))
    assert open_split("refcoco/train").dataset == "refcoco"
    monkeypatch.delenv("REFBENCH_DATA")
    with pytest.raises(RefbenchError, match=r"no data root .*--data-root.*REFBENCH_DATA.*refs\(unc\)\.p"):
        open_split("refcoco/train")


# --- Ref-ZOM ---------------------------------------------------------------------------------------

ZOM_REFS = [
    {"ref_id": 1, "image_id": 1, "ann_id": 100, "split": "train", "source": "one", "sentences": [_sent(1, "a")]},
    {"ref_id": 2, "image_id": 1, "ann_id": [100, 101], "split": "test", "source": "many",
     "sentences": [_sent(2, "both"), _sent(3, "the two")]},
    {"ref_id": 3, "image_id": 2, "ann_id": 200, "split": "test", "source": "zero", "sentences": [_sent(4, "a cow")]},
    {"ref_id": 4, "image_id": 3, "ann_id": [300], "split": "test", "sentences": [_sent(5, "no source field")]},
]


@pytest.mark.parametrize("refs_file", ["refs(final).p", "Ref-ZOM(final).p", "Ref_ZOM.p"])
def test_refzom_types_and_release_file_names(tmp_path, refs_file):
    d = write_refer(tmp_path, name="ref-zom", refs_file=refs_file, refs=ZOM_REFS, images=False)
    merged = tmp_path / "images" / "mscoco" / "images" / "trainval2014"
    merged.mkdir(parents=True)
    sd = open_split("ref-zom/test", tmp_path)
    by_id = {s.sample_id: s for s in sd.samples}
    assert [s.sample_id for s in sd.samples] == ["2", "3", "4", "5"]
    assert by_id["2"].type == "many" and by_id["2"].ann_ids == (100, 101) and by_id["2"].category_ids == (1, 18)
    assert by_id["4"].type == "zero" and by_id["4"].ann_ids == () and by_id["4"].category_ids == ()
    assert by_id["5"].type == "one" and by_id["5"].ann_ids == (300,)
    assert not sd.gt_mask(by_id["4"]).any()
    union = sd.gt_mask(by_id["2"], "union")
    assert np.array_equal(union, rasterize([[SQUARE], [SQUARE, OVERLAP]], H, W, "union"))
    assert sd.image_path(by_id["2"]).parent == merged
    assert sd.annotation_files["refs"] == d / refs_file
    assert sd.counts() == {"zero": 1, "one": 1, "many": 2, "total": 4, "refs": 3}


def test_refzom_images_from_separate_train_and_val_dirs(tmp_path):
    write_refer(tmp_path, name="ref-zom", refs_file="refs(final).p", refs=ZOM_REFS, images=False)
    for s in ("train2014", "val2014"):
        (tmp_path / "images" / s).mkdir(parents=True)
    sd = open_split("ref-zom/test", tmp_path)
    assert sd.image_path(sd.samples[0]).parent.name == "train2014"
    assert sd.images.path("COCO_val2014_000000000001.jpg").parent.name == "val2014"


# --- gRefCOCO ---------------------------------------------------------------------------------------

def _gref(rid, anns, cats, split, sids, no_target=None):
    r = {"ref_id": rid, "image_id": 1, "file_name": "f.jpg", "split": split, "ann_id": anns, "category_id": cats,
         "sentences": [_sent(s, f"g {s}") for s in sids], "sent_ids": sids}
    if no_target is not None:
        r["no_target"] = no_target
    return r


def test_grefcoco_no_target_and_multi_target(tmp_path):
    d = tmp_path / "grefcoco"
    write_refer(tmp_path, name="grefcoco", refs_file="unused.p", refs=[], images=False)
    refs = [_gref(1, [-1], [-1], "val", [1], True), _gref(2, [100, 101], [1, 18], "val", [2, 3], False),
            _gref(3, [100], [1], "testA", [4], False)]
    (d / "grefs(unc).json").write_text(json.dumps(refs))
    sd = open_split("grefcoco/val", tmp_path)
    assert [(s.sample_id, s.type, s.ann_ids) for s in sd.samples] == \
        [("1", "zero", ()), ("2", "many", (100, 101)), ("3", "many", (100, 101))]
    assert sd.gt_polygons(sd.samples[1])[1][1].shape == (4, 2)
    refs[0]["no_target"] = False
    (d / "grefs(unc).json").write_text(json.dumps(refs))
    with pytest.raises(RefbenchError, match="no_target=False but ann_id=\\[-1\\]"):
        open_split("grefcoco/val", tmp_path)


# --- one-line errors ---------------------------------------------------------------------------------

def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_missing_instances_json(tmp_path):
    d = write_refer(tmp_path)
    (d / "instances.json").unlink()
    with pytest.raises(RefbenchError) as e:
        open_split("refcoco/val", tmp_path)
    assert "instances.json: file not found" in _one_line(e)


def test_truncated_instances_json(tmp_path):
    d = write_refer(tmp_path)
    text = (d / "instances.json").read_text()
    (d / "instances.json").write_text(text[: len(text) // 2])
    with pytest.raises(RefbenchError) as e:
        open_split("refcoco/val", tmp_path)
    msg = _one_line(e)
    assert "instances.json" in msg and "truncated" in msg and "re-download" in msg


def test_missing_dataset_names_the_expected_layout(tmp_path):
    with pytest.raises(RefbenchError) as e:
        open_split("refcocog-umd/val", tmp_path)
    msg = _one_line(e)
    assert "refcocog/refs(umd).p" in msg and "instances.json" in msg and "train2014" in msg


def test_unknown_split_lists_valid_ones_and_suggests(tmp_path):
    write_refer(tmp_path)
    with pytest.raises(RefbenchError) as e:
        open_split("refcoco/tesB", tmp_path)
    msg = _one_line(e)
    assert "Did you mean 'refcoco/testB'" in msg and "refcoco/val" in msg


def test_duplicate_sentence_ids_are_an_error(tmp_path):
    refs = [_ref(1, 100, 1, 1, "val", [1]), _ref(2, 200, 2, 5, "val", [1])]
    write_refer(tmp_path, refs=refs)
    with pytest.raises(RefbenchError, match="sent_id 1 appears twice"):
        open_split("refcoco/val", tmp_path)


def test_dangling_ids_and_malformed_refs(tmp_path):
    write_refer(tmp_path, refs=[_ref(1, 999, 1, 1, "val", [1])])
    with pytest.raises(RefbenchError, match="no annotation with id 999"):
        open_split("refcoco/val", tmp_path)
    bad = [{"ref_id": 1, "image_id": 1, "split": "val", "sentences": []}]
    write_refer(tmp_path, refs=bad)
    with pytest.raises(RefbenchError, match="has no field 'ann_id'"):
        open_split("refcoco/val", tmp_path)
    write_refer(tmp_path, refs={"not": "a list"})
    with pytest.raises(RefbenchError, match="expected a list of refs"):
        open_split("refcoco/val", tmp_path)


def test_repeated_ann_ids_are_merged_with_their_categories(tmp_path):
    refs = [{"ref_id": 1, "image_id": 1, "ann_id": [100, 100], "category_id": [1, 1], "split": "test",
             "source": "many", "sentences": [_sent(1, "the same one twice")]},
            {"ref_id": 2, "image_id": 1, "ann_id": [101, 100, 101], "category_id": [18, 1, 18], "split": "test",
             "source": "many", "sentences": [_sent(2, "dog and person")]}]
    write_refer(tmp_path, name="ref-zom", refs_file="refs(final).p", refs=refs, images=False)
    a, b = open_split("ref-zom/test", tmp_path).samples
    assert (a.type, a.ann_ids, a.category_ids) == ("one", (100,), (1,))
    assert (b.type, b.ann_ids, b.category_ids) == ("many", (101, 100), (18, 1))
