"""``refbench build-dataset synth``: the embedded synthetic RIS benchmark.

Procedurally rendered 640x480 scenes of coloured shapes (12 COCO-style categories in 3
supercategories, 9 colours, 3 size classes, light textures, partial occlusion), written
in the real formats so the real readers -- refbench's and the official ones -- load them unchanged::

    OUT/images/synth/synth_000000000001.jpg ...
    OUT/annotations/instances_synth.json      COCO instances (polygons; RLE for rings and occluded objects)
    OUT/annotations/captions_synth.json       COCO captions (3 per image)
    OUT/synth/instances.json, refs(unc).p     REFER: one target per sentence      -> synth/<split>
    OUT/synth/seen_unseen.json                category partition for :seen / :unseen
    OUT/synth-zom/instances.json, refs(final).p      Ref-ZOM style: zero/one/many -> synth-zom/<split>
    OUT/synth-grefcoco/instances.json, grefs(unc).json  gRefCOCO style          -> synth-grefcoco/<split>
    OUT/manifest.json                          counts per split + sha256 of every file

Segmentations are what the official ``getMask`` (REFER, LAVT, DMMI, ReLA) reads: a
polygon is a list of coordinate lists, an RLE (rings, occluded objects) a list holding one
compressed-RLE dict; every annotation has ``iscrowd: 0``.

``layout="official"`` (``--layout official``) names the folders as the official loaders require,
so the files can be fed to LAVT / MagNet / DMMI / ReLA as they are (their REFER copies refuse
any other dataset name)::

    OUT/refcoco/{instances.json, refs(unc).p, seen_unseen.json}   REFER(OUT, 'refcoco', 'unc')
    OUT/ref-zom/{instances.json, refs(final).p}                    DMMI: REFER(OUT, 'ref-zom', 'final')
    OUT/grefcoco/{instances.json, grefs(unc).json}                  ReLA: G_REFER(OUT, 'grefcoco', 'unc')
    OUT/images/mscoco/images/train2014/*.jpg                         REFER's IMAGE_DIR for refcoco
    OUT/images/mscoco/images/trainval2014 -> train2014              DMMI's Ref-ZOM image folder (set its IMAGE_DIR)
    OUT/images/train2014 -> mscoco/images/train2014                 ReLA's IMAGE_DIR (OUT/images/train2014)

refbench reads that layout as ``refcoco/<split>``, ``ref-zom/<split>`` and ``grefcoco/<split>``
(the published counts of the real datasets then do not match: ``data check`` says so); keep the
default layout for refbench itself, since ``synth*`` splits and ``:seen``/``:unseen`` need it.

Splits are per image, as in RefCOCO: train / val, testA (targets are "round" shapes, in
scenes with at least two of them: RefCOCO's people-only testA) and testB (the other
supercategories).  The same seed, size and layout give byte-identical files: every image draws
from its own generator seeded by (seed, image id), JSON is written with sorted keys,
pickles with protocol 2, JPEGs by the same encoder settings, whatever the number of workers.
"""
from __future__ import annotations

import io
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from refbench.build.files import dump_json, dump_pickle, iter_files, rle_segmentation, sentence_record
from refbench.build.output import check_build_output, die_with_parent, staged_output
from refbench.build.synth_language import (caption_sentences, many_target_groups, many_target_sentence,
                                           one_target_sentences, zero_target_sentence)
from refbench.build.synth_scene import BACKGROUNDS, CATEGORIES, SceneConfig, SceneObject, compose_scene, render
from refbench.core.errors import RefbenchError, suggest
from refbench.core.provenance import sha256_file

# Bumped whenever what the files say for a given (seed, size) changes -- images, refs, sentences,
# decoded masks -- so cached builds made by an older generator are rebuilt (ensure_synth) rather than
# silently reused.  A change of encoding that decodes to the same masks is not a new version: RLE
# segmentations became lists of compressed dicts (REFER-readable) within version 4, every decoded
# mask and every image byte-identical (tests/test_conformance.py), so refbench reads old and new
# builds alike and the reference numbers stand.
FORMAT_VERSION = 4
SPLITS = ("train", "val", "testA", "testB")
# Images per split for each benchmark size.
BENCHMARK_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"train": 24, "val": 8, "testA": 4, "testB": 4},
    "small": {"train": 600, "val": 100, "testA": 50, "testB": 50},
    "full": {"train": 6000, "val": 600, "testA": 300, "testB": 300},
}
TEST_SUPERCATEGORIES = {"testA": ("round",), "testB": ("polygon", "symbol")}
IMAGE_DIR = "images/synth"
JPEG_QUALITY = 92
DATASETS = ("synth", "synth-zom", "synth-grefcoco")


