"""``refbench build-dataset synth``: the embedded synthetic RIS benchmark.

Procedurally rendered 640x480 scenes of coloured shapes (12 COCO-style categories in 3
supercategories, 9 colours, 3 size classes, light textures, partial occlusion), written
in the real formats so the real readers load them unchanged::

    OUT/images/synth/synth_000000000001.jpg ...
    OUT/annotations/instances_synth.json      COCO instances (polygons; RLE for rings and occluded objects)
    OUT/annotations/captions_synth.json       COCO captions (3 per image)
    OUT/synth/instances.json, refs(unc).p     REFER: one target per sentence      -> synth/<split>
    OUT/synth/seen_unseen.json                category partition for :seen / :unseen
    OUT/synth-zom/instances.json, refs(final).p      Ref-ZOM style: zero/one/many -> synth-zom/<split>
    OUT/synth-grefcoco/instances.json, grefs(unc).json  gRefCOCO style          -> synth-grefcoco/<split>
    OUT/manifest.json                          counts per split + sha256 of every file

Splits are per image, as in RefCOCO: train / val, testA (targets are "round" shapes, in
scenes with at least two of them: RefCOCO's people-only testA) and testB (the other
supercategories).  The same seed and size give byte-identical files: every image draws
from its own generator seeded by (seed, image id), JSON is written with sorted keys,
pickles with protocol 2, JPEGs by the same encoder settings.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from refbench.build.synth_language import (caption_sentences, many_target_groups, many_target_sentence,
                                           one_target_sentences, zero_target_sentence)
from refbench.build.synth_scene import BACKGROUNDS, CATEGORIES, SceneConfig, SceneObject, compose_scene, render
from refbench.core.errors import RefbenchError

# Bumped whenever the files generated for a given (seed, size) change, so cached builds
# made by an older generator are rebuilt (ensure_synth) rather than silently reused.
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


def _rle_json(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(x) for x in rle["size"]]}


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
        if o.polygons is not None and not o.occluded:
            segm = o.polygons
        else:
            segm = _rle_json(vis)
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


def _sentence(raw: str, sent_id: int) -> dict:
    sent = raw.lower().replace(",", " ").replace(".", " ")
    tokens = sent.split()
    return {"raw": raw, "sent": " ".join(tokens), "sent_id": sent_id, "tokens": tokens}


def _dump_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


def _dump_pickle(path: Path, obj) -> None:
    """Protocol-2 pickle whose bytes depend only on the values: memoization is off (``fast``),
    so whether equal strings are shared objects (they are not, across worker processes)
    cannot change the output."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)
    p.fast = True
    p.dump(obj)
    path.write_bytes(buf.getvalue())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _categories() -> list[dict]:
    return [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in CATEGORIES]


def _partition() -> dict:
    def ids(p: str) -> list[int]:
        return [c.id for c in CATEGORIES if c.partition == p]
    return {"description": "Seen/unseen partition of the refbench synthetic categories for the CGFormer-style "
                           "generalization split (same schema as refbench/data/coco_ovr_categories.json).",
            "seen_coco_ids": ids("seen"), "unseen_coco_ids": ids("unseen"), "excluded_coco_ids": ids("excluded")}


