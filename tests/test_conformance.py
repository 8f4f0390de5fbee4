"""Conformance: every file ``refbench build-dataset`` writes loads with the official procedures.

The official loaders are re-implemented here, small and independent, from the facts recorded about
their code (what each reads, indexes and computes) -- not copied:

* :class:`Refer` -- REFER's constructor, ``getRefIds`` and ``getMask`` (the lichengunc API that
  LAVT and MagNet ship) and DMMI's copy (``dmmi=True``: accepts ``ref-zom``, a list ``ann_id``,
  ``source == 'zero'``, union of everything);
* :func:`dmmi_refzom_samples` -- what DMMI's ``Referzom_Dataset`` reads per sentence;
* :class:`GRefer` -- ReLA's ``G_REFER`` (``getRefIds``, ``getMask``, ``getMaskByRef(merge=True)``)
  and the record checks of ReLA's ``load_grefcoco_json``.

Each runs over what ``build-dataset synth`` (both layouts) and ``build-dataset ref-zom`` (from the
synthetic benchmark and from a COCO-style input with crowd and RLE annotations) write, and must
raise nothing and give, per sentence, the same mask as refbench's readers under the matching rule:
LAVT's test GT (polygon count == 1) = refbench ``lavt``; DMMI's (union) = refbench ``union``;
ReLA's merged mask = refbench ``union``.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from refbench.build.refzom import RefZomConfig, build_refzom
from refbench.build.synth import build_synth
from refbench.data import open_split

REFER_DATASETS = ("refcoco", "refcoco+", "refcocog", "refclef")
DMMI_DATASETS = ("refcoco", "refcoco+", "refcocog", "ref-zom")


class DatasetRefused(Exception):
    """REFER prints 'No refer dataset is called ...' and exits; G_REFER raises KeyError."""


# ------------------------------------------------------------------ the official procedures, re-implemented

def _as_list(x):
    return x if isinstance(x, list) else [x]


def _decode_summed(segm, h: int, w: int) -> tuple[np.ndarray, float]:
    """REFER's getMask core: ``segm[0]`` decides polygon vs RLE (a bare dict fails right here),
    pycocotools decodes to (H, W, K), the K maps are summed into uint8; area = sum of RLE areas."""
    if type(segm[0]) == list:  # noqa: E721 -- the official test is exactly this
        rle = coco_mask.frPyObjects(segm, h, w)
    else:
        rle = segm
    m = coco_mask.decode(rle)
    m = np.sum(m, axis=2).astype(np.uint8)
    area = sum(coco_mask.area(rle))
    return m, area


class Refer:
    """REFER (``dmmi=False``) or DMMI's copy of it (``dmmi=True``)."""

    def __init__(self, data_root: Path, dataset: str, split_by: str, dmmi: bool = False) -> None:
        if dataset not in (DMMI_DATASETS if dmmi else REFER_DATASETS):
            raise DatasetRefused(dataset)
        self.dmmi = dmmi
        directory = Path(data_root) / dataset
        with open(directory / f"refs({split_by}).p", "rb") as f:
            self.refs = pickle.load(f)  # the official code unpickles plainly
        with open(directory / "instances.json") as f:
            inst = json.load(f)
        self.anns = {a["id"]: a for a in inst["annotations"]}
        self.imgs = {i["id"]: i for i in inst["images"]}
        self.cats = {c["id"]: c["name"] for c in inst["categories"]}
        self.by_id, self.ref_to_ann, self.sent_tokens = {}, {}, {}
        for ref in self.refs:
            self.by_id[ref["ref_id"]] = ref
            if dmmi:
                self.ref_to_ann[ref["ref_id"]] = [self.anns[a] for a in _as_list(ref["ann_id"])]
            else:
                _ = ref["category_id"]  # REFER indexes catToRefs by it
                self.ref_to_ann[ref["ref_id"]] = self.anns[ref["ann_id"]]
            for sent in ref["sentences"]:
                self.sent_tokens[sent["sent_id"]] = sent["tokens"]

    def ref_ids(self, split: str) -> list[int]:
        if split in ("testA", "testB", "testC"):
            keep = [r for r in self.refs if split[-1] in r["split"]]
        elif split == "test":
            keep = [r for r in self.refs if "test" in r["split"]]
        elif split in ("train", "val"):
            keep = [r for r in self.refs if r["split"] == split]
        else:
            raise SystemExit(f"No such split [{split}]")
        return [r["ref_id"] for r in keep]

    def mask(self, ref: dict) -> np.ndarray:
        """getMask(ref)['mask']: REFER's summed polygons, or DMMI's union over the listed annotations."""
        image = self.imgs[ref["image_id"]]
        h, w = image["height"], image["width"]
        if not self.dmmi:
            return _decode_summed(self.ref_to_ann[ref["ref_id"]]["segmentation"], h, w)[0]
        if ref.get("source", "one") == "zero":
            return np.zeros((h, w))
        parts = [_decode_summed(a["segmentation"], h, w)[0] for a in self.ref_to_ann[ref["ref_id"]]]
        total = np.sum(np.stack(parts, 0), 0)
        return np.where(total != 0, 1, total)


