"""`refbench build-dataset ref-zom`: lexicon, noun phrases, templates, the zero-target check,
the split, and end to end on the synthetic benchmark and on a hand-made COCO-style input
(load with the Ref-ZOM reader, DMMI loader contract, scoring, determinism, bad inputs)."""
from __future__ import annotations

import json
import pickle
import re
import shutil
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from refbench.build.refzom import RefZomConfig, build_refzom
from refbench.build.refzom.lexicon import Lexicon, load_lexicon_file, pluralize
from refbench.build.refzom.one_to_many import caption, phrase_targets_all
from refbench.build.refzom.one_to_zero import rejection
from refbench.build.refzom.phrases import Chunker
from refbench.build.refzom.sources import load_sources
from refbench.build.refzom.split import split_images
from refbench.build.refzom.templates import NUMBER_NAMES, many_targets, one_target
from refbench.build.synth_scene import CATEGORIES as SYNTH_CATEGORIES
from refbench.data import open_split
from refbench.data.coco import read_json
from refbench.data.masks import rasterize
from refbench.core.errors import RefbenchError
from refbench.core.provenance import sha256_file
from refbench.core.results import load_results

COCO80 = {c["coco_id"]: c["name"] for c in
          json.loads(resources.files("refbench.data").joinpath("coco_ovr_categories.json").read_text())["coco80"]}


# ---------------------------------------------------------------- lexicon, phrases, templates

@pytest.fixture(scope="module")
def coco_lex():
    return Lexicon(COCO80)


@pytest.fixture(scope="module")
def chunker(coco_lex):
    return Chunker(coco_lex)


def _ids(lex, *names):
    return {cid for cid, n in lex.categories.items() if n in names}


def test_lexicon_synonyms_plurals_and_hypernyms(coco_lex):
    lex = coco_lex
    assert lex.lookup("guy") == lex.lookup("women") == lex.lookup("people") == _ids(lex, "person")
    assert lex.lookup("puppy") == lex.lookup("puppies") == lex.lookup("dogs") == _ids(lex, "dog")
    assert lex.lookup("television") == lex.lookup("tvs") == _ids(lex, "tv")
    assert lex.lookup("teddy bear") == _ids(lex, "teddy bear") and lex.lookup("hot-dog") == _ids(lex, "hot dog")
    assert _ids(lex, "dog", "cat", "zebra", "bird") <= lex.lookup("animals")
    assert lex.lookup("thing") == set(COCO80) and lex.lookup("xylophone") == frozenset()
    # names (whole category) versus mentions (subtypes): "men" implies person but does not name all persons
    assert lex.lookup("people", names_only=True) == _ids(lex, "person")
    assert lex.lookup("men", names_only=True) == frozenset() and lex.lookup("men") == _ids(lex, "person")
    assert lex.scan("a guy holding a cell phone".split()) == _ids(lex, "person", "cell phone")
    assert lex.display(_ids(lex, "skis").pop()) == ("pair of skis", "pairs of skis")
    assert lex.report()["fallback_names"] == [] and lex.report()["categories"] == 80


@pytest.mark.parametrize("noun,plural", [
    ("person", "people"), ("knife", "knives"), ("sheep", "sheep"), ("bus", "buses"), ("wine glass", "wine glasses"),
    ("pair of skis", "pairs of skis"), ("mouse", "mice"), ("box", "boxes"), ("city", "cities"), ("toy", "toys"),
    ("woman", "women"), ("human", "humans"), ("toothbrush", "toothbrushes"), ("half circle", "half circles"),
])
def test_pluralize(noun, plural):
    assert pluralize(noun) == plural


def test_lexicon_covers_the_synthetic_categories():
    lex = Lexicon({c.id: c.name for c in SYNTH_CATEGORIES})
    for c in SYNTH_CATEGORIES:
        for w in (*c.nouns, *c.plurals):
            assert lex.lookup(w, names_only=True) == {c.id}
    assert lex.lookup("shapes") == {c.id for c in SYNTH_CATEGORIES}