@dataclass(frozen=True)
class Layout:
    """Folder names of a build: ``dirs`` maps each refbench dataset to its folder, ``images`` is the
    image folder, ``links`` are relative symlinks (link path -> target) to it."""

    name: str
    dirs: dict
    images: str
    links: tuple[tuple[str, str], ...] = ()


LAYOUTS: dict[str, Layout] = {
    "refbench": Layout("refbench", {d: d for d in DATASETS}, IMAGE_DIR),
    # the names the official loaders accept (module doc): REFER / LAVT / MagNet refuse any dataset
    # folder but refcoco, refcoco+, refcocog (and refclef); DMMI adds ref-zom; ReLA wants grefcoco.
    "official": Layout("official", {"synth": "refcoco", "synth-zom": "ref-zom", "synth-grefcoco": "grefcoco"},
                       "images/mscoco/images/train2014",
                       (("images/mscoco/images/trainval2014", "train2014"),
                        ("images/train2014", "mscoco/images/train2014"))),
}


@dataclass(frozen=True)
class SynthConfig:
    """What a synthetic benchmark is made of (sentences per ref, chance of zero/many refs)."""

    seed: int = 0
    size: str = "small"
    scene: SceneConfig = SceneConfig()
    sentences_per_ref: tuple[int, ...] = (1, 2, 3)
    sentences_per_ref_p: tuple[float, ...] = (0.3, 0.4, 0.3)
    max_many_refs: int = 2
    p_zero_ref: float = 0.7


def render_scene(image_id: int, split: str, cfg: SynthConfig) -> tuple[np.random.Generator, list[SceneObject], str,
                                                                       np.ndarray]:
    """(generator state after rendering, objects with their masks, background name, uint8 pixels)
    of one image; the ann id of ``objects[k]`` is ``image_id * 100 + k``."""
    rng = np.random.default_rng([cfg.seed, image_id])
    sc = cfg.scene
    require = (TEST_SUPERCATEGORIES[split], 2) if split in TEST_SUPERCATEGORIES else None
    objects = compose_scene(rng, sc, require)
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    return rng, objects, background, render(rng, objects, background, sc)


def image_plan(size: str) -> list[tuple[int, str]]:
    """(image_id, split) of every image of a benchmark size, in id order."""
    jobs, iid = [], 0
    for split in SPLITS:
        for _ in range(BENCHMARK_SIZES[size][split]):
            iid += 1
            jobs.append((iid, split))
    return jobs