def lavt_gt(refer: Refer, ref: dict) -> np.ndarray:
    """LAVT / MagNet test.py: GT = 1 where REFER's mask == 1."""
    return refer.mask(ref) == 1


def dmmi_refzom_samples(root: Path, split: str) -> list[tuple[int, str, np.ndarray]]:
    """(sent_id, source, GT) of every sentence DMMI's Referzom_Dataset yields for ``split``."""
    refer = Refer(root, "ref-zom", "final", dmmi=True)
    out = []
    for rid in refer.ref_ids(split):
        ref = refer.by_id[rid]
        source = ref["source"]  # read without a default by the dataset class
        gt = refer.mask(ref) == 1
        for sent in ref["sentences"]:
            _ = sent["raw"]
            out.append((sent["sent_id"], source, gt))
    return out


class GRefer:
    """ReLA's G_REFER plus the record checks of its load_grefcoco_json."""

    def __init__(self, data_root: Path, dataset: str = "grefcoco", split_by: str = "unc") -> None:
        if dataset != "grefcoco":
            raise DatasetRefused(dataset)
        directory = Path(data_root) / dataset
        p = directory / f"grefs({split_by}).p"
        if p.exists():
            with open(p, "rb") as f:
                self.refs = pickle.load(f)
        else:
            with open(directory / f"grefs({split_by}).json", "rb") as f:
                self.refs = json.load(f)
        with open(directory / "instances.json") as f:
            inst = json.load(f)
        self.anns = {-1: None, **{a["id"]: a for a in inst["annotations"]}}
        self.imgs = {i["id"]: i for i in inst["images"]}
        self.splits, self.by_id, self.ref_to_anns = [], {}, {}
        for ref in self.refs:
            if ref["split"] not in self.splits:
                self.splits.append(ref["split"])
            _ = _as_list(ref["category_id"])
            self.by_id[ref["ref_id"]] = ref
            self.ref_to_anns[ref["ref_id"]] = [self.anns[a] for a in _as_list(ref["ann_id"])]
            for sent in ref["sentences"]:
                _ = sent["tokens"]

    def ref_ids(self, split: str) -> list[int]:
        if split not in self.splits:
            raise ValueError(f"Invalid split name: {split}")
        return [r["ref_id"] for r in self.refs if r["split"] == split]

    def get_mask(self, ann: dict) -> np.ndarray:
        if ann["iscrowd"]:
            raise ValueError("Crowd object")
        image = self.imgs[ann["image_id"]]
        return _decode_summed(ann["segmentation"], image["height"], image["width"])[0]

    def merged_mask(self, ref: dict) -> tuple[np.ndarray, bool]:
        """getMaskByRef(ref, merge=True): (mask, empty)."""
        if ref["ann_id"] == [-1]:
            img = self.imgs[ref["image_id"]]
            return np.zeros((img["height"], img["width"]), np.uint8), True
        masks = [self.get_mask(a) for a in [self.anns[i] for i in ref["ann_id"]] if not a["iscrowd"]]
        merged = sum(masks)
        merged[np.where(merged > 1)] = 1
        return merged, False

    def check_records(self, split: str) -> None:
        """The asserts load_grefcoco_json makes on every ref of ``split``."""
        for rid in self.ref_ids(split):
            ref = self.by_id[rid]
            img = self.imgs[ref["image_id"]]
            assert ref["split"] == split and ref["image_id"] == img["id"]
            anns = self.ref_to_anns[rid]
            if None in anns:
                assert anns == [None] and ref["ann_id"] == [-1]
                continue
            for ann in anns:
                if ann["iscrowd"]:
                    continue
                assert ann["image_id"] == img["id"] and ann["id"] in ref["ann_id"]
                assert ann.get("segmentation")
            for sent in ref["sentences"]:
                _ = (sent["raw"], sent["sent_id"])