def test_lexicon_reports_missing_categories_and_takes_a_file(tmp_path):
    with pytest.raises(RefbenchError, match=r"1 category has no lexicon entry: 'zorb'.*--lexicon FILE.*--lexicon-fallback"):
        Lexicon({1: "person", 2: "zorb"})
    lex = Lexicon({1: "person", 2: "zorb"}, fallback=True)
    assert lex.fallback_names == ["zorb"] and lex.lookup("zorbs") == {2}
    f = tmp_path / "lex.json"
    f.write_text(json.dumps({"zorb": {"singular": ["zorb", "hamster ball"], "mentions": ["bubble"]}}))
    lex = Lexicon({1: "person", 2: "zorb"}, load_lexicon_file(f))
    assert lex.lookup("hamster balls") == {2} and lex.lookup("bubbles") == {2} and lex.fallback_names == []
    f.write_text(json.dumps({"zorb": {"plural": ["zorbs"]}}))
    with pytest.raises(RefbenchError, match="non-empty 'singular' list"):
        load_lexicon_file(f)


def test_templates_state_exact_counts_with_correct_plurals():
    words = {v: k for k, v in NUMBER_NAMES.items()}
    for n in range(2, 26):
        for seed in range(12):
            s = many_targets(np.random.default_rng(seed), "sheep", "sheep", n)
            nums = [words[w] for w in s.split() if w in words]
            assert all(x == n for x in nums), s
            if n == 2:
                assert re.search(r"\b(both|two|pair)\b", s) or s.startswith("all the"), s
            if n > 20:
                assert not nums
            u = many_targets(np.random.default_rng(seed), "person", "people", n, counted=False)
            assert not any(w in words for w in u.split()) and ("people" in u or "person" in u)
    assert "pair of pairs" not in "".join(many_targets(np.random.default_rng(s), "pair of skis", "pairs of skis", 2)
                                          for s in range(30))
    assert "giraffe" in one_target(np.random.default_rng(0), "giraffe")
    with pytest.raises(ValueError):
        many_targets(np.random.default_rng(0), "dog", "dogs", 1)


def test_noun_phrases_heads_and_subject(chunker, coco_lex):
    p = chunker.parse("A herd of zebras standing next to each other.")
    assert p.phrases[p.subject].head == "zebras" and p.phrases[p.subject].names == _ids(coco_lex, "zebra")
    p = chunker.parse("a teddy bear sitting on a bed")
    assert p.phrases[p.subject].head == "teddy bear" and p.phrases[p.subject].cats == _ids(coco_lex, "teddy bear")
    p = chunker.parse("the guy on the left")
    assert p.phrases[p.subject].cats == _ids(coco_lex, "person") and not p.phrases[p.subject].names


@pytest.mark.parametrize("text,n,ok", [
    ("Two dogs playing with a frisbee", 2, True),
    ("Two dogs playing with a frisbee", 3, False),     # count must match the instances
    ("dogs sleeping on a couch", 3, True),             # bare plural: all of them
    ("some dogs sleeping on a couch", 3, False),       # subset word
    ("two of the dogs are sleeping", 2, False),        # partitive
    ("black dogs sleeping on a couch", 3, False),      # an adjective may single out a subset
    ("two black dogs on a couch", 2, True),            # ... unless the count covers them all
    ("A herd of zebras walking", 4, True),
    ("a dog on a couch", 2, False),                    # singular
])
def test_caption_phrase_must_speak_of_all_instances(chunker, coco_lex, text, n, ok):
    p = chunker.parse(text)
    k = next(i for i, ph in enumerate(p.phrases) if ph.names & (_ids(coco_lex, "dog") | _ids(coco_lex, "zebra")))
    assert phrase_targets_all(p, k, n, crowd=False) is ok


