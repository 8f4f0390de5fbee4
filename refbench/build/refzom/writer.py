"""Output files in the released Ref-ZOM layout, written atomically.

    OUT/ref-zom/refs(final).p       pickle (protocol 2) of REFER-style ref dicts (what DMMI's
                                    README calls refs(final).p after renaming Ref-ZOM(final).p)
    OUT/ref-zom/refs(final).json    the same list as JSON
    OUT/ref-zom/instances.json      COCO instances of the images used (all their annotations)
    OUT/images/mscoco/images/<set>  optional symlinks to the source image folders
    OUT/stats.json                  statistics + the published Ref-ZOM numbers
    OUT/manifest.json               command, seed, config, input and output sha256s

A ref: ``ref_id``, ``image_id``, ``split`` (train | test), ``source`` (zero | one | many),
``ann_id`` (int for one; list for many; for zero an annotation of the image, which DMMI's
loader looks up and then ignores), ``category_id`` (int | list aligned with ``ann_id`` |
[] for zero), ``sentences`` [{raw, sent, sent_id, tokens}], ``sent_ids``, ``file_name``, and
``refbench_method`` (how it was made).  Everything is written into a temporary sibling of
OUT and swapped into place (refbench.build.output), so a failed build leaves nothing behind.

What DMMI's loader (``refer/refer.py``, ``data/dataset_zom.py``) needs from the files is checked
before anything is moved into place (:func:`check_loader_contract`): every annotation a ref names
is a non-crowd annotation of the ref's image whose segmentation is a list of polygon lists or a
list of compressed-RLE dicts.  COCO crowd annotations (a bare dict with uncompressed counts, which
``getMask`` cannot index) are copied into instances.json as COCO has them but never named by a ref.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from refbench.build.files import dump_json, dump_json_pretty, dump_pickle, official_segmentation, sentence_record
from refbench.build.refzom.draft import Draft
from refbench.build.refzom.sources import Sources
from refbench.data.layout import ImageLocator
from refbench.core.errors import RefbenchError

DATASET_DIR = "ref-zom"
REFS_FILE = "refs(final).p"
REFS_JSON = "refs(final).json"
IMAGE_BASE = "images/mscoco/images"
IMAGE_SETS = ("trainval2014", "train2014", "val2014")
SOURCE_ORDER = {"one": 0, "many": 1, "zero": 2}


def ref_dicts(drafts: Sequence[Draft], split_of: Mapping[int, str], src: Sources) -> list[dict]:
    """Ref-ZOM ref dicts with ids 1..N (refs) and 1..M (sentences), train before test, then
    by image id and type (one, many, zero)."""
    order = sorted(range(len(drafts)), key=lambda i: (split_of[drafts[i].image_id] != "train", drafts[i].image_id,
                                                     SOURCE_ORDER[drafts[i].source], i))
    refs, sent_id = [], 0
    for ref_id, i in enumerate(order, start=1):
        d = drafts[i]
        sents = []
        for raw in d.sentences:
            sent_id += 1
            sents.append(sentence_record(raw, sent_id))
        cats = [src.ann_cat[a] for a in d.ann_ids]
        if d.source == "one":
            ann_id, cat = d.ann_ids[0], cats[0]
        elif d.source == "many":
            ann_id, cat = list(d.ann_ids), cats
        else:  # the loader looks the ann_id up (then zeroes the mask): a non-crowd annotation of the image
            ann_id, cat = next(a for a in src.image_anns[d.image_id] if a not in src.crowd), []
        refs.append({"ref_id": ref_id, "image_id": d.image_id, "split": split_of[d.image_id], "source": d.source,
                     "ann_id": ann_id, "category_id": cat, "sentences": sents,
                     "sent_ids": [s["sent_id"] for s in sents], "file_name": src.coco.images[d.image_id].file_name,
                     "refbench_method": d.method})
    return refs


def instances_subset(src: Sources, image_ids: set[int], description: str) -> dict:
    """COCO instances of ``image_ids``: their image records, all their annotations (id order), all categories.

    Non-crowd segmentations are written as the official ``getMask`` reads them (refbench.build.files.
    official_segmentation: a bare RLE dict becomes a list of one compressed dict; the pixels are the
    same); crowd annotations are copied as COCO has them (no ref names them)."""
    images = [{"id": i.id, "file_name": i.file_name, "height": i.height, "width": i.width}
              for i in sorted((src.coco.images[k] for k in image_ids), key=lambda x: x.id)]
    anns = []
    for i in sorted(image_ids):
        im = src.coco.images[i]
        for a in src.image_anns.get(i, ()):
            ann = src.coco.anns[a]
            if a not in src.crowd:
                segm = official_segmentation(ann["segmentation"], im.height, im.width)
                if segm is not ann["segmentation"]:
                    ann = {**ann, "segmentation": segm}
            anns.append(ann)
    cats = [src.coco.categories[c] for c in sorted(src.coco.categories)]
    return {"info": {"description": description}, "images": images, "annotations": anns, "categories": cats}


def segmentation_problem(segm: Any) -> str | None:
    """Why DMMI's / REFER's ``getMask`` cannot read ``segm`` (§10), or None: it indexes ``segm[0]``,
    rasterizes a list of polygon lists, and passes anything else to ``pycocotools.mask.decode``
    and sums over the last axis, which needs a list of compressed-RLE dicts."""
    if not isinstance(segm, list) or not segm:
        kind = "an empty list" if isinstance(segm, list) else f"a {type(segm).__name__}"
        return f"segmentation is {kind}, not a non-empty list"
    if isinstance(segm[0], list):
        # coordinates were checked when the inputs were read (refbench.data.masks); the structure is checked here
        return None if all(isinstance(p, list) for p in segm) else "segmentation mixes polygon lists with other things"
    if all(isinstance(p, dict) and isinstance(p.get("counts"), str) and isinstance(p.get("size"), list)
           for p in segm):
        return None
    return "segmentation is a list but neither of polygon lists nor of compressed-RLE dicts"


def check_loader_contract(refs: list[dict], instances: dict) -> None:
    """What DMMI's ``refer/refer.py`` + ``data/dataset_zom.py`` need from the files: unique
    ref and sentence ids; every ``ann_id`` (int or list) and ``image_id`` in instances.json;
    ``source``, ``split`` in train/test, sentences with ``raw``, ``sent_id`` and ``tokens``; every
    annotation a ref names (a zero ref's too: it is looked up, though not decoded) is non-crowd
    and its segmentation readable by ``getMask`` (:func:`segmentation_problem`).  A violation is a
    refbench bug; it stops the build before anything is moved into place."""
    anns = {a["id"]: a for a in instances["annotations"]}
    images = {i["id"] for i in instances["images"]}
    ref_ids, sent_ids = set(), set()
    for r in refs:
        problem = None
        ids = r["ann_id"] if isinstance(r["ann_id"], list) else [r["ann_id"]]
        if r["ref_id"] in ref_ids:
            problem = "duplicate ref_id"
        elif r["image_id"] not in images:
            problem = "image not in instances.json"
        elif any(a not in anns or anns[a]["image_id"] != r["image_id"] for a in ids):
            problem = "ann_id not an annotation of its image"
        elif any(anns[a].get("iscrowd") for a in ids):
            problem = f"names the crowd annotation {next(a for a in ids if anns[a].get('iscrowd'))}"
        elif r["source"] not in SOURCE_ORDER or r["split"] not in ("train", "test"):
            problem = "bad source/split"
        elif r["source"] == "many" and (not isinstance(r["ann_id"], list) or len(set(ids)) < 2):
            problem = "many-target ref without >= 2 annotations"
        elif not r["sentences"] or any(not s.get("raw") or "tokens" not in s for s in r["sentences"]):
            problem = "sentence without raw/tokens"
        elif any(s["sent_id"] in sent_ids for s in r["sentences"]):
            problem = "duplicate sent_id"
        else:
            bad = next(((a, why) for a in ids if (why := segmentation_problem(anns[a]["segmentation"]))), None)
            if bad:
                problem = f"annotation {bad[0]}: {bad[1]}"
        if problem:
            raise RefbenchError(f"internal error: ref {r['ref_id']} breaks the Ref-ZOM loader contract ({problem}); "
                                f"please report this with the command line")
        ref_ids.add(r["ref_id"])
        sent_ids.update(s["sent_id"] for s in r["sentences"])


def image_links(image_dirs: Sequence[str | os.PathLike], file_names: Sequence[str]) -> dict[str, Path]:
    """{image set name: source folder} for ``--image-dir`` folders, checked to hold every image.

    A folder named trainval2014 / train2014 / val2014 keeps its name (COCO file names
    carry the set, so train2014 + val2014 both work); any other single folder becomes
    ``trainval2014``."""
    links: dict[str, Path] = {}
    for d in image_dirs:
        p = Path(d).expanduser().resolve()
        if not p.is_dir():
            raise RefbenchError(f"--image-dir {d} is not a directory")
        name = p.name if p.name in IMAGE_SETS else "trainval2014"
        if name in links:
            raise RefbenchError(f"--image-dir {d} and {links[name]} would both be linked as {name}; pass folders named "
                                f"train2014 and val2014, or a single folder")
        links[name] = p
    if links:
        loc = ImageLocator(links, next(iter(links.values())))
        missing = [f for f in file_names if not loc.path(f).is_file()]
        if missing:
            raise RefbenchError(f"{len(missing)} of {len(file_names)} images are not in --image-dir "
                                f"({', '.join(str(p) for p in links.values())}), e.g. {missing[0]} (expected "
                                f"{loc.path(missing[0])}); pass the folder(s) holding the COCO images")
    return links


write_json_pretty = dump_json_pretty


def write_dataset(root: Path, refs: list[dict], instances: dict, links: Mapping[str, Path]) -> list[Path]:
    """Write the Ref-ZOM files (and image symlinks) under ``root``; returns the files written."""
    d = root / DATASET_DIR
    d.mkdir(parents=True, exist_ok=True)
    dump_pickle(d / REFS_FILE, refs)
    dump_json(d / REFS_JSON, refs)
    dump_json(d / "instances.json", instances)
    for name, target in links.items():
        link = root / IMAGE_BASE / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link, target_is_directory=True)
    return [d / REFS_FILE, d / REFS_JSON, d / "instances.json"]