# ------------------------------------------------------------------ comparison with refbench's readers

def _refbench_masks(root: Path, name: str, split: str, rule: str) -> dict[int, np.ndarray]:
    sd = open_split(f"{name}/{split}", root)
    return {s.sent_id: sd.gt_mask(s, rule) for s in sd.samples}


def _compare_refer(root: Path, dataset: str, name: str, splits=("train", "val", "testA", "testB")) -> int:
    """REFER + LAVT's GT and DMMI's REFER + union GT against refbench (``name`` is refbench's dataset)."""
    n = 0
    for dmmi, rule in ((False, "lavt"), (True, "union")):
        refer = Refer(root, dataset, "unc", dmmi=dmmi)
        for split in splits:
            ours = _refbench_masks(root, name, split, rule)
            theirs = {}
            for rid in refer.ref_ids(split):
                ref = refer.by_id[rid]
                gt = lavt_gt(refer, ref) if not dmmi else refer.mask(ref) != 0
                for sent in ref["sentences"]:
                    theirs[sent["sent_id"]] = gt
            assert ours.keys() == theirs.keys()
            for sid in ours:
                assert np.array_equal(ours[sid], theirs[sid]), (dataset, split, sid, rule)
            n += len(ours)
    return n


def _compare_refzom(root: Path, name: str, splits) -> int:
    n = 0
    for split in splits:
        sd = open_split(f"{name}/{split}", root)
        ours = {s.sent_id: (s.type, sd.gt_mask(s, "union")) for s in sd.samples}
        theirs = dmmi_refzom_samples(root, split)
        assert sorted(ours) == sorted(sid for sid, _, _ in theirs)
        for sid, source, gt in theirs:
            typ, mine = ours[sid]
            assert (typ == "zero") == (source == "zero"), sid
            assert np.array_equal(mine, gt), (split, sid)
        n += len(theirs)
    return n


def _compare_grefcoco(root: Path, name: str, splits, dataset: str = "grefcoco") -> int:
    g = GRefer(root, dataset)
    n = 0
    for split in splits:
        g.check_records(split)
        sd = open_split(f"{name}/{split}", root)
        ours = {s.sent_id: (s.type, sd.gt_mask(s, "union")) for s in sd.samples}
        for rid in g.ref_ids(split):
            ref = g.by_id[rid]
            merged, empty = g.merged_mask(ref)
            for sent in ref["sentences"]:
                typ, mine = ours[sent["sent_id"]]
                assert (typ == "zero") == empty
                assert np.array_equal(mine, merged.astype(bool)), (split, sent["sent_id"])
                n += 1
        assert n and len(ours) == sum(len(g.by_id[r]["sentences"]) for r in g.ref_ids(split))
    return n


# ------------------------------------------------------------------ build-dataset synth

@pytest.fixture(scope="module")
def official_synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("official") / "refer_data"
    build_synth(root, seed=0, size="tiny", layout="official", workers=1)
    return root


def test_official_layout_loads_with_refer_lavt_and_dmmi(official_synth):
    assert _compare_refer(official_synth, "refcoco", "refcoco") > 100


def test_official_layout_refzom_loads_with_dmmi(official_synth):
    # refbench's ref-zom has Ref-ZOM's splits (train, test); DMMI's getRefIds selects test = testA + testB too
    assert _compare_refzom(official_synth, "ref-zom", ("train", "test")) > 100
    refer = Refer(official_synth, "ref-zom", "final", dmmi=True)
    for split in ("val", "testA", "testB"):  # the synthetic splits DMMI can select as well
        for rid in refer.ref_ids(split):
            refer.mask(refer.by_id[rid])