@pytest.mark.parametrize("text,present,reason", [
    ("a man riding a horse on a beach", ("horse",), "phrase-in-image"),
    ("a man riding a horse on a beach", ("person",), "phrase-in-image"),
    ("a man riding a horse on a beach", ("zebra", "car"), None),
    ("the thing on the left", ("dog",), "phrase-in-image"),          # generic heads match anything
    ("a puppy chewing a shoe", ("dog",), "phrase-in-image"),         # synonym
    ("an orange cat on a sofa", ("orange",), "word-in-image"),       # not a head, still a category word
    ("a view of the city skyline", ("dog",), "no-referent"),         # says nothing checkable
    ("left side", ("dog",), "no-referent"),
])
def test_zero_target_check(chunker, coco_lex, text, present, reason):
    assert rejection(chunker.parse(text), frozenset(_ids(coco_lex, *present)), coco_lex) == reason


def test_split_is_by_image_and_stratified():
    strata = {"zero": list(range(1, 101)), "target": list(range(101, 501))}
    s = split_images(strata, 0.2, seed=3)
    assert set(s) == set(range(1, 501))
    assert sum(s[i] == "test" for i in strata["zero"]) == 20 and sum(s[i] == "test" for i in strata["target"]) == 80
    assert s == split_images(strata, 0.2, seed=3) and s != split_images(strata, 0.2, seed=4)
    with pytest.raises(RefbenchError, match="--test-fraction"):
        split_images(strata, 1.0, 0)


# ---------------------------------------------------------------- a hand-made COCO-style input

SQ = [[10, 10, 30, 10, 30, 30, 10, 30]]


