"""``build_refzom``: a Ref-ZOM-style dataset (zero / one / many targets) from COCO-format inputs.

Stages (each image draws from its own generator seeded by (seed, image id, stage), so the
output depends only on the inputs and the seed, never on iteration order):

1. read instances, captions and REFER refs (sources.py); build the category lexicon;
2. one-to-zero images: from the zero pool (config.zero_pool; by default images in none of
   the given REFER files, the paper's rule), each with one sentence that passes the
   category check (one_to_zero.py), until ``zero_fraction`` of the images are reached;
3. target images: REFER images first, then images with a one-to-one candidate, then the
   rest, up to ``max_images`` in all;
4. split zero and target images by image (split.py);
5. every target image gets ``one_per_image`` one-to-one refs (one_to_one.py); per split,
   one-to-many refs (one_to_many.py) go on target images in a seeded order until their
   targets reach ``many_object_ratio`` x that split's one-to-one targets (images without a
   one-to-one candidate always get one);
6. write into a temporary folder beside ``out`` and swap it in (refbench.build.output) with
   stats.json and manifest.json, after checking the DMMI loader contract and reading the result
   back with refbench's Ref-ZOM reader.

``out`` is checked before any input is read: it may not be, contain or lie inside an input path,
and ``force`` replaces only a folder refbench built.  Crowd annotations are never a target
(refbench.build.refzom.sources): COCO's crowd RLE is unreadable for the official ``getMask``,
and a category with a crowd annotation gets no "all the ..." ref, whose GT would miss the crowd.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from refbench.core import __version__
from refbench.build.output import check_build_output, staged_output
from refbench.build.refzom import writer
from refbench.build.refzom.config import RefZomConfig
from refbench.build.refzom.draft import Draft
from refbench.build.refzom.lexicon import Lexicon, load_lexicon_file
from refbench.build.refzom.one_to_many import multi_instance, one_to_many
from refbench.build.refzom.one_to_one import has_one_candidate, one_to_one
from refbench.build.refzom.one_to_zero import ZeroReport, one_to_zero
from refbench.build.refzom.phrases import Chunker
from refbench.build.refzom.sources import REFER_FAMILIES, PathsLike, Sources, as_paths, load_sources
from refbench.build.refzom.split import SPLITS, split_images
from refbench.build.refzom.stats import dataset_stats
from refbench.data import refzom as refzom_reader
from refbench.core.errors import RefbenchError
from refbench.core.provenance import sha256_file

# 2: crowd annotations never named by a ref; RLE segmentations as a list of compressed dicts
FORMAT_VERSION = 2
# Stage numbers in the per-image / per-stage generator seeds.
(_ZERO, _ONE, _MANY, _PERM_OUTSIDE, _PERM_REFER, _PERM_TARGET_REFER, _PERM_TARGET_OTHER, _PERM_MANY,
 _PERM_TARGET_MANY_ONLY) = range(1, 10)


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _bar(enabled: bool, length: int, label: str) -> Iterator:
    if not enabled or length <= 0:
        yield _NoBar()
        return
    import click

    with click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar


def _perm(ids: list[int], seed: int, *stage: int) -> list[int]:
    return [ids[int(k)] for k in np.random.default_rng([seed, *stage]).permutation(len(ids))]


def _rng(seed: int, image_id: int, stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, image_id, stage])


def canonical_command(instances: PathsLike, captions: PathsLike, refer_root: str | os.PathLike,
                      out: str | os.PathLike, config: RefZomConfig, image_dirs: Sequence[str | os.PathLike] = (),
                      lexicon_file: str | os.PathLike | None = None, lexicon_fallback: bool = False) -> list[str]:
    """The ``refbench build-dataset ref-zom`` command line that makes this build (all options explicit)."""
    cmd = ["refbench", "build-dataset", "ref-zom"]
    for p in as_paths(instances):
        cmd += ["--coco-instances", str(p)]
    for p in as_paths(captions):
        cmd += ["--coco-captions", str(p)]
    cmd += ["--refer-root", str(refer_root), "--out", str(out), "--seed", str(config.seed),
           "--max-images", "0" if config.max_images is None else str(config.max_images),
           "--test-fraction", repr(config.test_fraction), "--zero-fraction", repr(config.zero_fraction),
           "--many-object-ratio", repr(config.many_object_ratio), "--zero-pool", config.zero_pool]
    for d in image_dirs:
        cmd += ["--image-dir", str(d)]
    if lexicon_file is not None:
        cmd += ["--lexicon", str(lexicon_file)]
    if lexicon_fallback:
        cmd.append("--lexicon-fallback")
    return cmd


def _zero_pool_note(src: Sources, rule: str) -> dict:
    given = src.families()
    missing = [f for f in REFER_FAMILIES.values() if f not in given]
    files = [f.name for f in src.refer_files]
    if rule == "outside-refer":
        text = (f"one-to-zero images are images with no ref in any REFER file under --refer-root ({', '.join(files)}); "
                f"the paper uses images in none of RefCOCO, RefCOCO+ and RefCOCOg")
        if missing:
            text += f"; not given here: {', '.join(missing)}, so images of those datasets may be one-to-zero images"
    else:
        text = ("--zero-pool unused: one-to-zero images are images not used for one/many refs, those outside the REFER "
                f"files ({', '.join(files)}) first; some may have REFER refs (not used here)")
    return {"rule": rule, "refer_files": files, "families_given": given, "families_missing": missing, "note": text}


def _choose_zero(src: Sources, lexicon: Lexicon, chunker: Chunker, cfg: RefZomConfig, usable: list[int], goal: int,
                 progress: bool) -> tuple[dict[int, Draft], ZeroReport]:
    refer_set = set(src.refer_images)
    # a zero ref still names an annotation of its image (DMMI's loader looks it up): a non-crowd one
    usable = [i for i in usable if any(a not in src.crowd for a in src.image_anns[i])]
    order = _perm([i for i in usable if i not in refer_set], cfg.seed, _PERM_OUTSIDE)
    if cfg.zero_pool == "unused":
        order += _perm([i for i in usable if i in refer_set], cfg.seed, _PERM_REFER)
    report = ZeroReport()
    chosen: dict[int, Draft] = {}
    with _bar(progress, goal, "one-to-zero sentences") as bar:
        for iid in order:
            if len(chosen) >= goal:
                break
            d = one_to_zero(_rng(cfg.seed, iid, _ZERO), src, lexicon, chunker, iid, report, cfg.zero_max_tries,
                            cfg.zero_caption_share)
            if d is not None:
                chosen[iid] = d
                bar.update(1)
    if goal > 0 and not chosen:
        if not order:
            raise RefbenchError(
                f"no image qualifies for one-to-zero refs: all {len(usable)} annotated images have refs in "
                f"{', '.join(f.name for f in src.refer_files)}; pass --zero-pool unused to take them from images not "
                f"used for one/many refs, or --zero-fraction 0")
        raise RefbenchError(
            f"no one-to-zero sentence passed the category check on any of {len(order)} images ({report.tried} "
            f"candidates, rejections {dict(report.rejected)}); --coco-captions and the REFER files must hold sentences "
            f"about categories some images lack, or pass --zero-fraction 0")
    return chosen, report


def _choose_targets(src: Sources, cfg: RefZomConfig, usable: list[int], zero: dict[int, Draft], goal: int) -> list[int]:
    """REFER images first, then images with a one-to-one candidate, then those with only a
    one-to-many candidate (each group in seeded order), up to ``goal``."""
    refer_set = set(src.refer_images)
    rest = [i for i in usable if i not in zero and i not in refer_set]
    with_one: list[int] = []
    many_only: list[int] = []
    for i in rest:
        if has_one_candidate(src, i):
            with_one.append(i)
        elif multi_instance(src, i):
            many_only.append(i)
    order = (_perm([i for i in usable if i not in zero and i in refer_set], cfg.seed, _PERM_TARGET_REFER)
             + _perm(with_one, cfg.seed, _PERM_TARGET_OTHER) + _perm(many_only, cfg.seed, _PERM_TARGET_MANY_ONLY))
    return sorted(order[:goal])


def _make_targets(src: Sources, lexicon: Lexicon, chunker: Chunker, cfg: RefZomConfig, targets: list[int],
                  split_of: dict[int, str], progress: bool) -> tuple[list[Draft], list[Draft], list[int]]:
    """One-to-one refs on every target image; one-to-many refs per split until their targets
    reach ``many_object_ratio`` x that split's one-to-one targets.  Returns (one-to-one refs,
    one-to-many refs, images that yielded no ref)."""
    ones: dict[int, list[Draft]] = {}
    with _bar(progress, len(targets), "one-to-one refs") as bar:
        for iid in targets:
            ones[iid] = one_to_one(_rng(cfg.seed, iid, _ONE), src, lexicon, iid, cfg.one_per_image,
                                   cfg.one_template_share)
            bar.update(1)
    many: list[Draft] = []
    dropped: list[int] = []
    weights = dict(cfg.many_weights)
    with _bar(progress, len(targets), "one-to-many refs") as bar:
        for s, split in enumerate(SPLITS):
            mine = [i for i in targets if split_of[i] == split]
            goal = round(cfg.many_object_ratio * sum(len(d.ann_ids) for i in mine for d in ones[i]))
            mandatory = [i for i in mine if not ones[i]]
            order = mandatory + _perm([i for i in mine if ones[i]], cfg.seed, _PERM_MANY, s)
            n_objects = 0
            for k, iid in enumerate(order):
                if k >= len(mandatory) and n_objects >= goal:
                    break
                d = one_to_many(_rng(cfg.seed, iid, _MANY), src, lexicon, chunker, iid, weights, cfg.join_three_share)
                if d is not None:
                    many.append(d)
                    n_objects += len(d.ann_ids)
                elif k < len(mandatory):
                    dropped.append(iid)
                bar.update(1)
    return [d for i in targets for d in ones[i]], many, dropped


def _self_check(root: Path, refs: list[dict]) -> None:
    """Read the written pickle back with refbench's Ref-ZOM reader and compare types."""
    back = refzom_reader.load_refs(root / writer.DATASET_DIR / writer.REFS_FILE)
    if [r.type for r in back] != [r["source"] for r in refs]:
        raise RefbenchError("internal error: the written refs(final).p does not read back as built; please report this")


