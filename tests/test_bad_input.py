"""The bad-input suite (issue #18): every case is something a user can get wrong, and every one must
end with exit code 2, exactly ONE line on stderr (``error: ...``, no traceback), and the file tree
-- inputs and outputs -- byte-identical before and after.

Adding a case: append a :class:`Case` to ``CASES`` (or your own list, then ``CASES += ...``):
``Case(id, args, setup, needle)`` where ``args`` are the command-line words with ``{root}`` standing
for the case's own folder, ``setup(root, synth)`` writes the inputs there (``synth`` is the tiny
synthetic benchmark, built once per session: copy it with :func:`copy_synth` before corrupting it),
and ``needle`` is a piece of the expected error line.  Cases run in-process (fast: the imports are
paid once); :func:`test_subprocess_entry_point` runs one case per command through
``python -m refbench`` to prove the real entry point behaves the same.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

# ---- harness -------------------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: relative path -> (kind, mode, sha256 of the bytes | link target)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def assert_same_tree(before: dict[str, tuple], after: dict[str, tuple]) -> None:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), f"tree changed: added {added[:5]}, removed {removed[:5]}, " \
                                              f"changed {changed[:5]}"


def assert_one_error_line(code: int, out: str, err: str) -> str:
    """Exit code 2, one non-empty stderr line starting with ``error:``, no traceback anywhere."""
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    assert code == 2, f"exit code {code}: {lines[0]}"
    return lines[0]


def run_refbench_subprocess(args: list[str], cache: Path, timeout: float = 300) -> tuple[int, str, str]:
    """``python -m refbench ARGS`` with the network off and a private REFBENCH_CACHE."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "REFBENCH_CACHE": str(cache)}
    env.pop("REFBENCH_DATA", None)
    proc = subprocess.run([sys.executable, "-m", "refbench", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    setup: Callable[[Path, Path], None] | None
    needle: str

    def argv(self, root: Path) -> list[str]:
        return [a.replace("{root}", str(root)) for a in self.args]


# ---- input builders --------------------------------------------------------------------------------------------------
def copy_synth(root: Path, synth: Path) -> Path:
    data = root / "data"
    shutil.copytree(synth, data, symlinks=True)
    return data


def edit_json(path: Path, fn: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def edit_pickle(path: Path, fn: Callable[[list], None]) -> None:
    from refbench.data.safe_pickle import load_pickle

    refs = load_pickle(path)
    fn(refs)
    path.write_bytes(pickle.dumps(refs, protocol=2))


def first_val(data: Path) -> tuple[dict, dict]:
    """(first val ref, its annotation) of the synth REFER dataset: what ``--limit 2`` evaluates first."""
    from refbench.data.safe_pickle import load_pickle

    ref = next(r for r in load_pickle(data / "synth" / "refs(unc).p") if r["split"] == "val")
    doc = json.loads((data / "synth" / "instances.json").read_text())
    return ref, next(a for a in doc["annotations"] if a["id"] == ref["ann_id"])


def broken_synth(edit_instances: Callable[[dict, dict, dict], None] | None = None,
                 edit_refs: Callable[[list], None] | None = None, dataset: str = "synth"):
    """A setup: copy the synth benchmark, then edit ``dataset``'s instances.json and/or refs file.
    ``edit_instances(doc, ref, ann)`` gets the first val ref and its annotation (as in ``doc``)."""
    def setup(root: Path, synth: Path) -> None:
        data = copy_synth(root, synth)
        ref, _ = first_val(data)
        if edit_instances is not None:
            def fn(doc: dict) -> None:
                ann = next(a for a in doc["annotations"] if a["id"] == ref["ann_id"])
                edit_instances(doc, ref, ann)
            edit_json(data / dataset / "instances.json", fn)
        if edit_refs is not None:
            refs_file = {"synth": "refs(unc).p", "synth-zom": "refs(final).p"}[dataset]
            edit_pickle(data / dataset / refs_file, edit_refs)
    return setup


def image_of(doc: dict, image_id: int) -> dict:
    return next(im for im in doc["images"] if im["id"] == image_id)


def polygon_ann(doc: dict, ref: dict, ann: dict) -> dict:
    """The first val ref's annotation if it is a polygon, else any polygon annotation of a val ref's image."""
    if isinstance(ann["segmentation"], list) and isinstance(ann["segmentation"][0], list):
        return ann
    return next(a for a in doc["annotations"] if isinstance(a["segmentation"], list)
                and isinstance(a["segmentation"][0], list) and a["image_id"] == ref["image_id"])


def _nan_polygon(doc, ref, ann):
    ann["segmentation"] = [[10.0, 10.0, float("nan"), 20.0, 20.0, 30.0]]


def _huge_coordinate(doc, ref, ann):
    ann["segmentation"] = [[10.0, 10.0, 1e12, 20.0, 20.0, 30.0]]


def _odd_polygon(doc, ref, ann):
    ann["segmentation"] = [[10.0, 10.0, 30.0, 20.0, 20.0]]


def _string_coordinate(doc, ref, ann):
    ann["segmentation"] = [[10.0, "10", 30.0, 20.0, 20.0, 30.0]]


def _rle_short(doc, ref, ann):
    im = image_of(doc, ann["image_id"])
    ann["segmentation"] = {"size": [im["height"], im["width"]], "counts": [5, 10]}


def _rle_wrong_size(doc, ref, ann):
    ann["segmentation"] = {"size": [10, 10], "counts": [100]}


def _rle_garbage_string(doc, ref, ann):
    im = image_of(doc, ann["image_id"])
    ann["segmentation"] = {"size": [im["height"], im["width"]], "counts": "\x7f\x7fgarbage~~"}


def _dup_ann_id(doc, ref, ann):
    other = next(a for a in doc["annotations"] if a["id"] != ann["id"])
    other["id"] = ann["id"]


def _dup_image_id(doc, ref, ann):
    doc["images"][1]["id"] = doc["images"][0]["id"]


def _height_zero(doc, ref, ann):
    image_of(doc, ref["image_id"])["height"] = 0


def _height_negative(doc, ref, ann):
    image_of(doc, ref["image_id"])["width"] = -640


def _height_string(doc, ref, ann):
    image_of(doc, ref["image_id"])["height"] = "480"


def _height_float(doc, ref, ann):
    image_of(doc, ref["image_id"])["height"] = 479.5


def _huge_image_size(doc, ref, ann):
    im = image_of(doc, ref["image_id"])
    im["height"], im["width"] = 20000, 20000


def _dotdot_name(doc, ref, ann):
    image_of(doc, ref["image_id"])["file_name"] = "../../../etc/passwd"


def _absolute_name(doc, ref, ann):
    image_of(doc, ref["image_id"])["file_name"] = "/etc/passwd"


def _ann_unknown_image(doc, ref, ann):
    ann["image_id"] = 999999


def _ann_no_segmentation(doc, ref, ann):
    del ann["segmentation"]


def _ref_unknown_ann(refs):
    next(r for r in refs if r["split"] == "val")["ann_id"] = 999999


def _ref_other_images_ann(refs):
    val = [r for r in refs if r["split"] == "val"]
    b = next(r for r in val if r["image_id"] != val[0]["image_id"])
    val[0]["ann_id"] = b["ann_id"]


def _dup_sent_id(refs):
    val = [r for r in refs if r["split"] == "val"]
    val[1]["sentences"][0]["sent_id"] = val[0]["sentences"][0]["sent_id"]


def _sent_id_string(refs):
    next(r for r in refs if r["split"] == "val")["sentences"][0]["sent_id"] = "one"


def _ann_id_float(refs):
    r = next(r for r in refs if r["split"] == "val")
    r["ann_id"] = float(r["ann_id"])


def _zom_one_without_target(refs):
    next(r for r in refs if r["split"] == "val" and r["source"] != "zero")["ann_id"] = []


def truncated_instances(root: Path, synth: Path) -> None:
    p = copy_synth(root, synth) / "synth" / "instances.json"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def truncated_refs(root: Path, synth: Path) -> None:
    p = copy_synth(root, synth) / "synth" / "refs(unc).p"
    p.write_bytes(p.read_bytes()[:-40])


def png_claiming(path: Path, width: int, height: int) -> None:
    """A valid 1x1 PNG whose header claims width x height (readers see the size without decoding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (1, 1)).save(path, format="PNG")
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _first_image_path(data: Path) -> Path:
    from refbench.data import open_split

    sd = open_split("synth/val", data)
    return sd.image_path(sd.samples[0])


def missing_image(root: Path, synth: Path) -> None:
    _first_image_path(copy_synth(root, synth)).unlink()


def huge_image_header(root: Path, synth: Path) -> None:
    png_claiming(_first_image_path(copy_synth(root, synth)), 20000, 20000)


def wrong_image_size(root: Path, synth: Path) -> None:
    path = _first_image_path(copy_synth(root, synth))
    Image.new("RGB", (320, 240)).save(path, format="JPEG")


# masks for score / plot overlays: three 16x16 samples
def masks(root: Path, synth: Path | None = None) -> None:
    for d in ("gt", "pred"):
        (root / d).mkdir(parents=True)
    for k, sid in enumerate(("a", "b", "z")):
        m = np.zeros((16, 16), np.uint8)
        if sid != "z":
            m[2:8 + k, 3:9] = 1
        Image.fromarray(m).save(root / "gt" / f"{sid}.png")
        Image.fromarray(np.roll(m, 1, 0) * 255).save(root / "pred" / f"{sid}.png")


def with_masks(edit: Callable[[Path], None]):
    def setup(root: Path, synth: Path) -> None:
        masks(root)
        edit(root)
    return setup


def _ringing(root: Path) -> None:  # a JPEG-compressed mask saved as PNG: values around 0 and 255
    m = np.zeros((16, 16), np.uint8)
    m[2:8, 3:9] = 255
    m[8, 3:9] = 3
    m[1, 3:9] = 251
    Image.fromarray(m).save(root / "pred" / "a.png")


def _jpeg_named_png(root: Path) -> None:
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "pred" / "a.png", format="JPEG")


def _palette_three(root: Path) -> None:
    im = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) % 3, (16, 1)), "P")
    im.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0] + [0] * 759)
    im.save(root / "pred" / "a.png")


def _rgb(root: Path) -> None:
    Image.new("RGB", (16, 16)).save(root / "pred" / "a.png")


def _size(root: Path) -> None:
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "pred" / "b.png")


def _huge_pred(root: Path) -> None:
    png_claiming(root / "pred" / "a.png", 20000, 20000)


def _truncated_png(root: Path) -> None:
    p = root / "gt" / "b.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16)) > 0.5).astype(np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:60])


def _types(doc: dict) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / "types.json").write_text(json.dumps(doc))
    return edit


def _text(name: str, text: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / name).write_text(text)
    return edit


def _mkdir(name: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / name).mkdir(parents=True)
    return edit


def _empty_pred(root: Path) -> None:
    for p in (root / "pred").iterdir():
        p.unlink()


def _sentences_list(root: Path) -> None:
    (root / "sentences.json").write_text(json.dumps(["a", "b"]))


def _image_dir_huge(root: Path) -> None:
    for sid in ("a", "b", "z"):
        png_claiming(root / "images" / f"{sid}.png", 20000, 20000)


# results files for table / plot: one real `refbench score` run, then edits
def results(edit: Callable[[dict], None] | None = None):
    def setup(root: Path, synth: Path) -> None:
        from refbench.cli import main

        masks(root)
        try:
            main(["score", "--pred", str(root / "pred"), "--gt", str(root / "gt"), "--json", str(root / "r.json"),
                  "--records", str(root / "records.jsonl"), "--bootstrap", "10"])
        except SystemExit as e:
            assert e.code in (0, None)
        if edit is not None:
            edit_json(root / "r.json", edit)
    return setup


def _schema_99(doc: dict) -> None:
    doc["schema_version"] = 99


def _metric_string(doc: dict) -> None:
    doc["metrics"]["oIoU"] = "high"


def chain(*setups: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def setup(root: Path, synth: Path) -> None:
        for s in setups:
            s(root, synth)
    return setup


def with_root(edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    return lambda root, synth: edit(root)


EVAL = ("eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root", "{root}/data",
        "--limit", "2", "--out", "{root}/run", "--workers", "0")
STATS = ("data", "stats", "synth/val", "--data-root", "{root}/data", "--no-tokens")
SCORE = ("score", "--pred", "{root}/pred", "--gt", "{root}/gt", "--bootstrap", "0")
OVERLAYS = ("plot", "overlays", "--gt", "{root}/gt", "--pred", "{root}/pred", "--out", "{root}/o.png")

CASES: list[Case] = [
    # ---- score: numbers, masks, types, outputs ----
    Case("score-batch-size-negative", SCORE + ("--batch-size", "-4"), masks, "-4 is not in the range x>=1"),
    Case("score-batch-size-zero", SCORE + ("--batch-size", "0"), masks, "--batch-size"),
    Case("score-bootstrap-negative", SCORE + ("--bootstrap", "-1"), masks, "--bootstrap"),
    Case("score-seed-negative", SCORE + ("--seed", "-3"), masks, "--seed"),
    Case("score-batch-size-text", SCORE + ("--batch-size", "many"), masks, "'many' is not a valid integer"),
    Case("score-jpeg-ringing", SCORE, with_masks(_ringing), "pred/a.png: not a binary mask: 4 different values (0, 3, 251, 255)"),
    Case("score-jpeg-named-png", SCORE, with_masks(_jpeg_named_png), "pred/a.png: is a JPEG file named .png"),
    Case("score-palette-three-indices", SCORE, with_masks(_palette_three), "3 different palette indices"),
    Case("score-rgb-mask", SCORE, with_masks(_rgb), "must be single-channel"),
    Case("score-size-mismatch", SCORE, with_masks(_size), "pred/b.png is 16x12 but GT"),
    Case("score-huge-header", SCORE, with_masks(_huge_pred), "limit of 100 MP"),
    Case("score-truncated-gt", SCORE, with_masks(_truncated_png), "gt/b.png: cannot"),
    Case("score-types-zero-with-pixels", SCORE + ("--types", "{root}/types.json"),
         with_masks(_types({"a": "zero", "b": "one", "z": "zero"})), "sample 'a' is typed 'zero' but its GT has"),
    Case("score-types-one-empty-gt", SCORE + ("--types", "{root}/types.json"),
         with_masks(_types({"a": "one", "b": "many", "z": "one"})), "sample 'z' is typed 'one' but its GT mask is"),
    Case("score-types-unknown-value", SCORE + ("--types", "{root}/types.json"),
         with_masks(_types({"a": "two", "b": "one", "z": "zero"})), "sample 'a' has type 'two'"),
    Case("score-types-missing-entry", SCORE + ("--types", "{root}/types.json"),
         with_masks(_types({"a": "one"})), "--types has no entry for 2 GT id(s)"),
    Case("score-types-not-json", SCORE + ("--types", "{root}/types.json"),
         with_masks(_text("types.json", "{\"a\": ")), "is not valid JSON"),
    Case("score-types-is-folder", SCORE + ("--types", "{root}/tdir"), with_masks(_mkdir("tdir")), "is a folder"),
    Case("score-json-is-folder", SCORE + ("--json", "{root}/out"), with_masks(_mkdir("out")), "--json"),
    Case("score-records-under-a-file", SCORE + ("--records", "{root}/gt/a.png/r.jsonl"), masks, "is a file"),
    Case("score-json-same-as-records", SCORE + ("--json", "{root}/r.json", "--records", "{root}/r.json"), masks,
         "are the same file"),
    Case("score-json-into-pred-as-png", SCORE + ("--json", "{root}/pred/x.png"), masks, "would be read as a mask"),
    Case("score-gt-neither-dir-nor-split", SCORE[:3] + ("--gt", "{root}/nope"), masks, "not a dataset split"),
    Case("score-unknown-protocol", SCORE + ("--protocol", "lavtt"), masks, "unknown protocol 'lavtt'"),
    Case("score-empty-pred", SCORE, with_masks(_empty_pred), "holds no .png masks"),
    Case("score-split-gt-nan-polygon", ("score", "--pred", "{root}/pred", "--gt", "synth/val", "--data-root",
                                        "{root}/data", "--bootstrap", "0"),
         broken_synth(lambda d, r, a: _nan_polygon(d, r, polygon_ann(d, r, a))), "has a NaN coordinate"),
    # ---- data check ----
    Case("check-missing-root", ("data", "check", "--data-root", "{root}/nope"), None, "does not exist"),
    Case("check-unknown-dataset", ("data", "check", "--data-root", "{root}", "--dataset", "refcocoo"), None,
         "unknown dataset 'refcocoo'"),
    # ---- data stats on broken annotations ----
    Case("stats-unknown-split", ("data", "stats", "synth/vall", "--data-root", "{root}"), None, "synth/vall"),
    Case("stats-nan-polygon", STATS, broken_synth(lambda d, r, a: _nan_polygon(d, r, polygon_ann(d, r, a))),
         "polygon 0 has a NaN coordinate (x of point 1); fix or drop the annotation"),
    Case("stats-huge-coordinate", STATS, broken_synth(lambda d, r, a: _huge_coordinate(d, r, polygon_ann(d, r, a))),
         "lies far outside the 640x480 image"),
    Case("stats-odd-polygon", STATS, broken_synth(lambda d, r, a: _odd_polygon(d, r, polygon_ann(d, r, a))),
         "odd number of coordinates"),
    Case("stats-string-coordinate", STATS,
         broken_synth(lambda d, r, a: _string_coordinate(d, r, polygon_ann(d, r, a))), "non-numeric coordinate '10'"),
    Case("stats-rle-short-counts", STATS, broken_synth(_rle_short), "summing to height*width = 307200"),
    Case("stats-rle-wrong-size", STATS, broken_synth(_rle_wrong_size), "RLE size [10, 10] does not match"),
    Case("stats-rle-garbage", STATS, broken_synth(_rle_garbage_string), "compressed RLE string is malformed"),
    Case("stats-duplicate-annotation-id", STATS, broken_synth(_dup_ann_id), "appears twice (annotations["),
    Case("stats-duplicate-image-id", STATS, broken_synth(_dup_image_id), "appears twice (images[0] and images[1])"),
    Case("stats-height-zero", STATS, broken_synth(_height_zero), "has height 0, not a positive integer"),
    Case("stats-width-negative", STATS, broken_synth(_height_negative), "has width -640"),
    Case("stats-height-string", STATS, broken_synth(_height_string), "has height '480'"),
    Case("stats-height-fraction", STATS, broken_synth(_height_float), "has height 479.5"),
    Case("stats-image-20000-square", STATS, broken_synth(_huge_image_size), "20000x20000 = 400 MP"),
    Case("stats-file-name-dotdot", STATS, broken_synth(_dotdot_name), "contains '..'"),
    Case("stats-file-name-absolute", STATS, broken_synth(_absolute_name), "is an absolute path"),
    Case("stats-annotation-unknown-image", STATS, broken_synth(_ann_unknown_image), "belongs to image 999999"),
    Case("stats-annotation-no-segmentation", STATS, broken_synth(_ann_no_segmentation), "no field 'segmentation'"),
    Case("stats-truncated-instances", STATS, truncated_instances, "instances.json: not valid JSON"),
    Case("stats-truncated-refs", STATS, truncated_refs, "pickle data was truncated); re-download the file"),
    Case("stats-ref-unknown-annotation", STATS, broken_synth(edit_refs=_ref_unknown_ann),
         "no annotation with id 999999"),
    Case("stats-ref-annotation-of-other-image", STATS, broken_synth(edit_refs=_ref_other_images_ann),
         "but its annotation"),
    Case("stats-duplicate-sent-id", STATS, broken_synth(edit_refs=_dup_sent_id), "appears twice in split 'val'"),
    Case("stats-sent-id-string", STATS, broken_synth(edit_refs=_sent_id_string), "has sent_id 'one', not an integer"),
    Case("stats-ann-id-float", STATS, broken_synth(edit_refs=_ann_id_float), "not an integer"),
    Case("stats-zom-one-without-target", ("data", "stats", "synth-zom/val", "--data-root", "{root}/data",
                                          "--no-tokens"),
         broken_synth(edit_refs=_zom_one_without_target, dataset="synth-zom"), "lists no annotation"),
    # ---- eval --limit 2 on a broken synthetic dataset ----
    Case("eval-nan-polygon", EVAL, broken_synth(lambda d, r, a: _nan_polygon(d, r, polygon_ann(d, r, a))),
         "has a NaN coordinate"),
    Case("eval-duplicate-ids", EVAL, broken_synth(_dup_ann_id), "appears twice"),
    Case("eval-missing-image", EVAL, missing_image, "missing"),
    Case("eval-dotdot-file-name", EVAL, broken_synth(_dotdot_name), "contains '..'"),
    Case("eval-truncated-instances", EVAL, truncated_instances, "not valid JSON"),
    Case("eval-height-string", EVAL, broken_synth(_height_string), "has height '480'"),
    Case("eval-rle-short", EVAL, broken_synth(_rle_short), "summing to height*width"),
    Case("eval-ref-unknown-annotation", EVAL, broken_synth(edit_refs=_ref_unknown_ann), "no annotation with id"),
    Case("eval-image-header-20000-square", EVAL, huge_image_header, "limit of 100 MP"),
    Case("eval-image-wrong-size", EVAL, wrong_image_size, "image is 320x240 but instances.json says 640x480"),
    # ---- table ----
    Case("table-results-missing", ("table", "--results", "{root}/nope.json"), None, "nope.json"),
    Case("table-results-not-json", ("table", "--results", "{root}/r.json"), with_masks(_text("r.json", "{")),
         "r.json"),
    Case("table-results-schema-99", ("table", "--results", "{root}/r.json"), results(_schema_99), "r.json"),
    Case("table-results-metric-string", ("table", "--results", "{root}/r.json"), results(_metric_string), "oIoU"),
    Case("table-unknown-paper", ("table", "--paper", "magnett"), None, "magnett"),
    Case("table-standalone-markdown", ("table", "--paper", "magnet", "--standalone"), None, "--standalone"),
    # ---- plot ----
    Case("plot-out-not-png", ("plot", "iou-hist", "{root}/r.json", "--out", "{root}/h.jpg"), results(), ".png"),
    Case("plot-out-is-folder", ("plot", "pcurve", "{root}/r.json", "--out", "{root}/h.png"),
         chain(results(), with_root(_mkdir("h.png"))), "is a folder"),
    Case("plot-out-under-a-file", ("plot", "iou-hist", "{root}/r.json", "--out", "{root}/r.json/h.png"), results(),
         "is a file"),
    Case("plot-bins-zero", ("plot", "iou-hist", "{root}/r.json", "--bins", "0", "--out", "{root}/h.png"), results(),
         "--bins"),
    Case("plot-results-missing", ("plot", "pcurve", "{root}/nope.json", "--out", "{root}/p.png"), None, "nope.json"),
    Case("plot-overlays-ringing", OVERLAYS, with_masks(_ringing), "not a binary mask"),
    Case("plot-overlays-sentences-list", OVERLAYS + ("--sentences", "{root}/sentences.json"),
         with_masks(_sentences_list), "must be a JSON object"),
    Case("plot-overlays-unknown-id", OVERLAYS + ("--ids", "a,nope"), masks, "'nope'"),
    Case("plot-overlays-huge-image", OVERLAYS + ("--images", "{root}/images"), with_masks(_image_dir_huge),
         "limit of 100 MP"),
    Case("plot-overlays-n-zero", OVERLAYS + ("-n", "0"), masks, "-n"),
    Case("plot-overlays-seed-negative", OVERLAYS + ("--select", "random", "--seed", "-1"), masks, "--seed"),
]


# ---- build-dataset (issues #18/#19): builder inputs, and outputs that are never destroyed ----------------------------
REFZOM_ARGS = ("build-dataset", "ref-zom", "--coco-instances", "{root}/data/annotations/instances_synth.json",
               "--coco-captions", "{root}/data/annotations/captions_synth.json", "--refer-root", "{root}/data",
               "--zero-pool", "unused", "--no-progress")


def broken_coco(edit: Callable[[dict, dict, dict], None]):
    """A setup: copy the synth benchmark and edit the COCO instances file the Ref-ZOM builder reads
    (``annotations/instances_synth.json``; ``edit(doc, ref, ann)`` as for :func:`broken_synth`)."""
    def setup(root: Path, synth: Path) -> None:
        data = copy_synth(root, synth)
        ref, _ = first_val(data)
        edit_json(data / "annotations" / "instances_synth.json",
                  lambda doc: edit(doc, ref, next(a for a in doc["annotations"] if a["id"] == ref["ann_id"])))
    return setup


def _user_folder(root: Path, synth: Path | None = None) -> None:
    (root / "mine").mkdir()
    (root / "mine" / "thesis.tex").write_text("not refbench's")


def _synth_and_user_folder(root: Path, synth: Path) -> None:
    copy_synth(root, synth)
    _user_folder(root)


def _a_file(root: Path, synth: Path | None = None) -> None:
    (root / "f.txt").write_text("a file")


CASES += [
    Case("build-synth-force-user-folder", ("build-dataset", "synth", "--size", "tiny", "--workers", "1", "--force",
                                           "--out", "{root}/mine"), _user_folder, "refbench did not make"),
    Case("build-synth-out-is-file", ("build-dataset", "synth", "--size", "tiny", "--out", "{root}/f.txt"), _a_file,
         "is a file"),
    Case("build-synth-exists-without-force", ("build-dataset", "synth", "--size", "tiny", "--out", "{root}/data"),
         copy_synth, "--force"),
    Case("build-refzom-out-is-input-root", REFZOM_ARGS + ("--out", "{root}/data", "--force"), copy_synth,
         "the input"),
    Case("build-refzom-out-inside-input", REFZOM_ARGS + ("--out", "{root}/data/synth/built"), copy_synth,
         "lies inside the input"),
    Case("build-refzom-out-contains-input", REFZOM_ARGS + ("--out", "{root}", "--force"), copy_synth,
         "contains the input"),
    Case("build-refzom-force-user-folder", REFZOM_ARGS + ("--out", "{root}/mine", "--force"), _synth_and_user_folder,
         "refbench did not make"),
    Case("build-refzom-dup-image-id", REFZOM_ARGS + ("--out", "{root}/out"), broken_coco(_dup_image_id),
         "appears twice"),
    Case("build-refzom-height-zero", REFZOM_ARGS + ("--out", "{root}/out"), broken_coco(_height_zero),
         "not a positive integer"),
    Case("build-refzom-width-negative", REFZOM_ARGS + ("--out", "{root}/out"), broken_coco(_height_negative),
         "not a positive integer"),
    Case("build-refzom-rle-garbage", REFZOM_ARGS + ("--out", "{root}/out"), broken_coco(_rle_garbage_string),
         "RLE"),
    Case("build-refzom-rle-short", REFZOM_ARGS + ("--out", "{root}/out"), broken_coco(_rle_short), "RLE"),
    Case("build-refzom-nan-polygon", REFZOM_ARGS + ("--out", "{root}/out"), broken_coco(_nan_polygon), "NaN"),
]



# ---- predict, analyze, report, eval --save-masks, plot overlays --run (issue #21) -------------------------------------
def _small_image(root: Path, synth: Path | None = None) -> None:
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "img.png")


def _huge_image(root: Path, synth: Path | None = None) -> None:
    png_claiming(root / "img.png", 20000, 20000)


def _batch_unknown_key(root: Path, synth: Path | None = None) -> None:
    _small_image(root)
    (root / "jobs.jsonl").write_text('{"image": "img.png", "text": ["the red one"]}\n'
                                     '{"image": "img.png", "texts": ["a"]}\n')


def _foreign_out(root: Path, synth: Path | None = None) -> None:
    _small_image(root)
    (root / "o").mkdir()
    (root / "o" / "notes.txt").write_text("mine")


def _run_without_masks(root: Path, synth: Path) -> None:
    from refbench.eval import EvalConfig, evaluate

    data = copy_synth(root, synth)
    evaluate(EvalConfig(model="lavt", variant="tiny", split="synth/val", out=root / "run", data_root=str(data),
                        limit=2, batch_size=2, bootstrap=0, workers=0))


PREDICT = ("predict", "--model", "lavt", "--variant", "tiny", "--out", "{root}/o")

CASES += [
    Case("predict-no-text", PREDICT + ("--image", "{root}/img.png"), _small_image, "--text"),
    Case("predict-empty-text", PREDICT + ("--image", "{root}/img.png", "--text", " "), _small_image,
         "sentence 1 is empty"),
    Case("predict-image-header-20000-square", PREDICT + ("--image", "{root}/img.png", "--text", "a"), _huge_image,
         "limit of 100 MP"),
    Case("predict-batch-unknown-key", PREDICT + ("--batch", "{root}/jobs.jsonl"), _batch_unknown_key,
         "line 2: unknown key 'texts'"),
    Case("predict-batch-size-zero", PREDICT + ("--image", "{root}/img.png", "--text", "a", "--batch-size", "0"),
         _small_image, "--batch-size"),
    Case("predict-out-foreign-folder", PREDICT + ("--image", "{root}/img.png", "--text", "a"), _foreign_out,
         "refbench did not write"),
    Case("analyze-not-a-run", ("analyze", "{root}"), None, "no results.json"),
    Case("analyze-score-run-of-folders", ("analyze", "{root}/r.json", "--bootstrap", "0"), results(),
         "scored mask folders"),
    Case("analyze-permutations-negative", ("analyze", "{root}/r.json", "--permutations", "-1"), results(),
         "--permutations"),
    Case("report-out-not-html", ("report", "{root}/r.json", "--out", "{root}/r.txt"), results(), "ending in .html"),
    Case("report-gallery-51", ("report", "{root}/r.json", "--out", "{root}/r.html", "--gallery", "51"), results(),
         "--gallery"),
    Case("eval-resume-adds-save-masks", EVAL + ("--resume", "--save-masks", "--batch-size", "2"), _run_without_masks,
         "started without --save-masks"),
    Case("plot-overlays-run-without-masks", ("plot", "overlays", "--run", "{root}/run", "--out", "{root}/o.png"),
         _run_without_masks, "--save-masks"),
]

@pytest.fixture
def case_root(tmp_path, monkeypatch):
    monkeypatch.setenv("REFBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REFBENCH_DATA", raising=False)
    root = tmp_path / "case"
    root.mkdir()
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(case, case_root, synth_tiny, run_cli):
    if case.setup is not None:
        case.setup(case_root, synth_tiny)
    before = snapshot(case_root)
    code, out, err = run_cli(*case.argv(case_root))
    line = assert_one_error_line(code, out, err)
    assert case.needle in line, line
    assert_same_tree(before, snapshot(case_root))


def test_case_ids_are_unique_and_cover_every_command():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    commands = {c.args[0] if c.args[0] not in ("data", "plot") else " ".join(c.args[:2]) for c in CASES}
    assert {"score", "data check", "data stats", "eval", "table", "plot iou-hist", "plot pcurve",
            "plot overlays"} <= commands
    assert len(CASES) >= 60


SUBPROCESS_IDS = ["score-batch-size-negative", "score-jpeg-ringing", "stats-nan-polygon", "check-missing-root",
                  "eval-image-header-20000-square", "table-results-schema-99", "plot-overlays-ringing"]


@pytest.mark.parametrize("case_id", SUBPROCESS_IDS)
def test_subprocess_entry_point(case_id, case_root, synth_tiny, tmp_path):
    """The same contract through ``python -m refbench`` (what a user runs), one case per command;
    the eval case runs with two DataLoader workers, so a worker's error must arrive as one line."""
    case = next(c for c in CASES if c.id == case_id)
    args = case.argv(case_root)
    if args[0] == "eval":
        args[args.index("--workers") + 1] = "2"
    if case.setup is not None:
        case.setup(case_root, synth_tiny)
    before = snapshot(case_root)
    code, out, err = run_refbench_subprocess(args, tmp_path / "cache")
    line = assert_one_error_line(code, out, err)
    assert case.needle in line, line
    assert_same_tree(before, snapshot(case_root))
