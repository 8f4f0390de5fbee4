"""The builder's inputs, read with refbench's readers and indexed per image.

    instances   COCO instances JSON file(s) (refbench.data.coco.load_instances); several
                files (instances_train2014.json + instances_val2014.json) are merged
    captions    COCO captions JSON file(s): {"annotations": [{"image_id", "caption"}, ...]}
    refer_root  a directory holding REFER refs pickles ``refs(<splitBy>).p`` at depth 0-3
                (LAVT's ``refer/data/{refcoco,refcoco+,refcocog}/``, or the synthetic
                benchmark's root with ``synth/refs(unc).p``); Ref-ZOM's ``refs(final).p`` is
                skipped.  Read with refbench.data.refer.load_refs (safe unpickling).

Every REFER ref must point at an annotation of instances.json on the ref's image;
otherwise the files do not belong together and the build stops.  Every annotation's segmentation
is checked as refbench's readers check it (refbench.data.masks: polygons that rasterize, RLE of the
image's size whose counts add up), so a broken input stops the build with one line naming the
file, the annotation and its image instead of being copied into the output.  ``iscrowd``
annotations are indexed (they count as present for the zero-target check) but never become a
target: REFER refs on them are skipped, and the builders leave their categories out of
"all the ..." refs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from refbench.build.refzom.phrases import clean_sentence
from refbench.data import refer
from refbench.data.coco import CocoIndex, load_instances, read_json
from refbench.core.errors import RefbenchError

# Directory name of a REFER dataset -> the name the paper uses for it.
REFER_FAMILIES = {"refcoco": "RefCOCO", "refcoco+": "RefCOCO+", "refcocog": "RefCOCOg"}
REFZOM_FILES = frozenset({"refs(final).p"})
PathsLike = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def as_paths(value: PathsLike) -> list[Path]:
    """One path or a sequence of paths -> a list of Paths."""
    return [Path(value)] if isinstance(value, (str, os.PathLike)) else [Path(v) for v in value]


@dataclass(frozen=True)
class ReferFile:
    """One REFER refs pickle that was read: path relative to the root, dataset family (or None)."""

    path: Path
    name: str
    family: str | None
    refs: int
    sentences: int


@dataclass
class Sources:
    """Indexed inputs.

    coco: the instances index; image_anns: {image_id: [ann_id, ...]} (id order);
    ann_cat: {ann_id: category_id}; crowd: ann ids with iscrowd=1; captions:
    {image_id: [caption, ...]} (cleaned, file order); refer_files: the pickles read;
    refer_sentences: {ann_id: [sentences of one source ref, ...]} for every REFER-referred
    annotation; refer_images: {image_id: [ann_id, ...]} of those; caption_pool /
    refer_pool: (image_id, sentence) pairs that one-to-zero sentences are drawn from.
    """

    coco: CocoIndex
    image_anns: dict[int, list[int]]
    ann_cat: dict[int, int]
    crowd: set[int]
    captions: dict[int, list[str]]
    refer_files: list[ReferFile]
    refer_sentences: dict[int, list[tuple[str, ...]]]
    refer_images: dict[int, list[int]]
    caption_pool: list[tuple[int, str]] = field(repr=False)
    refer_pool: list[tuple[int, str]] = field(repr=False)

    def categories_in(self, image_id: int) -> dict[int, list[int]]:
        """{category_id: [ann_id, ...]} of one image (crowd annotations included)."""
        out: dict[int, list[int]] = {}
        for a in self.image_anns.get(image_id, ()):
            out.setdefault(self.ann_cat[a], []).append(a)
        return out

    def families(self) -> list[str]:
        return sorted({f.family for f in self.refer_files if f.family})


def find_refer_files(root: Path) -> list[tuple[Path, str]]:
    """(path, name relative to root) of every ``refs(*).p`` at depth 0-3 except Ref-ZOM's, sorted."""
    if not root.is_dir():
        raise RefbenchError(f"--refer-root {root} is not a directory; pass the folder holding refcoco/, refcoco+/, "
                            f"refcocog/ (each with refs(<splitBy>).p)")
    found = []
    for depth in range(4):
        pattern = "/".join(["*"] * depth + ["refs(*).p"])
        for p in root.glob(pattern):
            if p.is_file() and p.name not in REFZOM_FILES:
                found.append((p, p.relative_to(root).as_posix()))
    if not found:
        raise RefbenchError(f"--refer-root {root}: no REFER refs pickle found (looked for refs(unc).p, refs(umd).p, "
                            f"refs(google).p ... up to 3 folders deep); point it at LAVT's refer/data/ or a synthetic "
                            f"benchmark root")
    return sorted(set(found), key=lambda t: t[1])