def build_refzom(instances: PathsLike, captions: PathsLike, refer_root: str | os.PathLike,
                 out: str | os.PathLike, config: RefZomConfig = RefZomConfig(), *,
                 image_dirs: Sequence[str | os.PathLike] = (), lexicon_file: str | os.PathLike | None = None,
                 lexicon_fallback: bool = False, force: bool = False, command: list[str] | None = None,
                 progress: bool = False, echo: Callable[[str], None] | None = None) -> dict:
    """Build a Ref-ZOM-style dataset into ``out`` (see module doc and writer.py for the files).

    ``instances`` / ``captions``: one COCO file or several (train2014 + val2014; merged).
    Returns the manifest.  Bad inputs, an empty result or an existing ``out`` (without
    ``force``) raise RefbenchError and leave nothing behind.  ``image_dirs``: source image
    folders to symlink (not copied); ``lexicon_file``: extra lexicon entries (JSON);
    ``lexicon_fallback``: categories without an entry use their own name; ``command``:
    recorded in the manifest (default: the equivalent CLI line); ``progress``: bars on stderr.
    """
    cfg = config
    cfg.validate()
    given_out = out  # the command line records --out as given
    out = check_build_output(out, force, inputs=[*as_paths(instances), *as_paths(captions), refer_root, *image_dirs,
                                                 lexicon_file])
    say = echo or (lambda _m: None)
    t0 = time.perf_counter()
    src = load_sources(instances, captions, refer_root)
    names = {}
    for cid, c in src.coco.categories.items():
        if not isinstance(c.get("name"), str) or not c["name"].strip():
            raise RefbenchError(f"{src.coco.path}: category {cid} has no 'name'; every category needs one")
        names[cid] = c["name"]
    lexicon = Lexicon(names, load_lexicon_file(lexicon_file) if lexicon_file else None, lexicon_fallback,
                      source=str(src.coco.path))
    chunker = Chunker(lexicon)
    say(f"read {len(src.coco.images)} images, {len(src.coco.anns)} annotations, "
        f"{sum(len(v) for v in src.captions.values())} captions, {sum(f.refs for f in src.refer_files)} REFER refs "
        f"({', '.join(f.name for f in src.refer_files)}) in {time.perf_counter() - t0:.1f} s")

    usable = sorted(i for i in src.coco.images if src.image_anns.get(i))
    if not usable:
        raise RefbenchError(f"{src.coco.path}: no image has an annotation; nothing to build")
    n_total = len(usable) if cfg.max_images is None else min(cfg.max_images, len(usable))
    zero_goal = round(n_total * cfg.zero_fraction)
    zero, zero_report = _choose_zero(src, lexicon, chunker, cfg, usable, zero_goal, progress)
    targets = _choose_targets(src, cfg, usable, zero, n_total - len(zero))
    split_of = split_images({"zero": sorted(zero), "target": targets}, cfg.test_fraction, cfg.seed)
    ones, many, dropped = _make_targets(src, lexicon, chunker, cfg, targets, split_of, progress)
    drafts = ones + many + [zero[i] for i in sorted(zero)]
    if not drafts:
        raise RefbenchError("the build produced no refs: no image has a REFER ref, a category template or a zero-target "
                            "sentence; check the inputs")
    for i in dropped:
        del split_of[i]
    for s in SPLITS:
        if s not in split_of.values():
            raise RefbenchError(f"the {s} split is empty ({len(split_of)} images, --test-fraction {cfg.test_fraction}); "
                                f"use more images (--max-images) or another --test-fraction")
    refs = writer.ref_dicts(drafts, split_of, src)
    used = set(split_of)
    instances_doc = writer.instances_subset(src, used, f"Ref-ZOM-style dataset built by refbench "
                                                       f"{__version__} from "
                                                       f"{' + '.join(p.name for p in as_paths(instances))}")
    writer.check_loader_contract(refs, instances_doc)
    links = writer.image_links(image_dirs, [src.coco.images[i].file_name for i in sorted(used)])

    notes = []
    if len(zero) < zero_goal:
        notes.append(f"one-to-zero images: {len(zero)} of the {zero_goal} wanted (the zero pool ran out)")
    if len(targets) < n_total - len(zero):
        notes.append(f"target images: {len(targets)} of the {n_total - len(zero)} wanted (not enough usable images)")
    if dropped:
        notes.append(f"{len(dropped)} target image(s) yielded no ref and were left out")
    notes.append("images are referenced, not copied: " + (
        "linked as " + ", ".join(f"{writer.IMAGE_BASE}/{k} -> {v}" for k, v in links.items()) if links else
        "evaluate with --image-root DIR (COCO train2014 + val2014 merged as trainval2014, or a folder holding both)"))
    stats = dataset_stats(refs, src.ann_cat, names)
    stats.update({"zero_check": zero_report.to_json(), "zero_pool": _zero_pool_note(src, cfg.zero_pool),
                  "lexicon": lexicon.report(), "notes": notes, "config": cfg.to_json()})
    inputs = {"instances": [{"path": str(p), "sha256": sha256_file(p)} for p in as_paths(instances)],
              "captions": [{"path": str(p), "sha256": sha256_file(p)} for p in as_paths(captions)],
              "refer_root": str(refer_root),
              "refer": [{"path": f.name, "family": f.family, "sha256": sha256_file(f.path)} for f in src.refer_files]}
    if lexicon_file:
        inputs["lexicon"] = {"path": str(lexicon_file), "sha256": sha256_file(lexicon_file)}
    cmd = command if command is not None else canonical_command(instances, captions, refer_root, given_out, cfg,
                                                               image_dirs, lexicon_file, lexicon_fallback)
    t_write = time.perf_counter()
    with staged_output(out, force, generator="refbench.build.refzom") as tmp:
        files = writer.write_dataset(tmp, refs, instances_doc, links)
        writer.write_json_pretty(tmp / "stats.json", stats)
        files.append(tmp / "stats.json")
        _self_check(tmp, refs)
        manifest = {"generator": "refbench.build.refzom", "format_version": FORMAT_VERSION,
                    "refbench_version": __version__, "command": cmd, "seed": cfg.seed, "config": cfg.to_json(),
                    "inputs": inputs, "zero_pool": stats["zero_pool"]["note"],
                    "image_links": {f"{writer.IMAGE_BASE}/{k}": str(v) for k, v in links.items()},
                    "counts": {s: {"images": v["images"], "refs": v["refs"], "sentences": v["sentences"]}
                               for s, v in stats["splits"].items()},
                    "files": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(files)}}
        writer.write_json_pretty(tmp / "manifest.json", manifest)
    zc = zero_report.to_json()
    say(f"one-to-zero check: {zc['candidates_tried']} candidate sentences, {zc['accepted']} accepted, rejected "
        + ", ".join(f"{k} {v}" for k, v in zc["rejected"].items()) + f"; {stats['zero_pool']['note']}")
    say(f"wrote {len(refs)} refs on {len(used)} images in {time.perf_counter() - t_write:.1f} s "
        f"(total {time.perf_counter() - t0:.1f} s) -> {out}")
    return manifest