def _coco_input(root):
    """8 images (COCO categories); REFER refs (refcoco/refs(unc).p) on images 1, 2 and 7 only."""
    objs = {1: [("zebra", 2), ("giraffe", 1)], 2: [("person", 3), ("dog", 1)], 3: [("cat", 1), ("couch", 1)],
            4: [("cup", 2), ("dining table", 1)], 5: [("horse", 1), ("person", 1)], 6: [("car", 1), ("bus", 1)],
            7: [("sheep", 2)], 8: [("elephant", 1)]}
    caps = {1: ["Two zebras standing next to a giraffe.", "A giraffe and two zebras in a field"],
            2: ["A family walking a dog in the park", "Three people walking with their dog."],
            3: ["A cat sleeping on a couch."], 4: ["Two cups of coffee on a table."], 5: ["A man riding a horse."],
            6: ["A bus driving down a city street."], 7: ["two sheep grazing in a field"],
            8: ["An elephant walking through tall grass"]}
    by_name = {v: k for k, v in COCO80.items()}
    images, anns, aid = [], [], 0
    ann_of: dict[tuple[int, str], list[int]] = {}
    for iid, spec in objs.items():
        images.append({"id": iid, "file_name": f"COCO_train2014_{iid:012d}.jpg", "height": 40, "width": 60})
        for name, n in spec:
            for _ in range(n):
                aid += 1
                anns.append({"id": aid, "image_id": iid, "category_id": by_name[name], "segmentation": SQ,
                             "iscrowd": 0, "area": 400.0, "bbox": [10, 10, 20, 20]})
                ann_of.setdefault((iid, name), []).append(aid)
    cats = [{"id": k, "name": v, "supercategory": "x"} for k, v in sorted(COCO80.items())]
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                                      "categories": cats}))
    captions = [{"id": i, "image_id": iid, "caption": c} for i, (iid, c) in
                enumerate(((iid, c) for iid, cs in caps.items() for c in cs), start=1)]
    (root / "annotations" / "captions.json").write_text(json.dumps({"annotations": captions}))
    refs_spec = [(1, "zebra", 0, ["left zebra", "zebra on the left"]), (1, "zebra", 1, ["zebra on right"]),
                 (1, "giraffe", 0, ["tall giraffe"]), (2, "person", 0, ["man in blue"]),
                 (2, "person", 1, ["woman in red", "lady in a red coat"]), (7, "sheep", 0, ["sheep in front"])]
    refs, sid = [], 0
    for rid, (iid, name, k, sents) in enumerate(refs_spec, start=1):
        ss = []
        for s in sents:
            sid += 1
            ss.append({"raw": s, "sent": s, "sent_id": sid, "tokens": s.split()})
        refs.append({"ref_id": rid, "ann_id": ann_of[(iid, name)][k], "image_id": iid,
                     "category_id": by_name[name], "split": "train", "sentences": ss})
    (root / "refer" / "refcoco").mkdir(parents=True)
    (root / "refer" / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return root / "annotations" / "instances.json", root / "annotations" / "captions.json", root / "refer", ann_of


@pytest.fixture(scope="module")
def coco_input(tmp_path_factory):
    return _coco_input(tmp_path_factory.mktemp("coco_input"))


def test_caption_noun_phrases_name_all_instances(coco_input):
    inst, caps, refer_root, ann_of = coco_input
    src = load_sources(inst, caps, refer_root)
    lex = Lexicon({k: v["name"] for k, v in src.coco.categories.items()})
    ch = Chunker(lex)
    d = caption(np.random.default_rng(0), src, lex, ch, 2)     # "A family ..." is refused (family is not a name)
    assert d.ann_ids == tuple(ann_of[(2, "person")]) and d.sentences == ("Three people walking with their dog",)
    d = caption(np.random.default_rng(0), src, lex, ch, 1)
    assert d.ann_ids == tuple(ann_of[(1, "zebra")]) and "zebras" in d.sentences[0]
    assert caption(np.random.default_rng(0), src, lex, ch, 7).ann_ids == tuple(ann_of[(7, "sheep")])
    assert caption(np.random.default_rng(0), src, lex, ch, 3) is None          # nothing twice


def test_coco_style_build_uses_images_outside_refer_for_zero(coco_input, tmp_path):
    inst, caps, refer_root, _ = coco_input
    m = build_refzom(inst, caps, refer_root, tmp_path / "out", RefZomConfig(zero_fraction=0.25, test_fraction=0.3,
                                                                            many_object_ratio=5.0))
    refs = pickle.loads((tmp_path / "out" / "ref-zom" / "refs(final).p").read_bytes())
    zero_imgs = {r["image_id"] for r in refs if r["source"] == "zero"}
    assert len(zero_imgs) == 2 and not zero_imgs & {1, 2, 7}        # images with REFER refs never zero
    assert {r["source"] for r in refs} == {"zero", "one", "many"}
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["zero_pool"]["families_given"] == ["RefCOCO"]
    assert stats["zero_pool"]["families_missing"] == ["RefCOCO+", "RefCOCOg"]
    assert "not given here: RefCOCO+, RefCOCOg" in m["zero_pool"]


def test_train_and_val_files_are_merged(coco_input, tmp_path):
    inst, caps, refer_root, _ = coco_input
    doc, cap_doc = json.loads(inst.read_text()), json.loads(caps.read_text())
    parts = []
    for name, keep in (("train", lambda i: i <= 4), ("val", lambda i: i > 4)):
        i_path, c_path = tmp_path / f"instances_{name}.json", tmp_path / f"captions_{name}.json"
        i_path.write_text(json.dumps({"images": [im for im in doc["images"] if keep(im["id"])],
                                      "annotations": [a for a in doc["annotations"] if keep(a["image_id"])],
                                      "categories": doc["categories"]}))
        c_path.write_text(json.dumps({"annotations": [c for c in cap_doc["annotations"] if keep(c["image_id"])]}))
        parts.append((i_path, c_path))
    cfg = RefZomConfig(zero_fraction=0.25, test_fraction=0.3)
    m = build_refzom([p[0] for p in parts], [p[1] for p in parts], refer_root, tmp_path / "two", cfg)
    build_refzom(inst, caps, refer_root, tmp_path / "one", cfg)
    assert _refs(tmp_path / "two") == _refs(tmp_path / "one")
    assert [x["path"] for x in m["inputs"]["instances"]] == [str(p[0]) for p in parts]
    assert m["command"].count("--coco-instances") == 2 and m["command"].count("--coco-captions") == 2
    bad = json.loads(parts[1][0].read_text())
    bad["images"].append({**doc["images"][0], "height": 99})          # image 1 again, different
    parts[1][0].write_text(json.dumps(bad))
    with pytest.raises(RefbenchError, match="image id 1 is also in another --coco-instances file"):
        build_refzom([p[0] for p in parts], [p[1] for p in parts], refer_root, tmp_path / "bad", cfg)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- end to end on the synthetic benchmark

def _synth_inputs(root):
    return root / "annotations" / "instances_synth.json", root / "annotations" / "captions_synth.json", root


E2E_CONFIG = RefZomConfig(zero_pool="unused", many_object_ratio=3.0)


@pytest.fixture(scope="module")
def built(synth_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("refzom") / "out"
    inst, caps, root = _synth_inputs(synth_tiny)
    manifest = build_refzom(inst, caps, root, out, E2E_CONFIG, image_dirs=[synth_tiny / "images" / "synth"])
    return out, manifest


def _refs(out):
    return pickle.loads((out / "ref-zom" / "refs(final).p").read_bytes())


def test_every_type_and_method_present_ids_unique_splits_disjoint(built):
    out, _ = built
    refs = _refs(out)
    assert {r["source"] for r in refs} == {"zero", "one", "many"}
    assert {r["refbench_method"] for r in refs} == {"refer", "template", "join", "caption", "zero-caption", "zero-refer"}
    assert len({r["ref_id"] for r in refs}) == len(refs)
    sent_ids = [s["sent_id"] for r in refs for s in r["sentences"]]
    assert len(set(sent_ids)) == len(sent_ids)
    split_of_image: dict[int, set] = {}
    for r in refs:
        split_of_image.setdefault(r["image_id"], set()).add(r["split"])
    assert all(len(v) == 1 for v in split_of_image.values())
    assert json.loads((out / "ref-zom" / "refs(final).json").read_text()) == refs


def test_reader_loads_both_splits_with_types_and_images(built):
    out, _ = built
    refs = _refs(out)
    for split in ("train", "test"):
        sd = open_split(f"ref-zom/{split}", out)
        mine = [r for r in refs if r["split"] == split]
        assert len(sd.refs) == len(mine) and len(sd.samples) == sum(len(r["sentences"]) for r in mine)
        assert sd.counts()["zero"] == sum(len(r["sentences"]) for r in mine if r["source"] == "zero")
        assert sd.counts()["many"] == sum(len(r["sentences"]) for r in mine if r["source"] == "many")
        assert all(sd.image_path(s).is_file() for s in sd.samples)   # via the image symlink


def test_zero_target_sentences_name_nothing_in_their_image(built):
    out, _ = built
    inst = read_json(out / "ref-zom" / "instances.json")
    cats_of: dict[int, set] = {}
    for a in inst["annotations"]:
        cats_of.setdefault(a["image_id"], set()).add(a["category_id"])
    words = {c.id: {w for w in (*c.nouns, *c.plurals)} for c in SYNTH_CATEGORIES}
    zero = [r for r in _refs(out) if r["source"] == "zero"]
    assert zero
    for r in zero:
        text = " " + " ".join(re.findall(r"[a-z]+", r["sentences"][0]["raw"].lower())) + " "
        for cid in cats_of[r["image_id"]]:
            assert not any(f" {w} " in text for w in words[cid]), (r["sentences"][0]["raw"], cid)


def test_many_target_masks_are_unions_of_at_least_two_instances(built):
    out, _ = built
    sd = open_split("ref-zom/train", out)
    inst = read_json(out / "ref-zom" / "instances.json")
    by_image: dict[int, dict[int, list[int]]] = {}
    for a in inst["annotations"]:
        by_image.setdefault(a["image_id"], {}).setdefault(a["category_id"], []).append(a["id"])
    method = {r["ref_id"]: r["refbench_method"] for r in _refs(out)}
    many = [s for s in sd.samples if s.type == "many"]
    assert many
    for s in many:
        assert len(set(s.ann_ids)) >= 2
        parts = [sd.coco.ann(a, "t") for a in s.ann_ids]
        assert all(p["image_id"] == s.image_id for p in parts)
        union = sd.gt_mask(s, "union")
        singles = [rasterize([p["segmentation"]], s.height, s.width, "union") for p in parts]
        assert np.array_equal(union, np.logical_or.reduce(singles))
        assert all(union.sum() > m.sum() for m in singles)        # every instance adds pixels
        if method[s.ref_id] in ("template", "caption"):               # all instances of one category
            cats = set(s.category_ids)
            assert len(cats) == 1 and sorted(s.ann_ids) == sorted(by_image[s.image_id][cats.pop()])
    for s in (x for x in sd.samples if x.type == "one" and method[x.ref_id] == "template"):
        assert by_image[s.image_id][s.category_ids[0]] == list(s.ann_ids)   # a single-instance category


def test_output_meets_the_dmmi_loader_contract(built):
    """What RIS-DMMI's refer/refer.py (createIndex, getRefIds, getMask) and dataset_zom.py do."""
    out, _ = built
    refs = pickle.loads((out / "ref-zom" / "refs(final).p").read_bytes())   # plain pickle, as DMMI loads it
    inst = json.loads((out / "ref-zom" / "instances.json").read_text())
    anns = {a["id"]: a for a in inst["annotations"]}
    imgs = {i["id"]: i for i in inst["images"]}
    for ref in refs:
        ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        assert all(anns[a]["image_id"] == ref["image_id"] for a in ids)          # refToAnn
        assert ref["image_id"] in imgs and imgs[ref["image_id"]]["file_name"] == ref["file_name"]
        assert ref["source"] in ("zero", "one", "many")                           # ref[0]['source']
        for s in ref["sentences"]:
            assert s["raw"] and isinstance(s["tokens"], list) and isinstance(s["sent_id"], int)
    assert {r["split"] for r in refs} == {"train", "test"}                        # getRefIds(split=...)
    assert all(isinstance(r["ann_id"], list) == (r["source"] == "many") for r in refs)


def test_scored_with_the_refzom_protocol(built, tmp_path, run_cli):
    out, _ = built
    sd = open_split("ref-zom/test", out)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    types, inter, union, zero_empty, n_zero = {}, 0, 0, 0, 0
    for k, s in enumerate(sd.samples):
        gt = sd.gt_mask(s, "union")
        if s.type == "zero":
            pred = np.zeros_like(gt)
            if k % 2:
                pred[5:15, 5:25] = True      # a false positive on every other zero sample
            n_zero += 1
            zero_empty += not pred.any()
        else:
            pred = np.roll(gt, 7 + k % 5, axis=1)                        # shifted: partial overlap
            inter += int((pred & gt).sum())
            union += int((pred | gt).sum())
        Image.fromarray(gt.astype(np.uint8) * 255).save(gt_dir / f"{s.sample_id}.png")
        Image.fromarray(pred.astype(np.uint8) * 255).save(pred_dir / f"{s.sample_id}.png")
        types[s.sample_id] = s.type
    (tmp_path / "types.json").write_text(json.dumps(types))
    code, stdout, err = run_cli("score", "--pred", pred_dir, "--gt", gt_dir, "--protocol", "refzom", "--types",
                                tmp_path / "types.json", "--json", tmp_path / "r.json", "--bootstrap", 0)
    assert code == 0, err
    doc = load_results(tmp_path / "r.json")
    counts = sd.counts()
    assert doc["counts"] == {"total": counts["total"], "zero": counts["zero"], "one": counts["one"],
                             "many": counts["many"]}
    assert n_zero > 0 and doc["metrics"]["Acc"] == pytest.approx(100 * zero_empty / n_zero)
    assert doc["metrics"]["oIoU"] == pytest.approx(100 * inter / union)
    assert 0 < doc["metrics"]["oIoU"] < 100


def test_stats_and_manifest(built):
    out, manifest = built
    refs = _refs(out)
    stats = json.loads((out / "stats.json").read_text())
    for split in ("train", "test"):
        mine = [r for r in refs if r["split"] == split]
        st = stats["splits"][split]
        assert st["refs"]["total"] == len(mine) and st["images"] == len({r["image_id"] for r in mine})
        assert st["sentences"]["many"] == sum(len(r["sentences"]) for r in mine if r["source"] == "many")
        assert sum(n for _, n in st["sentence_length_words"]["one"]["histogram"]) == st["sentences"]["one"]
    pub = stats["published"]
    assert "ICCV 2023" in pub["source"] and pub["numbers"]["images"] == 55078
    assert {row["name"] for row in pub["comparison"]} == set(pub["numbers"])
    zc = stats["zero_check"]
    assert zc["candidates_tried"] == zc["accepted"] + zc["rejected_total"] and zc["accepted"] == stats["all"]["zero_images"]
    assert manifest == json.loads((out / "manifest.json").read_text())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.is_symlink()
               and "images" not in p.parts}
    assert set(manifest["files"]) == on_disk - {"manifest.json", ".refbench-output.json"}   # + refbench's marker
    assert all(sha256_file(out / k) == v for k, v in manifest["files"].items())
    assert manifest["command"][:3] == ["refbench", "build-dataset", "ref-zom"] and manifest["seed"] == 0
    assert manifest["image_links"] and all(len(v["sha256"]) == 64 for v in manifest["inputs"]["refer"])


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and "images" not in p.parts}