def load_captions(path: Path, images: set[int]) -> dict[int, list[str]]:
    """{image_id: [cleaned caption, ...]} for the images of instances.json."""
    doc = read_json(path)
    anns = doc.get("annotations") if isinstance(doc, dict) else None
    if not isinstance(anns, list):
        raise RefbenchError(f"{path}: not a COCO captions file (expected an object with an 'annotations' list of "
                            f"{{image_id, caption}}); pass captions_train2014.json / captions_val2014.json")
    out: dict[int, list[str]] = {}
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or "image_id" not in a or "caption" not in a:
            raise RefbenchError(f"{path}: annotations[{i}] has no 'image_id'/'caption'; this is not a COCO captions file")
        try:
            iid = int(a["image_id"])
        except (TypeError, ValueError):
            raise RefbenchError(f"{path}: annotations[{i}] has a non-integer image_id {a['image_id']!r}") from None
        text = clean_sentence(a["caption"]) if isinstance(a["caption"], str) else ""
        if iid in images and text:
            out.setdefault(iid, []).append(text)
    if anns and not out:
        raise RefbenchError(f"{path}: none of its {len(anns)} captions is about an image of the instances file; "
                            f"the captions and instances files do not belong together")
    return out


def merge_instances(paths: list[Path]) -> CocoIndex:
    """Load and merge COCO instances files; an id present in two files must mean the same thing."""
    parts = [load_instances(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    merged = CocoIndex({}, {}, {}, Path(" + ".join(str(p) for p in paths)))
    for part in parts:
        for what, mine, theirs, same in (
                ("image", merged.images, part.images, lambda a, b: a == b),
                ("annotation", merged.anns, part.anns, lambda a, b: a == b),
                ("category", merged.categories, part.categories, lambda a, b: a.get("name") == b.get("name"))):
            for k, v in theirs.items():
                if k in mine and not same(mine[k], v):
                    raise RefbenchError(f"{part.path}: {what} id {k} is also in another --coco-instances file with "
                                        f"different content; the files are not parts of one COCO release")
                mine[k] = v
    return merged


def load_sources(instances: PathsLike, captions: PathsLike, refer_root: str | os.PathLike) -> Sources:
    """Read and cross-check the inputs (see module doc); ``instances`` / ``captions`` may be
    one path or several."""
    refer_root = Path(refer_root)
    refer_paths = find_refer_files(refer_root)  # cheap: fail before parsing big JSON
    coco = merge_instances(as_paths(instances))
    instances = coco.path
    image_anns: dict[int, list[int]] = {}
    ann_cat: dict[int, int] = {}
    crowd: set[int] = set()
    for aid, a in coco.anns.items():
        try:
            iid, cid = int(a["image_id"]), int(a["category_id"])
        except KeyError:
            raise RefbenchError(f"{instances}: annotation {aid} has no 'category_id'; this is not a COCO instances "
                                f"file") from None
        except (TypeError, ValueError):
            raise RefbenchError(f"{instances}: annotation {aid} has a non-integer image_id/category_id") from None
        if iid not in coco.images:
            raise RefbenchError(f"{instances}: annotation {aid} is on image {iid}, which is not in 'images'; "
                                f"the file is incomplete, re-download it")
        if cid not in coco.categories:
            raise RefbenchError(f"{instances}: annotation {aid} has category_id {cid}, which is not in 'categories'")
        image_anns.setdefault(iid, []).append(aid)
        ann_cat[aid] = cid
        if a.get("iscrowd"):
            crowd.add(aid)
    for v in image_anns.values():
        v.sort()
    coco.validate_anns(coco.anns)  # bulk check; the first problem as one line (file, annotation, image)
    caps: dict[int, list[str]] = {}
    image_set = set(coco.images)
    for path in as_paths(captions):
        for iid, texts in load_captions(path, image_set).items():
            caps.setdefault(iid, []).extend(texts)
    files: list[ReferFile] = []
    refer_sentences: dict[int, list[tuple[str, ...]]] = {}
    refer_pool: list[tuple[int, str]] = []
    for path, name in refer_paths:
        refs = refer.load_refs(path)
        n_sent = 0
        for ref in refs:
            desc = f"ref {ref.ref_id} in {path}"
            ann = coco.ann(ref.ann_ids[0], desc)
            if int(ann["image_id"]) != ref.image_id:
                raise RefbenchError(f"{path}: ref {ref.ref_id} is on image {ref.image_id} but its annotation "
                                    f"{ref.ann_ids[0]} is on image {ann['image_id']} in {instances}; the refs file "
                                    f"and instances.json do not belong together")
            sents = tuple(dict.fromkeys(s for s in (clean_sentence(raw) for _, raw in ref.sentences) if s))
            if not sents or ref.ann_ids[0] in crowd:
                continue
            n_sent += len(sents)
            refer_sentences.setdefault(ref.ann_ids[0], []).append(sents)
            refer_pool.extend((ref.image_id, s) for s in sents)
        family = REFER_FAMILIES.get(path.parent.name.lower()) if path.parent != refer_root else None
        files.append(ReferFile(path, name, family, len(refs), n_sent))
    refer_images: dict[int, list[int]] = {}
    for aid in sorted(refer_sentences):
        refer_images.setdefault(int(coco.anns[aid]["image_id"]), []).append(aid)
    caption_pool = [(iid, c) for iid in sorted(caps) for c in caps[iid]]
    return Sources(coco, image_anns, ann_cat, crowd, caps, files, refer_sentences, refer_images, caption_pool,
                   refer_pool)