def test_official_layout_grefcoco_loads_with_rela(official_synth):
    assert _compare_grefcoco(official_synth, "grefcoco", ("train", "val", "testA", "testB")) > 100


def test_official_layout_images_where_the_loaders_look(official_synth):
    refer = Refer(official_synth, "refcoco", "unc")
    name = next(iter(refer.imgs.values()))["file_name"]
    for image_dir in ("images/mscoco/images/train2014",      # REFER / LAVT / MagNet / DMMI on refcoco
                      "images/mscoco/images/trainval2014",   # DMMI's Ref-ZOM folder
                      "images/train2014"):                   # ReLA's G_REFER
        assert (official_synth / image_dir / name).is_file()


def test_default_layout_files_load_once_the_folders_have_official_names(synth_tiny, tmp_path):
    """The default layout's folder names are refused by the official constructors (that is what
    --layout official is for); its files themselves load unchanged under the official names."""
    with pytest.raises(DatasetRefused):
        Refer(synth_tiny, "synth", "unc")
    with pytest.raises(DatasetRefused):
        Refer(synth_tiny, "synth-zom", "final", dmmi=True)
    with pytest.raises(DatasetRefused):
        GRefer(synth_tiny, "synth-grefcoco")
    view = tmp_path / "view"
    view.mkdir()
    for official, ours in (("refcoco", "synth"), ("ref-zom", "synth-zom"), ("grefcoco", "synth-grefcoco")):
        os.symlink(synth_tiny / ours, view / official)
    splits = ("train", "val", "testA", "testB")
    refer = Refer(view, "refcoco", "unc")
    dmmi = Refer(view, "ref-zom", "final", dmmi=True)
    g = GRefer(view)
    for split in splits:
        # refbench reads the original folders; the official procedures read the same files through the view
        ours = {s.sent_id: s for s in open_split(f"synth/{split}", synth_tiny).samples}
        sd = open_split(f"synth/{split}", synth_tiny)
        for rid in refer.ref_ids(split):
            ref = refer.by_id[rid]
            for sent in ref["sentences"]:
                assert np.array_equal(sd.gt_mask(ours[sent["sent_id"]], "lavt"), lavt_gt(refer, ref))
        zd = open_split(f"synth-zom/{split}", synth_tiny)
        zs = {s.sent_id: s for s in zd.samples}
        for rid in dmmi.ref_ids(split):
            ref = dmmi.by_id[rid]
            for sent in ref["sentences"]:
                assert np.array_equal(zd.gt_mask(zs[sent["sent_id"]], "union"), dmmi.mask(ref) == 1)
        g.check_records(split)
        gd = open_split(f"synth-grefcoco/{split}", synth_tiny)
        gs = {s.sent_id: s for s in gd.samples}
        for rid in g.ref_ids(split):
            ref = g.by_id[rid]
            for sent in ref["sentences"]:
                assert np.array_equal(gd.gt_mask(gs[sent["sent_id"]], "union"), g.merged_mask(ref)[0].astype(bool))


def test_every_rle_is_a_list_of_compressed_dicts_and_nothing_is_crowd(synth_tiny):
    inst = json.loads((synth_tiny / "synth" / "instances.json").read_text())
    kinds = {"polygon": 0, "rle": 0}
    for a in inst["annotations"]:
        segm = a["segmentation"]
        assert isinstance(segm, list) and segm and a["iscrowd"] == 0
        if isinstance(segm[0], list):
            kinds["polygon"] += 1
        else:
            assert all(isinstance(p, dict) and isinstance(p["counts"], str) for p in segm)
            kinds["rle"] += 1
    assert kinds["polygon"] and kinds["rle"]  # both forms occur (rings / occluded objects are RLE)


# Decoded GT of the tiny benchmark (seed 0; every sentence of synth, synth-zom and synth-grefcoco,
# rules lavt and union) and the image files, digested with refbench's readers before the annotation
# format changed to REFER-readable RLE (bare RLE dicts in format version 4): the change moved no pixel.
TINY_GT_DIGEST = "79b619227663e0dc1473b9c5a6c6082da8453c7612187da42d7e2cfd7f483ef1"
TINY_IMAGES_DIGEST = "82d3d3e5210788681039be80e1ff46cf9203b896c664137235cbe486300848c7"