def test_deterministic_byte_identical(built, synth_tiny, tmp_path):
    out, _ = built
    inst, caps, root = _synth_inputs(synth_tiny)
    first = _tree(out)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, symlinks=True)
    build_refzom(inst, caps, root, copy, E2E_CONFIG, image_dirs=[synth_tiny / "images" / "synth"], force=True,
                 command=json.loads((out / "manifest.json").read_text())["command"])
    assert _tree(copy) == first                                       # same command: every byte equal
    other = tmp_path / "other"
    build_refzom(inst, caps, root, other, E2E_CONFIG, image_dirs=[synth_tiny / "images" / "synth"])
    again = _tree(other)
    assert {k for k in first if first[k] != again.get(k)} == {"manifest.json"}   # only the command differs
    build_refzom(inst, caps, root, tmp_path / "seed1", RefZomConfig(zero_pool="unused", many_object_ratio=3.0, seed=1))
    assert _tree(tmp_path / "seed1")["ref-zom/refs(final).p"] != first["ref-zom/refs(final).p"]


def test_cli_builds_and_reports(synth_tiny, tmp_path, run_cli):
    inst, caps, root = _synth_inputs(synth_tiny)
    code, out, err = run_cli("build-dataset", "ref-zom", "--coco-instances", inst, "--coco-captions", caps,
                             "--refer-root", root, "--out", tmp_path / "o", "--zero-pool", "unused", "--seed", 2,
                             "--max-images", 30, "--test-fraction", 0.25, "--no-progress")
    assert code == 0, err
    assert "train" in out and "(zero/one/many)" in out and "stats.json" in out
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["config"]["max_images"] == 30 and m["config"]["test_fraction"] == 0.25 and m["seed"] == 2
    assert m["counts"]["train"]["images"] + m["counts"]["test"]["images"] == 30
    assert "--max-images" in m["command"] and m["command"][m["command"].index("--seed") + 1] == "2"