def _write(records: list[dict], root: Path, cfg: SynthConfig) -> dict:
    """Write every file of the benchmark under ``root``; returns the per-split counts."""
    images, anns, captions = [], [], []
    refer, zom, gref = [], [], []
    ids = {"refer_ref": 0, "refer_sent": 0, "zom_ref": 0, "zom_sent": 0, "gref_ref": 0, "gref_sent": 0, "cap": 0}
    counts: dict[str, dict[str, dict]] = {d: {s: {"images": 0, "refs": 0, "sentences": 0, "zero": 0, "one": 0,
                                                  "many": 0} for s in SPLITS}
                                          for d in ("synth", "synth-zom", "synth-grefcoco")}

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
            ss = [_sentence(s, take("refer_sent")) for s in sents]
            refer.append({"ref_id": rid, "ann_id": aid, "image_id": iid, "category_id": cat_of[aid], "split": split,
                          "sentences": ss, "sent_ids": [s["sent_id"] for s in ss], "file_name": f"{stem}_{aid}.jpg"})
            add("synth", split, "one", len(ss))
        typed = ([("one", [ann_ids[k]], sents) for k, sents in rec["one"]]
                 + [("many", [ann_ids[k] for k in members], sents) for members, sents in rec["many"]]
                 + [("zero", [], sents) for sents in rec["zero"]])
        for typ, aids, sents in typed:
            rid = take("zom_ref")
            ss = [_sentence(s, take("zom_sent")) for s in sents]
            zom.append({"ref_id": rid, "image_id": iid, "split": split, "source": typ, "sentences": ss,
                        "sent_ids": [s["sent_id"] for s in ss], "file_name": fname,
                        # Ref-ZOM keeps an ann_id on zero refs too (its loader looks it up, then zeroes the mask)
                        "ann_id": aids[0] if typ == "one" else (aids if typ == "many" else ann_ids[0]),
                        "category_id": cat_of[aids[0]] if typ == "one" else [cat_of[a] for a in aids]})
            add("synth-zom", split, typ, len(ss))
            rid = take("gref_ref")
            ss = [_sentence(s, take("gref_sent")) for s in sents]
            gref.append({"ref_id": rid, "image_id": iid, "split": split, "file_name": fname,
                         "ann_id": aids if aids else [-1], "category_id": [cat_of[a] for a in aids] if aids else [-1],
                         "no_target": not aids, "sentences": ss, "sent_ids": [s["sent_id"] for s in ss]})
            add("synth-grefcoco", split, typ, len(ss))

    info = {"description": "refbench synthetic referring image segmentation benchmark",
            "format_version": FORMAT_VERSION, "seed": cfg.seed, "size": cfg.size}
    instances = {"info": info, "licenses": [{"id": 0, "name": "CC0 (generated by refbench)", "url": ""}],
                 "images": images, "annotations": anns, "categories": _categories()}
    _dump_json(root / "annotations" / "instances_synth.json", instances)
    _dump_json(root / "annotations" / "captions_synth.json",
               {"info": info, "licenses": instances["licenses"], "images": images, "annotations": captions})
    for d in ("synth", "synth-zom", "synth-grefcoco"):
        _dump_json(root / d / "instances.json", instances)
    _dump_pickle(root / "synth" / "refs(unc).p", refer)
    _dump_json(root / "synth" / "seen_unseen.json", _partition())
    _dump_pickle(root / "synth-zom" / "refs(final).p", zom)
    _dump_json(root / "synth-grefcoco" / "grefs(unc).json", gref)
    return counts


def build_synth(out: str | os.PathLike, seed: int = 0, size: str = "small", workers: int | None = None,
                force: bool = False, echo: Callable[[str], None] | None = None) -> dict:
    """Build the synthetic benchmark into ``out`` (atomically: temp dir + rename).

    Returns the manifest (counts per dataset/split, sha256 per file).  ``out`` must not
    exist unless ``force`` (then it is replaced).  ``workers`` processes render images
    (default: up to 2); the output does not depend on it.
    """
    if size not in BENCHMARK_SIZES:
        from refbench.core.errors import suggest
        raise suggest(size, BENCHMARK_SIZES, "synthetic benchmark size")
    out = Path(out)
    if out.exists() and not force and (out.is_file() or any(out.iterdir())):
        raise RefbenchError(f"{out} already exists and is not empty; choose another --out or pass --force to replace it")
    cfg = SynthConfig(seed=seed, size=size)
    t0 = time.perf_counter()
    jobs = image_plan(size)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        image_dir = tmp / IMAGE_DIR
        image_dir.mkdir(parents=True)
        chunk = 16
        batches = [(jobs[i:i + chunk], cfg, image_dir) for i in range(0, len(jobs), chunk)]
        if workers > 1 and len(batches) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                records = [r for batch in pool.map(_render_batch, batches) for r in batch]
        else:
            records = [r for b in batches for r in _render_batch(b)]
        counts = _write(records, tmp, cfg)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {"generator": "refbench.build.synth", "format_version": FORMAT_VERSION, "seed": seed,
                    "size": size, "counts": counts,
                    "files": {p.relative_to(tmp).as_posix(): _sha256(p) for p in files}}
        _dump_json(tmp / "manifest.json", manifest)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        elif out.exists():
            if not force:
                raise RefbenchError(f"{out} appeared while building; pass --force to replace it")
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if echo:
        n_img = sum(BENCHMARK_SIZES[size].values())
        echo(f"built synthetic benchmark ({size}, seed {seed}): {n_img} images in {time.perf_counter() - t0:.1f} s -> {out}")
    return manifest


def default_cache_dir() -> Path:
    """``$REFBENCH_CACHE`` or ``~/.cache/refbench``."""
    env = os.environ.get("REFBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "refbench"


def ensure_synth(size: str = "small", seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """The data root of the default synthetic benchmark, built into the cache on first use.

    ``<cache>/synth-<size>-seed<seed>/``; reused when its manifest matches this generator's
    format version, rebuilt otherwise.  Concurrent first uses are safe: each builds into a
    temporary directory and the first rename wins.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"synth-{size}-seed{seed}"
    manifest = target / "manifest.json"
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()).get("format_version") == FORMAT_VERSION:
                return target
        except (OSError, json.JSONDecodeError):
            pass
    try:
        build_synth(target, seed=seed, size=size, force=target.exists())
    except RefbenchError:
        if not (target / "manifest.json").is_file():  # lost a race to a finished build: use it
            raise
    return target
