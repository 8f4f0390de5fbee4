"""The synthetic benchmark: determinism, round trip through the real readers, exact GT masks,
and sentences that really single out (or miss) their targets."""
from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
from PIL import Image

from refbench.build.synth import (BENCHMARK_SIZES, SynthConfig, build_synth, ensure_synth, image_plan, render_scene)
from refbench.build.synth_scene import CATEGORIES, COLORS
from refbench.data import open_split
from refbench.data.check import verify_manifest
from refbench.core.errors import RefbenchError

SPLITS = ("train", "val", "testA", "testB")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return ensure_synth("tiny", 0, tmp_path_factory.getbasetemp() / "refbench-synth-cache")


@pytest.fixture(scope="module")
def scenes():
    cfg = SynthConfig(seed=0, size="tiny")
    return {iid: render_scene(iid, split, cfg)[1] for iid, split in image_plan("tiny")}


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical_and_seed_matters(tmp_path, synth_root):
    again = build_synth(tmp_path / "again", seed=0, size="tiny", workers=1)
    a, b = _tree(synth_root), _tree(tmp_path / "again")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert json.loads(a["manifest.json"]) == again
    other = build_synth(tmp_path / "other", seed=1, size="tiny", workers=2)
    assert other["files"]["synth/refs(unc).p"] != again["files"]["synth/refs(unc).p"]
    assert other["files"]["images/synth/synth_000000000001.jpg"] != again["files"]["images/synth/synth_000000000001.jpg"]