# ---------------------------------------------------------------- bad inputs: one line, exit 2, nothing left behind

def _corrupt(case, synth_tiny, tmp_path):
    """(instances, captions, refer_root, extra args) for a broken input."""
    inst, caps, root = _synth_inputs(synth_tiny)
    extra: list = ["--zero-pool", "unused"]
    if case == "missing-instances":
        inst = tmp_path / "nope.json"
    elif case == "truncated-instances":
        inst = tmp_path / "inst.json"
        inst.write_bytes((synth_tiny / "annotations" / "instances_synth.json").read_bytes()[:500])
    elif case == "captions-not-coco":
        caps = tmp_path / "caps.json"
        caps.write_text(json.dumps({"captions": []}))
    elif case == "caption-without-text":
        caps = tmp_path / "caps.json"
        caps.write_text(json.dumps({"annotations": [{"image_id": 1}]}))
    elif case == "captions-other-images":
        caps = tmp_path / "caps.json"
        caps.write_text(json.dumps({"annotations": [{"image_id": 999999, "caption": "a dog"}]}))
    elif case in ("no-refs", "refs-malformed", "refs-mismatch", "refs-unsafe"):
        root = tmp_path / "refer"
        (root / "refcoco").mkdir(parents=True)
        if case != "no-refs":
            refs = pickle.loads((synth_tiny / "synth" / "refs(unc).p").read_bytes())
            if case == "refs-malformed":
                data = pickle.dumps(refs, protocol=2)[:-40]
            elif case == "refs-mismatch":
                refs[3]["ann_id"] = 987654321
                data = pickle.dumps(refs, protocol=2)
            else:
                data = pickle.dumps(shutil.rmtree, protocol=2)
            (root / "refcoco" / "refs(unc).p").write_bytes(data)
    elif case == "unknown-category":
        doc = json.loads(inst.read_text())
        doc["categories"][0]["name"] = "zorb"
        inst = tmp_path / "inst.json"
        inst.write_text(json.dumps(doc))
    elif case == "empty-result":
        doc = json.loads(inst.read_text())
        doc["annotations"] = []
        inst = tmp_path / "inst.json"
        inst.write_text(json.dumps(doc))
        refs = tmp_path / "refer" / "refcoco"
        refs.mkdir(parents=True)
        (refs / "refs(unc).p").write_bytes(pickle.dumps([], protocol=2))
        root = tmp_path / "refer"
    elif case == "zero-pool-empty":
        extra = []
    elif case == "bad-fraction":
        extra += ["--test-fraction", "1.5"]
    elif case == "empty-test-split":
        extra += ["--max-images", "2", "--zero-fraction", "0"]
    elif case == "image-dir-wrong":
        (tmp_path / "no-images").mkdir()
        extra += ["--image-dir", tmp_path / "no-images"]
    return inst, caps, root, extra