def test_format_change_keeps_every_decoded_mask_and_image(synth_tiny):
    h, n = hashlib.sha256(), 0
    for ds in ("synth", "synth-zom", "synth-grefcoco"):
        for split in ("train", "val", "testA", "testB"):
            sd = open_split(f"{ds}/{split}", synth_tiny)
            for s in sd.samples:
                for rule in ("lavt", "union"):
                    h.update(s.sample_id.encode())
                    h.update(np.packbits(sd.gt_mask(s, rule)).tobytes())
                    n += 1
    assert (n, h.hexdigest()) == (1738, TINY_GT_DIGEST)
    files = json.loads((synth_tiny / "manifest.json").read_text())["files"]
    hi = hashlib.sha256()
    for k, v in sorted(files.items()):
        if k.startswith("images/"):
            hi.update(k.encode())
            hi.update(v.encode())
    assert hi.hexdigest() == TINY_IMAGES_DIGEST


# ------------------------------------------------------------------ build-dataset ref-zom

@pytest.fixture(scope="module")
def refzom_from_synth(synth_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("refzom_conf") / "out"
    build_refzom(synth_tiny / "annotations" / "instances_synth.json", synth_tiny / "annotations" / "captions_synth.json",
                 synth_tiny, out, RefZomConfig(zero_pool="unused", many_object_ratio=3.0))
    return out


def test_refzom_build_loads_with_dmmi(refzom_from_synth):
    assert _compare_refzom(refzom_from_synth, "ref-zom", ("train", "test")) > 50


def _uncompressed_counts(m: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE counts of a 0/1 mask (column-major runs, starting with a 0-run)."""
    flat = m.flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0] + counts if flat[0] == 1 else counts


def _crowd_input(root: Path) -> tuple[Path, Path, Path]:
    """COCO-style input: 8 images of 40x60; image 1 has three persons and a crowd of persons
    (iscrowd 1, uncompressed RLE), image 2 two dogs, one stored as a bare compressed RLE dict with
    iscrowd 0 (as older files had it); REFER refs on images 1 and 2 (one of them on the crowd)."""
    h, w = 40, 60
    images, anns = [], []

    def box(x0, y0, x1, y1):
        m = np.zeros((h, w), np.uint8)
        m[y0:y1, x0:x1] = 1
        return m

    def poly(x0, y0, x1, y1):
        return [[float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]]

    spec = {1: [(1, poly(2, 2, 12, 20), 0), (1, poly(14, 2, 24, 20), 0), (1, poly(26, 2, 36, 20), 0),
                (1, "crowd", 1), (62, poly(2, 24, 20, 38), 0)],
            2: [(18, poly(2, 2, 20, 20), 0), (18, "rle", 0), (15, poly(2, 24, 58, 38), 0)]}
    for iid in range(1, 9):
        images.append({"id": iid, "file_name": f"COCO_train2014_{iid:012d}.jpg", "height": h, "width": w})
        for k, (cat, segm, crowd) in enumerate(spec.get(iid, [(3 + iid, poly(5, 5, 25, 25), 0)])):
            if segm == "crowd":
                segm = {"counts": _uncompressed_counts(box(38, 2, 58, 20)), "size": [h, w]}  # as COCO stores crowds
            elif segm == "rle":
                rle = coco_mask.encode(np.asfortranarray(box(24, 2, 44, 20)))
                segm = {"counts": rle["counts"].decode(), "size": [h, w]}
            anns.append({"id": iid * 10 + k, "image_id": iid, "category_id": cat, "segmentation": segm,
                         "iscrowd": crowd, "area": 1.0, "bbox": [0, 0, 1, 1]})
    names = {1: "person", 18: "dog", 62: "chair", 15: "bench", 4: "motorcycle", 5: "airplane", 6: "bus",
             7: "train", 8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant"}
    cats = [{"id": k, "name": v, "supercategory": "x"} for k, v in sorted(names.items())]
    (root / "annotations").mkdir(parents=True)
    inst = root / "annotations" / "instances.json"
    inst.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    caps = {1: ["three people standing by a chair", "a crowd of people near a chair"],
            2: ["two dogs sitting on a bench"], 3: ["a motorcycle parked outside"], 4: ["an airplane on the runway"],
            5: ["a bus on the street"], 6: ["a train at the station"], 7: ["a truck on a road"],
            8: ["a boat in the water"]}
    cap_doc = [{"id": i, "image_id": iid, "caption": c}
               for i, (iid, c) in enumerate(((iid, c) for iid, cs in caps.items() for c in cs), start=1)]
    cap = root / "annotations" / "captions.json"
    cap.write_text(json.dumps({"annotations": cap_doc}))
    refs, sid = [], 0
    for rid, (aid, iid, cat, sents) in enumerate([(10, 1, 1, ["man on the left"]), (11, 1, 1, ["middle man"]),
                                                  (13, 1, 1, ["the crowd on the right"]),
                                                  (20, 2, 18, ["dog on the left"]), (21, 2, 18, ["dog on the right"])],
                                                 start=1):
        ss = []
        for s in sents:
            sid += 1
            ss.append({"raw": s, "sent": s, "sent_id": sid, "tokens": s.split()})
        refs.append({"ref_id": rid, "ann_id": aid, "image_id": iid, "category_id": cat, "split": "train",
                     "sentences": ss})
    (root / "refer" / "refcoco").mkdir(parents=True)
    (root / "refer" / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return inst, cap, root / "refer"


@pytest.fixture(scope="module")
def refzom_from_coco(tmp_path_factory):
    base = tmp_path_factory.mktemp("crowd_input")
    inst, cap, refer_root = _crowd_input(base / "in")
    out = base / "out"
    build_refzom(inst, cap, refer_root, out, RefZomConfig(zero_pool="unused", zero_fraction=0.25, test_fraction=0.3,
                                                          many_object_ratio=5.0, max_images=None))
    return out, inst


def test_refzom_build_with_crowd_and_rle_inputs_loads_with_dmmi(refzom_from_coco):
    out, _ = refzom_from_coco
    refs = pickle.loads((out / "ref-zom" / "refs(final).p").read_bytes())
    inst = json.loads((out / "ref-zom" / "instances.json").read_text())
    anns = {a["id"]: a for a in inst["annotations"]}
    named = {a for r in refs for a in _as_list(r["ann_id"])}
    assert 13 in anns and anns[13]["iscrowd"] == 1 and 13 not in named      # the crowd is kept, never a target
    # no "all the people" (the crowd's pixels would be missing); joined REFER persons are fine
    assert not any(r["refbench_method"] in ("template", "caption") and set(_as_list(r["ann_id"])) & {10, 11, 12}
                   for r in refs)
    assert any(r["refbench_method"] == "template" and r["ann_id"] == [20, 21] for r in refs)  # both dogs: no crowd
    assert isinstance(anns[21]["segmentation"], list) and isinstance(anns[21]["segmentation"][0]["counts"], str)
    assert {r["source"] for r in refs} >= {"one", "zero"}
    assert _compare_refzom(out, "ref-zom", ("train", "test")) >= len(refs)


def test_refzom_rle_written_for_getmask_keeps_the_pixels(refzom_from_coco):
    out, inst_in = refzom_from_coco
    src = {a["id"]: a for a in json.loads(inst_in.read_text())["annotations"]}
    written = {a["id"]: a for a in json.loads((out / "ref-zom" / "instances.json").read_text())["annotations"]}
    before = coco_mask.decode(src[21]["segmentation"])
    after, _ = _decode_summed(written[21]["segmentation"], 40, 60)
    assert before.sum() > 0 and np.array_equal(before, after)


# ------------------------------------------------------------------ gRefCOCO: crowd targets as ReLA drops them

def _grefcoco_with_crowd(root: Path) -> Path:
    """One image, three persons (polygons) and a crowd of persons (uncompressed RLE, iscrowd 1);
    'all the persons' lists all four, as gRefCOCO does; plus a no-target and a crowd-only ref."""
    h, w = 40, 60
    d = root / "grefcoco"
    d.mkdir(parents=True)
    anns = []
    for k, (x0, x1) in enumerate(((2, 12), (14, 24), (26, 36))):
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1],
                     "segmentation": [[x0, 2.0, x1, 2.0, x1, 30.0, x0, 30.0]]})
    m = np.zeros((h, w), np.uint8)
    m[2:38, 38:58] = 1
    rle = coco_mask.encode(np.asfortranarray(m))
    counts = _uncompressed_counts(m)  # as COCO stores crowd annotations
    anns.append({"id": 4, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": float(coco_mask.area(rle)),
                 "bbox": [38, 2, 20, 36], "segmentation": {"counts": counts, "size": [h, w]}})
    inst = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": h, "width": w}],
            "annotations": anns, "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    (d / "instances.json").write_text(json.dumps(inst))

    def ref(rid, ann_ids, text, sid):
        return {"ref_id": rid, "image_id": 1, "split": "val", "file_name": "COCO_train2014_000000000001_1.jpg",
                "ann_id": ann_ids, "category_id": [1] * len(ann_ids) if ann_ids != [-1] else [-1],
                "no_target": ann_ids == [-1],
                "sentences": [{"raw": text, "sent": text, "sent_id": sid, "tokens": text.split()}]}

    refs = [ref(1, [1, 2, 3, 4], "all the persons", 1), ref(2, [2], "the middle person", 2),
            ref(3, [-1], "the dog", 3), ref(4, [4], "the crowd", 4)]
    (d / "grefs(unc).json").write_text(json.dumps(refs))
    return root


def test_grefcoco_crowd_targets_dropped_as_rela_does(tmp_path):
    root = _grefcoco_with_crowd(tmp_path)
    sd = open_split("grefcoco/val", root)
    s = {x.sent_id: x for x in sd.samples}
    assert s[1].ann_ids == (1, 2, 3) and s[1].type == "many"
    assert s[3].type == "zero"
    assert s[4].ann_ids == () and s[4].type == "one" and not sd.gt_mask(s[4], "union").any()  # targeted, empty GT
    assert int(sd.gt_mask(s[1], "union").sum()) == 3 * 10 * 28          # the crowd's 720 pixels are not GT
    g = GRefer(root)
    g.check_records("val")
    for rid in (1, 2, 3):  # ReLA's merge of a crowd-only ref sums an empty list (an int): not comparable
        merged, empty = g.merged_mask(g.by_id[rid])
        assert np.array_equal(sd.gt_mask(s[rid], "union"), merged.astype(bool)) and (s[rid].type == "zero") == empty


def test_grefcoco_reader_takes_the_index_it_is_given(tmp_path):
    from refbench.data import grefcoco
    from refbench.data.coco import load_instances

    root = _grefcoco_with_crowd(tmp_path)
    coco = load_instances(root / "grefcoco" / "instances.json")
    a = grefcoco.load_refs(root / "grefcoco" / "grefs(unc).json", coco)
    b = grefcoco.load_refs(root / "grefcoco" / "grefs(unc).json")   # reads instances.json beside it
    assert a == b and a[0].ann_ids == (1, 2, 3) and a[0].category_ids == (1, 1, 1)


def test_official_segmentation_keeps_pixels_in_every_input_form():
    from refbench.build.files import official_segmentation

    h, w = 30, 40
    m = np.zeros((h, w), np.uint8)
    m[5:20, 10:33] = 1
    compressed = coco_mask.encode(np.asfortranarray(m))
    forms = {"bare-compressed": {"counts": compressed["counts"].decode(), "size": [h, w]},
             "bare-uncompressed": {"counts": _uncompressed_counts(m), "size": [h, w]},
             "list-uncompressed": [{"counts": _uncompressed_counts(m), "size": [h, w]}],
             "list-compressed": [{"counts": compressed["counts"].decode(), "size": [h, w]}]}
    for name, segm in forms.items():
        out = official_segmentation(segm, h, w)
        assert isinstance(out, list) and all(isinstance(p["counts"], str) for p in out), name
        assert np.array_equal(_decode_summed(out, h, w)[0], m), name
    poly = [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0]]
    assert official_segmentation(poly, h, w) is poly
