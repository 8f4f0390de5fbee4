#!/usr/bin/env python
"""Scale test of ``refbench build-dataset ref-zom`` on a COCO-sized input without pixels.

Generates (seeded, in a temporary folder) COCO-2014-like annotations for the 80 COCO
categories: ~120k images, ~860k instance annotations (box polygons; ~1 % crowd), ~600k
captions written from each image's objects, and ~140k REFER refs split over
refcoco/refs(unc).p, refcoco+/refs(unc).p and refcocog/refs(umd).p on ~27k images.
Then runs the builder as a child process with its defaults (the paper's 55,078 images)
and reports its wall time and peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``).

    python benchmarks/build_refzom_scale.py [--images 120000] [--anns 860000] [--captions 600000]
        [--refs 140000] [--workdir DIR] [--keep] [--write-results]

Targets on a 2-core machine: under 10 minutes and under 8 GiB peak RSS.  Exit status 1
when a target is missed.  ``--write-results`` writes the figures into the
``build_refzom_scale`` section of benchmarks/RESULTS.md (also when a target is missed).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

TIME_LIMIT_S = 600.0
RSS_LIMIT_GIB = 8.0

NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
VERBS = ("standing", "sitting", "walking", "parked", "resting", "lying", "waiting", "shown", "grouped together")
PLACES = ("in a field", "on a city street", "in a kitchen", "near the water", "in a park", "on a table",
          "in a living room", "at the beach", "next to a building", "in the snow", "under a tree")
ADJ = ("large", "small", "white", "black", "red", "blue", "old", "young", "brown", "green")
SIDES = ("left", "right", "middle", "front", "back", "far left", "far right", "top", "bottom")
PERSON_WORDS = ("man", "woman", "guy", "girl", "boy", "lady", "person", "kid", "player")


def coco80() -> list[dict]:
    doc = json.loads(resources.files("refbench.data").joinpath("coco_ovr_categories.json").read_text())
    return [{"id": c["coco_id"], "name": c["name"], "supercategory": c["supercategory"]} for c in doc["coco80"]]


def plural(name: str) -> str:
    from refbench.build.refzom.lexicon import pluralize
    return pluralize(name)


def generate(root: Path, n_images: int, n_anns: int, n_captions: int, n_refs: int, seed: int) -> dict[str, Path]:
    """Write instances, captions and REFER pickles under ``root``; returns their paths."""
    rng = np.random.default_rng(seed)
    cats = coco80()
    names = {c["id"]: c["name"] for c in cats}
    cat_ids = np.array([c["id"] for c in cats])
    # COCO-like frequencies: person ~30 % of instances, the rest long-tailed.
    p = rng.dirichlet(np.full(len(cats), 0.6))
    p = 0.7 * p / p.sum()
    p[0] += 0.3
    # annotations per image: ~1 % empty, else >= 1, mean n_anns / n_images
    counts = np.where(rng.random(n_images) < 0.01, 0, 1 + rng.poisson(max(n_anns / n_images - 1, 0.1), n_images))
    counts = (counts * (n_anns / max(counts.sum(), 1))).round().astype(int)
    images, anns = [], []
    aid = 0
    per_image: list[list[tuple[int, int, bool]]] = []
    for i in range(n_images):
        iid = i + 1
        split = "train2014" if i % 3 else "val2014"
        images.append({"id": iid, "file_name": f"COCO_{split}_{iid:012d}.jpg", "height": 480, "width": 640})
        n = int(counts[i])
        objs: list[tuple[int, int, bool]] = []
        if n:
            # ~2.9 categories per image as in COCO: each scene category once, the remaining
            # instances mostly of the first (dominant) one
            k = int(min(n, 1 + rng.poisson(1.9)))
            scene = rng.choice(cat_ids, size=k, replace=False, p=p)
            w = np.ones(k)
            w[0] = 3.0
            picks = np.concatenate([scene, rng.choice(scene, size=n - k, p=w / w.sum())])
            xs = rng.uniform(0, 560, n)
            ys = rng.uniform(0, 400, n)
            ws = rng.uniform(8, 80, n)
            hs = rng.uniform(8, 80, n)
            for j in range(n):
                aid += 1
                crowd = bool(picks[j] == 1 and rng.random() < 0.01)
                x, y, w, h = (round(float(v), 2) for v in (xs[j], ys[j], ws[j], hs[j]))
                anns.append({"id": aid, "image_id": iid, "category_id": int(picks[j]), "iscrowd": int(crowd),
                             "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]], "area": round(w * h, 2),
                             "bbox": [x, y, w, h]})
                objs.append((aid, int(picks[j]), crowd))
        per_image.append(objs)
    instances = {"info": {"description": "refbench scale benchmark (synthetic, no pixels)"}, "images": images,
                 "annotations": anns, "categories": cats}

    captions = []
    per_cap = n_captions / n_images
    cid = 0
    for i, objs in enumerate(per_image):
        iid = i + 1
        by_cat: dict[int, int] = {}
        for _, c, _ in objs:
            by_cat[c] = by_cat.get(c, 0) + 1
        n_cap = int(per_cap) + (1 if rng.random() < per_cap - int(per_cap) else 0)
        present = list(by_cat)
        for _ in range(n_cap):
            cid += 1
            place = PLACES[int(rng.integers(len(PLACES)))]
            verb = VERBS[int(rng.integers(len(VERBS)))]
            if not present:
                text = f"An empty scene {place}."
            else:
                c = present[int(rng.integers(len(present)))]
                n = by_cat[c]
                name = names[c]
                if c == 1 and n == 1:
                    subj = f"A {PERSON_WORDS[int(rng.integers(len(PERSON_WORDS)))]}"
                elif n == 1:
                    subj = f"A {ADJ[int(rng.integers(len(ADJ)))]} {name}"
                elif n in NUMBERS and rng.random() < 0.6:
                    subj = f"{NUMBERS[n].capitalize()} {plural(name)}"
                elif rng.random() < 0.5:
                    subj = f"A group of {plural(name)}"
                else:
                    subj = f"Some {plural(name)}"
                other = [o for o in present if o != c]
                tail = f" next to a {names[other[int(rng.integers(len(other)))]]}" if other and rng.random() < 0.5 else ""
                text = f"{subj} {verb}{tail} {place}."
            captions.append({"id": cid, "image_id": iid, "caption": text})
    caption_doc = {"info": instances["info"], "images": images, "annotations": captions}

    # REFER: refs on non-crowd annotations of ~27k train images, spread over three datasets
    train_imgs = [i for i in range(n_images) if i % 3 and per_image[i]]
    refer_imgs = rng.choice(len(train_imgs), size=min(len(train_imgs), max(1, int(n_refs / 5.2))), replace=False)
    pool = [(a, c) for k in sorted(int(x) for x in refer_imgs) for a, c, crowd in per_image[train_imgs[k]] if not crowd]
    img_of = {a["id"]: a["image_id"] for a in anns}
    shares = {"refcoco/refs(unc).p": 0.36, "refcoco+/refs(unc).p": 0.36, "refcocog/refs(umd).p": 0.28}
    paths = {"instances": root / "annotations" / "instances_trainval2014.json",
             "captions": root / "annotations" / "captions_trainval2014.json", "refer_root": root / "refer"}
    for rel, share in shares.items():
        n = int(round(n_refs * share))
        picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
        refs, sent_id = [], 0
        for ref_id, k in enumerate(sorted(int(x) for x in picks), start=1):
            a, c = pool[k]
            sents = []
            for _ in range(int(rng.integers(1, 4))):
                sent_id += 1
                noun = PERSON_WORDS[int(rng.integers(len(PERSON_WORDS)))] if c == 1 else names[c]
                form = int(rng.integers(3))
                raw = (f"{SIDES[int(rng.integers(len(SIDES)))]} {noun}" if form == 0 else
                       f"the {ADJ[int(rng.integers(len(ADJ)))]} {noun} on the {SIDES[int(rng.integers(len(SIDES)))]}"
                       if form == 1 else f"{noun} {PLACES[int(rng.integers(len(PLACES)))]}")
                sents.append({"raw": raw, "sent": raw, "sent_id": sent_id, "tokens": raw.split()})
            split = ("train", "val", "testA", "testB")[int(rng.choice(4, p=[0.85, 0.07, 0.04, 0.04]))]
            refs.append({"ref_id": ref_id, "ann_id": a, "image_id": img_of[a], "category_id": c, "split": split,
                         "sentences": sents, "sent_ids": [s["sent_id"] for s in sents]})
        out = paths["refer_root"] / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as f:
            pickle.dump(refs, f, protocol=2)
    paths["instances"].parent.mkdir(parents=True, exist_ok=True)
    with open(paths["instances"], "w") as f:
        json.dump(instances, f)
    with open(paths["captions"], "w") as f:
        json.dump(caption_doc, f)
    return paths


def write(args: argparse.Namespace, t_gen: float, sizes: dict[str, float], stats: dict, wall: float,
          rss_gib: float, ok: bool) -> None:
    """The run's figures as section ``build_refzom_scale`` of benchmarks/RESULTS.md."""
    from results_md import markdown_table, write_results

    zc = stats["zero_check"]
    main_rows = [("input generated (seed %d)" % args.seed,
                  f"{args.images:,} images, {args.anns:,} instances, {args.captions:,} captions, {args.refs:,} "
                  f"REFER refs in {t_gen:.1f} s (" + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items()) + ")"),
                 ("builder wall time", f"{wall:.1f} s (target < {TIME_LIMIT_S:.0f} s)"),
                 ("builder peak RSS", f"{rss_gib:.2f} GiB (target < {RSS_LIMIT_GIB:.0f} GiB)"),
                 ("targets", "met" if ok else "MISSED"),
                 ("zero-target check", f"{zc['candidates_tried']:,} candidates, {zc['accepted']:,} accepted, "
                                       f"{zc['images_without_sentence']:,} images without a sentence")]
    comparison = markdown_table(("count", "published", "built", "built / published"),
                                [(r["name"], f"{r['published']:,}", f"{r['built']:,}", f"{r['ratio']:.3f}")
                                 for r in stats["published"]["comparison"]])
    write_results("build_refzom_scale", "Ref-ZOM builder on a COCO-sized input (no pixels)",
                  [markdown_table(("quantity", "measured"), main_rows, "ll"), comparison],
                  ["`refbench build-dataset ref-zom` with its defaults, run as a child process on synthetic "
                   "COCO-2014-like annotations (box polygons, captions written from each image's objects); "
                   "peak RSS is `getrusage(RUSAGE_CHILDREN).ru_maxrss`. The second table compares the built "
                   "dataset's counts with the paper's (`stats.json`, `published.comparison`)."])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=120_000)
    ap.add_argument("--anns", type=int, default=860_000)
    ap.add_argument("--captions", type=int, default=600_000)
    ap.add_argument("--refs", type=int, default=140_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="Where to write inputs and output (default: a temp dir).")
    ap.add_argument("--keep", action="store_true", help="Keep the generated inputs and the built dataset.")
    ap.add_argument("--write-results", action="store_true", help="Write the figures into benchmarks/RESULTS.md.")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="refzom_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        paths = generate(work / "input", args.images, args.anns, args.captions, args.refs, args.seed)
        t_gen = time.perf_counter() - t0
        sizes = {k: os.path.getsize(v) / 2**20 for k, v in paths.items() if v.is_file()}
        print(f"generated input in {t_gen:.1f} s: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items()))
        out = work / "built"
        cmd = [sys.executable, "-m", "refbench", "build-dataset", "ref-zom", "--coco-instances", str(paths["instances"]),
               "--coco-captions", str(paths["captions"]), "--refer-root", str(paths["refer_root"]), "--out", str(out),
               "--force", "--no-progress"]
        t1 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t1
        rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            print(f"builder failed with exit code {proc.returncode}")
            return 1
        stats = json.loads((out / "stats.json").read_text())
        zc = stats["zero_check"]
        print(f"zero-target check: {zc['candidates_tried']} candidates, {zc['accepted']} accepted, rejected "
              f"{zc['rejected']}, {zc['images_without_sentence']} images without a sentence")
        print(f"methods: {stats['all']['methods']}")
        for row in stats["published"]["comparison"]:
            print(f"  {row['name']:22s} published {row['published']:>7d}  built {row['built']:>7d}  ratio {row['ratio']:.3f}")
        load = os.getloadavg()
        ok = wall < TIME_LIMIT_S and rss_gib < RSS_LIMIT_GIB
        print(f"builder: {wall:.1f} s wall (limit {TIME_LIMIT_S:.0f} s), peak RSS {rss_gib:.2f} GiB "
              f"(limit {RSS_LIMIT_GIB:.0f} GiB), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
              f"{os.cpu_count()} CPUs -> {'PASS' if ok else 'FAIL'}")
        if args.write_results:
            write(args, t_gen, sizes, stats, wall, rss_gib, ok)
        return 0 if ok else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