@pytest.mark.parametrize("case,needle", [
    ("missing-instances", "nope.json: file not found"),
    ("truncated-instances", "not valid JSON"),
    ("captions-not-coco", "not a COCO captions file"),
    ("caption-without-text", "annotations[0] has no 'image_id'/'caption'"),
    ("captions-other-images", "do not belong together"),
    ("no-refs", "no REFER refs pickle found"),
    ("refs-malformed", "not a readable pickle"),
    ("refs-mismatch", "no annotation with id 987654321"),
    ("refs-unsafe", "refused to load"),
    ("unknown-category", "no lexicon entry: 'zorb'"),
    ("empty-result", "no image has an annotation"),
    ("zero-pool-empty", "--zero-pool unused"),
    ("bad-fraction", "--test-fraction must be in (0, 1)"),
    ("empty-test-split", "the test split is empty"),
    ("image-dir-wrong", "images are not in --image-dir"),
])
def test_bad_input_one_line_error_and_nothing_left_behind(case, needle, synth_tiny, tmp_path, run_cli):
    inst, caps, root, extra = _corrupt(case, synth_tiny, tmp_path)
    out = tmp_path / "built" / "out"
    code, stdout, err = run_cli("build-dataset", "ref-zom", "--coco-instances", inst, "--coco-captions", caps,
                                "--refer-root", root, "--out", out, "--no-progress", *extra)
    assert code == 2, (stdout, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not out.exists()
    assert not (tmp_path / "built").exists() or not list((tmp_path / "built").iterdir())   # no temp dir left


def test_existing_output_is_refused_without_force(built, synth_tiny, run_cli):
    out, _ = built
    inst, caps, root = _synth_inputs(synth_tiny)
    before = _tree(out)
    code, _, err = run_cli("build-dataset", "ref-zom", "--coco-instances", inst, "--coco-captions", caps,
                           "--refer-root", root, "--out", out, "--zero-pool", "unused", "--no-progress")
    assert code == 2 and "already exists" in err and _tree(out) == before


def test_lexicon_fallback_builds_and_reports(synth_tiny, tmp_path):
    inst, caps, root, _ = _corrupt("unknown-category", synth_tiny, tmp_path)
    build_refzom(inst, caps, root, tmp_path / "o", RefZomConfig(zero_pool="unused"), lexicon_fallback=True)
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["lexicon"]["fallback_names"] == ["zorb"]