def _image_record(image_id: int, split: str, cfg: SynthConfig, image_dir: Path) -> dict:
    """Render one image into ``image_dir`` and return everything said about it."""
    rng, objects, background, pixels = render_scene(image_id, split, cfg)
    sc = cfg.scene
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=JPEG_QUALITY)
    anns = []
    for k, o in enumerate(objects):
        vis = o.visible
        # polygons as a list of lists; RLE as a list holding one compressed dict (what REFER's getMask
        # reads; a bare RLE dict crashes it).  Either decodes to exactly the visible mask.
        segm = o.polygons if o.polygons is not None and not o.occluded else rle_segmentation(vis)
        rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
        anns.append({"id": image_id * 100 + k, "image_id": image_id, "category_id": o.category.id,
                     "segmentation": segm, "area": float(mask_utils.area(rle)),
                     "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)], "iscrowd": 0})

    def n_sent() -> int:
        return int(rng.choice(cfg.sentences_per_ref, p=cfg.sentences_per_ref_p))

    allowed = TEST_SUPERCATEGORIES.get(split)
    one = []
    for k, o in enumerate(objects):
        if allowed is not None and o.category.supercategory not in allowed:
            continue
        sents = one_target_sentences(rng, objects, k, n_sent())
        if sents:
            one.append((k, sents))
    many = []
    groups = many_target_groups(objects)
    if groups:
        picks = rng.choice(len(groups), size=min(cfg.max_many_refs, len(groups)), replace=False)
        for g in sorted(int(x) for x in picks):
            attrs, vals, members = groups[g]
            sents: list[str] = []
            for _ in range(int(rng.integers(1, 3))):
                s = many_target_sentence(rng, attrs, vals, len(members))
                if s not in sents:
                    sents.append(s)
            many.append((members, sents))
    zero = []
    if rng.random() < cfg.p_zero_ref:
        sents = []
        for _ in range(int(rng.integers(1, 3))):
            s = zero_target_sentence(rng, objects)
            if s is not None and s not in sents:
                sents.append(s)
        if sents:
            zero.append(sents)
    file_name = f"synth_{image_id:012d}.jpg"
    (image_dir / file_name).write_bytes(buf.getvalue())
    return {"image_id": image_id, "split": split, "file_name": file_name,
            "height": sc.height, "width": sc.width, "anns": anns, "one": one, "many": many, "zero": zero,
            "captions": caption_sentences(rng, objects, background)}


def _render_batch(args: tuple[list[tuple[int, str]], SynthConfig, Path]) -> list[dict]:
    jobs, cfg, image_dir = args
    return [_image_record(i, s, cfg, image_dir) for i, s in jobs]


def _categories() -> list[dict]:
    return [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in CATEGORIES]


def _partition() -> dict:
    def ids(p: str) -> list[int]:
        return [c.id for c in CATEGORIES if c.partition == p]
    return {"description": "Seen/unseen partition of the refbench synthetic categories for the CGFormer-style "
                           "generalization split (same schema as refbench/data/coco_ovr_categories.json).",
            "seen_coco_ids": ids("seen"), "unseen_coco_ids": ids("unseen"), "excluded_coco_ids": ids("excluded")}


def _write(records: list[dict], root: Path, cfg: SynthConfig, layout: Layout) -> dict:
    """Write every annotation file of the benchmark under ``root`` in ``layout``; returns the per-split counts."""
    images, anns, captions = [], [], []
    refer, zom, gref = [], [], []
    ids = {"refer_ref": 0, "refer_sent": 0, "zom_ref": 0, "zom_sent": 0, "gref_ref": 0, "gref_sent": 0, "cap": 0}
    counts: dict[str, dict[str, dict]] = {d: {s: {"images": 0, "refs": 0, "sentences": 0, "zero": 0, "one": 0,
                                                  "many": 0} for s in SPLITS}
                                          for d in DATASETS}

    def take(key: str) -> int:
        ids[key] += 1
        return ids[key]

    def add(dataset: str, split: str, typ: str, n_sent: int) -> None:
        c = counts[dataset][split]
        c["refs"] += 1
        c["sentences"] += n_sent
        c[typ] += n_sent

    for rec in records:
        iid, split, fname = rec["image_id"], rec["split"], rec["file_name"]
        images.append({"id": iid, "file_name": fname, "height": rec["height"], "width": rec["width"], "license": 0})
        anns.extend(rec["anns"])
        for d in counts:
            counts[d][split]["images"] += 1
        for cap in rec["captions"]:
            captions.append({"id": take("cap"), "image_id": iid, "caption": cap})
        ann_ids = [a["id"] for a in rec["anns"]]
        cat_of = {a["id"]: a["category_id"] for a in rec["anns"]}
        stem = fname.rsplit(".", 1)[0]
        for k, sents in rec["one"]:
            aid = ann_ids[k]
            rid = take("refer_ref")
            ss = [sentence_record(s, take("refer_sent")) for s in sents]
            refer.append({"ref_id": rid, "ann_id": aid, "image_id": iid, "category_id": cat_of[aid], "split": split,
                          "sentences": ss, "sent_ids": [s["sent_id"] for s in ss], "file_name": f"{stem}_{aid}.jpg"})
            add("synth", split, "one", len(ss))
        typed = ([("one", [ann_ids[k]], sents) for k, sents in rec["one"]]
                 + [("many", [ann_ids[k] for k in members], sents) for members, sents in rec["many"]]
                 + [("zero", [], sents) for sents in rec["zero"]])
        for typ, aids, sents in typed:
            rid = take("zom_ref")
            ss = [sentence_record(s, take("zom_sent")) for s in sents]
            zom.append({"ref_id": rid, "image_id": iid, "split": split, "source": typ, "sentences": ss,
                        "sent_ids": [s["sent_id"] for s in ss], "file_name": fname,
                        # Ref-ZOM keeps an ann_id on zero refs too (its loader looks it up, then zeroes the mask)
                        "ann_id": aids[0] if typ == "one" else (aids if typ == "many" else ann_ids[0]),
                        "category_id": cat_of[aids[0]] if typ == "one" else [cat_of[a] for a in aids]})
            add("synth-zom", split, typ, len(ss))
            rid = take("gref_ref")
            ss = [sentence_record(s, take("gref_sent")) for s in sents]
            gref.append({"ref_id": rid, "image_id": iid, "split": split, "file_name": fname,
                         "ann_id": aids if aids else [-1], "category_id": [cat_of[a] for a in aids] if aids else [-1],
                         "no_target": not aids, "sentences": ss, "sent_ids": [s["sent_id"] for s in ss]})
            add("synth-grefcoco", split, typ, len(ss))

    info = {"description": "refbench synthetic referring image segmentation benchmark",
            "format_version": FORMAT_VERSION, "seed": cfg.seed, "size": cfg.size}
    instances = {"info": info, "licenses": [{"id": 0, "name": "CC0 (generated by refbench)", "url": ""}],
                 "images": images, "annotations": anns, "categories": _categories()}
    dump_json(root / "annotations" / "instances_synth.json", instances)
    dump_json(root / "annotations" / "captions_synth.json",
              {"info": info, "licenses": instances["licenses"], "images": images, "annotations": captions})
    d = layout.dirs
    for name in DATASETS:
        dump_json(root / d[name] / "instances.json", instances)
    dump_pickle(root / d["synth"] / "refs(unc).p", refer)
    dump_json(root / d["synth"] / "seen_unseen.json", _partition())
    dump_pickle(root / d["synth-zom"] / "refs(final).p", zom)
    dump_json(root / d["synth-grefcoco"] / "grefs(unc).json", gref)
    return counts


def _render_all(jobs: list[tuple[int, str]], cfg: SynthConfig, image_dir: Path, workers: int) -> list[dict]:
    """Render every image (in ``workers`` processes when > 1); records in id order either way.

    Workers die with the build (refbench.build.output.die_with_parent): a killed build leaves no
    process behind."""
    chunk = 16
    batches = [(jobs[i:i + chunk], cfg, image_dir) for i in range(0, len(jobs), chunk)]
    if workers > 1 and len(batches) > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            return [r for batch in pool.map(_render_batch, batches) for r in batch]
    return [r for b in batches for r in _render_batch(b)]


def build_synth(out: str | os.PathLike, seed: int = 0, size: str = "small", workers: int | None = None,
                force: bool = False, echo: Callable[[str], None] | None = None, layout: str = "refbench") -> dict:
    """Build the synthetic benchmark into ``out``; returns the manifest (counts per dataset/split,
    sha256 per file).

    ``out`` must not exist (or be empty) unless ``force``, and ``force`` replaces only a folder
    refbench built (refbench.build.output).  The build is staged in a temporary folder beside
    ``out`` and swapped in when complete.  ``workers`` processes render images (default: up to
    2); the output does not depend on it.  ``layout``: ``refbench`` (default) or ``official``
    (module doc).
    """
    if size not in BENCHMARK_SIZES:
        raise suggest(size, BENCHMARK_SIZES, "synthetic benchmark size")
    if layout not in LAYOUTS:
        raise suggest(layout, LAYOUTS, "layout")
    if workers is not None and workers < 1:
        raise RefbenchError(f"--workers must be at least 1, got {workers}")
    lay = LAYOUTS[layout]
    out = check_build_output(out, force)
    cfg = SynthConfig(seed=seed, size=size)
    t0 = time.perf_counter()
    jobs = image_plan(size)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    with staged_output(out, force, generator="refbench.build.synth", layout=layout) as tmp:
        image_dir = tmp / lay.images
        image_dir.mkdir(parents=True)
        records = _render_all(jobs, cfg, image_dir, workers)
        counts = _write(records, tmp, cfg, lay)
        for link, target in lay.links:
            (tmp / link).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, tmp / link, target_is_directory=True)
        manifest = {"generator": "refbench.build.synth", "format_version": FORMAT_VERSION, "seed": seed,
                    "size": size, "counts": counts,
                    "files": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in iter_files(tmp)}}
        if layout != "refbench":  # the default layout's manifest stays as it was (same bytes as before)
            manifest.update(layout=layout, datasets=dict(lay.dirs), image_links=dict(lay.links))
        dump_json(tmp / "manifest.json", manifest)
    if echo:
        n_img = sum(BENCHMARK_SIZES[size].values())
        echo(f"built synthetic benchmark ({size}, seed {seed}, layout {layout}): {n_img} images in "
             f"{time.perf_counter() - t0:.1f} s -> {out}")
    return manifest


def default_cache_dir() -> Path:
    """``$REFBENCH_CACHE`` or ``~/.cache/refbench``."""
    env = os.environ.get("REFBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "refbench"


def _current(target: Path) -> bool:
    try:
        return json.loads((target / "manifest.json").read_text()).get("format_version") == FORMAT_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def ensure_synth(size: str = "small", seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """The data root of the default synthetic benchmark, built into the cache on first use.

    ``<cache>/synth-<size>-seed<seed>/``; reused when its manifest matches this generator's
    format version, rebuilt otherwise (replacing only a build refbench made there).  Concurrent
    first uses are safe: each builds into its own temporary folder, the first swap wins and the
    others use its result.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"synth-{size}-seed{seed}"
    if _current(target):
        return target
    try:
        build_synth(target, seed=seed, size=size, force=target.exists())
    except RefbenchError:
        if not _current(target):  # not a lost race to a finished build
            raise
    return target