def test_manifest_lists_every_file_with_its_sha256(synth_root, tmp_path):
    manifest = json.loads((synth_root / "manifest.json").read_text())
    on_disk = {p.relative_to(synth_root).as_posix() for p in synth_root.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json", ".refbench-output.json"}   # + refbench's marker
    assert verify_manifest(synth_root).startswith("all ")
    n_images = sum(BENCHMARK_SIZES["tiny"].values())
    assert sum(1 for k in manifest["files"] if k.startswith("images/synth/")) == n_images


@pytest.mark.parametrize("dataset", ["synth", "synth-zom", "synth-grefcoco"])
def test_readers_load_exactly_what_the_generator_wrote(synth_root, dataset):
    counts = json.loads((synth_root / "manifest.json").read_text())["counts"][dataset]
    for split in SPLITS:
        sd = open_split(f"{dataset}/{split}", synth_root)
        c = sd.counts()
        want = counts[split]
        assert (c["refs"], c["total"], c["zero"], c["one"], c["many"]) == \
            (want["refs"], want["sentences"], want["zero"], want["one"], want["many"])
        assert sd.expected_sentences == want["sentences"]
        assert len({s.image_id for s in sd.samples}) <= want["images"]
        assert len({s.sample_id for s in sd.samples}) == len(sd.samples)
    test = open_split(f"{dataset}/test", synth_root)
    assert len(test) == counts["testA"]["sentences"] + counts["testB"]["sentences"]
    if dataset != "synth":
        assert all(counts[s][t] > 0 for s in ("train", "val") for t in ("zero", "one", "many"))


def test_testA_targets_round_shapes_and_testB_the_others(synth_root):
    round_ids = {c.id for c in CATEGORIES if c.supercategory == "round"}
    a, b = open_split("synth/testA", synth_root), open_split("synth/testB", synth_root)
    assert len(a) and len(b)
    assert all(s.category_ids[0] in round_ids for s in a.samples)
    assert not any(s.category_ids[0] in round_ids for s in b.samples)
    assert not {s.image_id for s in a.samples} & {s.image_id for s in b.samples}


@pytest.mark.parametrize("name", ["synth/train", "synth/val", "synth-zom/val", "synth-grefcoco/testA"])
def test_gt_from_annotations_equals_rendered_masks_pixel_exact(synth_root, scenes, name):
    sd = open_split(name, synth_root)
    polygons = rles = 0
    for s in sd.samples:
        objs = scenes[s.image_id]
        want = np.zeros((s.height, s.width), bool)
        for a in s.ann_ids:
            want |= objs[a % 100].visible
        for rule in ("lavt", "union"):
            got = sd.gt_mask(s, rule)
            assert got.shape == (480, 640) and got.dtype == bool
            assert np.array_equal(got, want), (name, s.sample_id, rule, int((got ^ want).sum()))
        for segm in sd.segmentations(s):  # REFER-readable: polygon lists, or a list of RLE dicts
            polygons += isinstance(segm[0], list)
            rles += isinstance(segm[0], dict)
        if s.type == "zero":
            assert not want.any()
    if name == "synth/train":
        assert polygons > 0 and rles > 0  # both encodings are exercised


def test_image_pixels_show_the_annotated_objects(synth_root, scenes):
    sd = open_split("synth/val", synth_root)
    for s in sd.samples[:40]:
        img = np.asarray(Image.open(sd.image_path(s)).convert("RGB"), np.float32)
        assert img.shape == (480, 640, 3)
        obj = scenes[s.image_id][s.ann_ids[0] % 100]
        inner = sd.gt_mask(s)
        for _ in range(3):  # the 2-px dark rim is part of the mask; compare the interior
            inner[1:-1, 1:-1] &= inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
        mean = img[inner].mean(0)
        assert np.abs(mean - np.array(COLORS[obj.color])).max() < 12, (s.sample_id, obj.color, mean)


# --- an independent reader of the generated sentences --------------------------------------------

_NOUNS = {n: c.name for c in CATEGORIES for n in c.nouns + c.plurals}
_SIZES = {"small": "small", "little": "small", "medium": "medium", "medium-sized": "medium", "large": "large",
          "big": "large"}
_POSITION = {"left", "right", "above", "over", "below", "under", "beneath", "next", "beside", "near", "top",
             "bottom", "upper", "lower", "leftmost", "rightmost", "topmost", "bottommost", "on", "at", "to"}


def _attrs(words: list[str]) -> dict:
    text = " ".join(words)
    out = {}
    for noun in sorted(_NOUNS, key=len, reverse=True):
        if re.search(rf"\b{re.escape(noun)}\b", text):
            out["cat"] = _NOUNS[noun]
            break
    for w in words:
        if w in COLORS:
            out["color"] = w
        if w in _SIZES:
            out["size"] = _SIZES[w]
    return out


def _match(objs, attrs) -> set[int]:
    return {k for k, o in enumerate(objs)
            if all({"cat": o.category.name, "color": o.color, "size": o.size}[a] == v for a, v in attrs.items())}


def _split_at_position(sentence: str) -> tuple[list[str], list[str]]:
    words = sentence.split()
    for i, w in enumerate(words):
        if w in _POSITION:
            return words[:i], words[i:]
    return words, []


_RELATIONS = {"left", "right", "above", "over", "below", "under", "beneath", "next", "beside", "near", "to"}
_EXTREMES = {"left": ("left", "leftmost"), "right": ("right", "rightmost"), "top": ("top", "upper", "topmost"),
             "bottom": ("bottom", "lower", "bottommost")}


def _direction(word: str) -> str | None:
    return next((d for d, ws in _EXTREMES.items() if word in ws), None)


def _is_extreme(objs, target: int, group: set[int], direction: str) -> bool:
    key = {"left": lambda o: o.cx, "right": lambda o: -o.cx, "top": lambda o: o.cy, "bottom": lambda o: -o.cy}[direction]
    return all(key(objs[target]) < key(objs[g]) for g in group - {target})


def test_sentences_single_out_their_targets(synth_root, scenes):
    checked = {"one": 0, "many": 0, "zero": 0, "relation": 0, "extreme": 0}
    for split in SPLITS:
        sd = open_split(f"synth-zom/{split}", synth_root)
        for s in sd.samples:
            objs = scenes[s.image_id]
            targets = {a % 100 for a in s.ann_ids}
            head, tail = _split_at_position(s.sentence)
            attrs = _attrs(head)
            if s.type == "zero":
                assert attrs, s.sentence
                assert not _match(objs, attrs), s.sentence  # nothing in the image fits the description
                checked["zero"] += 1
            elif s.type == "many":
                assert not tail and _match(objs, attrs) == targets, s.sentence
                assert len(targets) >= 2
                checked["many"] += 1
            elif not tail:
                assert _match(objs, attrs) == targets, s.sentence
                checked["one"] += 1
            elif not attrs and _direction(tail[0]):  # "the leftmost red circle"
                (t,) = targets
                group = _match(objs, _attrs(tail[1:]))
                assert t in group and len(group) >= 2 and _is_extreme(objs, t, group, _direction(tail[0])), s.sentence
                checked["extreme"] += 1
            elif attrs and tail[0] in ("on", "at"):  # "the red circle on the left"
                (t,) = targets
                group = _match(objs, attrs)
                assert t in group and _is_extreme(objs, t, group, _direction(tail[-1])), s.sentence
                checked["extreme"] += 1
            elif attrs and tail[0] in _RELATIONS:  # "<target> <relation> the <landmark>"
                land = _match(objs, _attrs(tail))
                assert len(land) == 1 and targets <= _match(objs, attrs), s.sentence
                checked["relation"] += 1
    assert all(v > 5 for v in checked.values()), checked


def test_captions_file_is_coco_captions(synth_root):
    doc = json.loads((synth_root / "annotations" / "captions_synth.json").read_text())
    assert {"images", "annotations", "info"} <= set(doc)
    ids = {im["id"] for im in doc["images"]}
    assert len(doc["annotations"]) == 3 * len(ids)
    assert all(a["image_id"] in ids and a["caption"].strip() for a in doc["annotations"])


def test_seen_unseen_partition_of_synth_categories(synth_root):
    part = json.loads((synth_root / "synth" / "seen_unseen.json").read_text())
    seen, unseen, excl = (set(part[k]) for k in ("seen_coco_ids", "unseen_coco_ids", "excluded_coco_ids"))
    assert seen and unseen and not (seen & unseen) and seen | unseen | excl == {c.id for c in CATEGORIES}
    val = open_split("synth/val", synth_root)
    vs, vu = open_split("synth/val:seen", synth_root), open_split("synth/val:unseen", synth_root)
    assert all(s.category_ids[0] in seen for s in vs.samples)
    assert all(s.category_ids[0] in unseen for s in vu.samples)
    dropped = [s for s in val.samples if s.category_ids[0] in excl]
    assert len(vs) + len(vu) + len(dropped) == len(val)
    assert vs.name == "synth/val:seen" and vu.subset == "unseen"
    tr = open_split("synth/train:seen", synth_root)
    assert 0 < len(tr) < len(open_split("synth/train", synth_root))


def test_open_split_builds_default_benchmark_into_cache_once(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("REFBENCH_CACHE", str(cache))
    empty = tmp_path / "data"
    empty.mkdir()
    from refbench.eval.splits import open_eval_split

    with pytest.raises(RefbenchError, match="holds no 'synth' dataset"):   # an explicit data root is never replaced
        open_eval_split("synth/val", empty, explicit=True, synth_size="tiny")
    sd = open_eval_split("synth/val", empty, explicit=False, synth_size="tiny")
    root = cache / "synth-tiny-seed0"
    assert (root / "manifest.json").is_file() and len(sd) > 0
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert len(open_eval_split("synth-zom/val", None, explicit=False, synth_size="tiny")) > 0
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    stale = json.loads((root / "manifest.json").read_text())
    stale["format_version"] = -1  # as if built by an older generator
    (root / "manifest.json").write_text(json.dumps(stale))
    assert ensure_synth("tiny", 0, cache) == root
    assert json.loads((root / "manifest.json").read_text())["format_version"] != -1  # rebuilt


def test_build_refuses_to_overwrite_without_force(tmp_path, run_cli):
    out = tmp_path / "s"
    code, stdout, err = run_cli("build-dataset", "synth", "--out", out, "--size", "tiny", "--workers", "1")
    assert code == 0, err
    assert "synth-zom" in stdout and (out / "manifest.json").is_file()
    code, _, err = run_cli("build-dataset", "synth", "--out", out, "--size", "tiny")
    assert code == 2 and err.startswith("error:") and "--force" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("build-dataset", "synth", "--out", out, "--size", "tiny", "--force", "--seed", "3",
                           "--workers", "1")
    assert code == 0 and json.loads((out / "manifest.json").read_text())["seed"] == 3
    with pytest.raises(RefbenchError, match="size"):
        build_synth(tmp_path / "x", size="huge")


@pytest.mark.slow
def test_small_benchmark_builds_under_60_seconds(tmp_path):
    t0 = time.perf_counter()
    m = build_synth(tmp_path / "small", size="small")
    elapsed = time.perf_counter() - t0
    assert elapsed < 60, elapsed
    assert sum(c["images"] for c in m["counts"]["synth"].values()) == sum(BENCHMARK_SIZES["small"].values())
    print(f"small synthetic benchmark built in {elapsed:.1f} s on {os.cpu_count()} cpus")
