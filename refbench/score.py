"""Score saved predictions against ground truth, without running a model.

Predictions and GT are single-channel PNG masks named ``<sample_id>.png``.  An all-zero GT
PNG is a zero-target sample.  Masks of one size are scored in batches; decoding runs in a
thread pool (PIL releases the GIL while decoding).

What a mask PNG may be (anything else is refused with one line naming the file):

* a PNG (not a JPEG renamed ``.png``) of mode ``1``, ``L``, ``P``, ``I``, ``I;16`` or ``F``;
* at most :data:`~refbench.data.masks.MAX_PIXELS` pixels and the size of its GT, both read
  from the header before anything is decoded;
* **binary**: 0 is background and exactly one other value is foreground (1, 255, ...).  A
  mask with several nonzero values (JPEG ringing or anti-aliased edges saved as PNG, a
  "void" label 255 next to 1) is refused rather than guessed at;
* palette (mode ``P``) PNGs are read **by palette index**, not by colour: index 0 is
  background whatever colour the palette gives it, and one other index is foreground.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from refbench.core.errors import RefbenchError
from refbench.core.records import TYPES
from refbench.data.transforms import decode, open_image
from refbench.metrics.accumulator import RISMetrics
from refbench.core.protocols import Protocol, get_protocol

MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F")


def open_mask_png(path: Path) -> Image.Image:
    """A mask PNG opened lazily (header only): format, mode and pixel limit checked, nothing decoded."""
    im = open_image(path, "mask PNG")
    if im.format != "PNG":
        im.close()
        hint = " (JPEG is lossy: its ringing would turn into false foreground)" if im.format == "JPEG" else ""
        raise RefbenchError(f"{path}: is a {im.format or 'non-PNG'} file named .png{hint}; save masks as PNG")
    if im.mode not in MASK_MODES:
        im.close()
        raise RefbenchError(f"{path}: mask PNG must be single-channel (mode L/P/1/I), got mode {im.mode}; "
                            f"save one channel with 0 = background")
    return im


def mask_from_image(im: Image.Image, path: Path) -> np.ndarray:
    """bool (H, W) of an opened mask PNG: decoded, then checked to be binary (see module doc)."""
    arr = np.asarray(decode(im, path, "mask PNG"))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise RefbenchError(f"{path}: mask contains NaN or infinite values; save 0 = background, 1 = foreground")
    fg = arr != 0
    if arr.dtype != bool and fg.any():
        level = arr.flat[int(fg.argmax())]  # the first foreground value
        if ((arr != level) & fg).any():
            values = np.unique(arr)
            shown = ", ".join(f"{v:g}" for v in values[:6].tolist()) + (", ..." if len(values) > 6 else "")
            what = "palette indices" if im.mode == "P" else "values"
            raise RefbenchError(f"{path}: not a binary mask: {len(values)} different {what} ({shown}) - JPEG "
                                f"ringing or anti-aliased edges saved as PNG, or several labels; save 0 for "
                                f"background and one value (1 or 255) for foreground")
    return fg


def read_mask_png(path: Path) -> np.ndarray:
    """A single-channel binary PNG as a bool (H, W) array (nonzero = foreground; see module doc)."""
    with open_mask_png(path) as im:
        return mask_from_image(im, path)


def read_mask_pair(pred_path: Path, gt_path: Path, sid: str, gt_what: str = "GT") -> tuple[np.ndarray, np.ndarray]:
    """(prediction, GT) bool masks of one sample; their sizes are compared from the headers,
    before either is decoded."""
    with open_mask_png(gt_path) as g, open_mask_png(pred_path) as p:
        if g.size != p.size:
            raise RefbenchError(f"sample {sid!r}: prediction {pred_path} is {p.size[0]}x{p.size[1]} but {gt_what} "
                                f"{gt_path} is {g.size[0]}x{g.size[1]}; predictions must be at the GT size")
        return mask_from_image(p, pred_path), mask_from_image(g, gt_path)


def list_masks(directory: str | os.PathLike, what: str) -> dict[str, Path]:
    """``{sample_id: path}`` for the ``*.png`` files of a directory."""
    d = Path(directory)
    if not d.is_dir():
        raise RefbenchError(f"{what} directory {d} does not exist")
    files = {p.stem: p for p in sorted(d.glob("*.png"))}
    if not files:
        raise RefbenchError(f"{what} directory {d} holds no .png masks (expected <sample_id>.png)")
    return files


def read_types(path: str | os.PathLike | None) -> dict[str, str] | None:
    """``--types``: a JSON object {sample_id: "zero"|"one"|"many"} (any other value is refused)."""
    if path is None:
        return None
    try:
        types = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise RefbenchError(f"--types file {path} does not exist") from None
    except IsADirectoryError:
        raise RefbenchError(f"--types {path} is a folder; give the JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RefbenchError(f"--types file {path} is not valid JSON ({e})") from None
    if not isinstance(types, dict):
        raise RefbenchError(f"--types file {path} must be a JSON object {{sample_id: zero|one|many}}")
    bad = next(((k, v) for k, v in types.items() if v not in TYPES), None)
    if bad is not None:
        raise RefbenchError(f"--types file {path}: sample {bad[0]!r} has type {bad[1]!r}; use one of "
                            f"{', '.join(TYPES)}")
    return {str(k): str(v) for k, v in types.items()}


def check_type(sid: str, typ: str, gt: np.ndarray, types_file: str | os.PathLike) -> None:
    """Refuse a ``--types`` entry that contradicts the GT: zero-target with GT pixels, or one/many
    with an empty GT (scoring it would give silently wrong numbers)."""
    has = bool(gt.any())
    if typ == "zero" and has:
        raise RefbenchError(f"--types file {types_file}: sample {sid!r} is typed 'zero' but its GT has "
                            f"{int(gt.sum())} foreground pixels; fix the type or the GT mask")
    if typ != "zero" and not has:
        raise RefbenchError(f"--types file {types_file}: sample {sid!r} is typed {typ!r} but its GT mask is "
                            f"empty; type it 'zero' or fix the GT mask")


def _check_counts(batch_size: int, workers: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RefbenchError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RefbenchError(f"workers must be a positive integer, got {workers!r}")


def _require_scored(acc: RISMetrics, expected: int) -> None:
    n = len(acc.records)
    if n != expected or n == 0:
        raise RefbenchError(f"scored {n} of {expected} samples; nothing is reported for an incomplete or empty "
                            f"scoring (this is a refbench bug if the inputs were accepted: please report it)")


def score_directories(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, protocol: "str | Protocol" = "lavt",
                      types_file: str | os.PathLike | None = None, batch_size: int = 32,
                      workers: int = 4) -> tuple[RISMetrics, list[str]]:
    """Score every GT id against its prediction PNG; returns the accumulator and notes.

    Every mask is checked (module doc) and, with ``types_file``, every type against its GT;
    any problem stops the scoring with one line naming the file or sample."""
    _check_counts(batch_size, workers)
    protocol = get_protocol(protocol)
    gts = list_masks(gt_dir, "GT")
    preds = list_masks(pred_dir, "prediction")
    missing = [sid for sid in gts if sid not in preds]
    if missing:
        raise RefbenchError(f"no prediction PNG for {len(missing)} GT id(s), e.g. {missing[0]!r} "
                            f"(expected {Path(pred_dir) / (missing[0] + '.png')})")
    types = read_types(types_file)
    if types is not None:
        absent = [sid for sid in gts if sid not in types]
        if absent:
            raise RefbenchError(f"--types has no entry for {len(absent)} GT id(s), e.g. {absent[0]!r}")
    notes = []
    extra = len(set(preds) - set(gts))
    if extra:
        notes.append(f"{extra} prediction PNG(s) without a GT mask were ignored")
    # PNG masks are already binary and already on their canvas: score them as saved.
    acc = RISMetrics(protocol.replace(binarize="nonzero"))
    ids = list(gts)
    sizes: set[tuple[int, int]] = set()

    def load(sid: str) -> tuple[str, np.ndarray, np.ndarray]:
        p, g = read_mask_pair(preds[sid], gts[sid], sid)
        if types is not None:
            check_type(sid, types[sid], g, types_file)
        return sid, p, g

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(ids), batch_size):
            chunk = list(pool.map(load, ids[start:start + batch_size]))
            by_shape: dict[tuple, list] = {}
            for item in chunk:
                by_shape.setdefault(item[1].shape, []).append(item)
            sizes.update(by_shape)
            for group in by_shape.values():
                sids = [s for s, _, _ in group]
                pred = torch.from_numpy(np.stack([p for _, p, _ in group]))
                gt = torch.from_numpy(np.stack([g for _, _, g in group]))
                acc.update(pred, gt, sids, None if types is None else [types[s] for s in sids])
    _require_scored(acc, len(ids))
    side = next(iter(sizes))[0] if len(sizes) == 1 and len(set(next(iter(sizes)))) == 1 else None
    acc.protocol = acc.protocol.replace(canvas=side)
    notes.append("masks scored as saved: " + (f"{side}x{side} canvas" if side else
                 f"{len(sizes)} different mask sizes (each sample at its own size)"))
    if types is None and protocol.family in ("refzom", "gres"):
        notes.append("sample types inferred from the GT: empty = zero-target, else one-target (pass --types for many)")
    return acc, notes


def score_against_split(pred_dir: str | os.PathLike, split: str, protocol: "str | Protocol" = "lavt",
                        data_root: str | os.PathLike | None = None, batch_size: int = 32,
                        workers: int = 4) -> tuple[RISMetrics, list[str], object]:
    """Score ``<sample_id>.png`` predictions against a dataset split's GT on the protocol canvas.

    The GT is built exactly as ``refbench eval`` builds it (GT rule, resize to the canvas, or
    the original size when the protocol's canvas is None); predictions must have that size.
    Returns the accumulator, notes, and the SplitData (for provenance).
    """
    from refbench.data import RISDataset, open_split

    _check_counts(batch_size, workers)
    protocol = get_protocol(protocol)
    sd = open_split(split, data_root)
    if not sd.samples:
        raise RefbenchError(f"{sd.name} has no samples; nothing to score")
    ds = RISDataset(sd, protocol, skip_missing_images=True)  # only the GT is needed, not the images
    preds = list_masks(pred_dir, "prediction")
    missing = [s.sample_id for s in ds.samples if s.sample_id not in preds]
    if missing:
        raise RefbenchError(f"no prediction PNG for {len(missing)} of {len(ds)} samples of {sd.name}, e.g. "
                            f"{missing[0]!r} (expected {Path(pred_dir) / (missing[0] + '.png')})")
    acc = RISMetrics(protocol.replace(binarize="nonzero"))
    notes = []
    extra = len(set(preds) - {s.sample_id for s in ds.samples})
    if extra:
        notes.append(f"{extra} prediction PNG(s) not in {sd.name} were ignored")

    def load(i: int) -> tuple[str, np.ndarray, np.ndarray, str]:
        smp = ds.samples[i]
        path = preds[smp.sample_id]
        want = (ds.canvas, ds.canvas) if ds.canvas else (smp.width, smp.height)
        with open_mask_png(path) as im:  # size from the header, before decoding
            if im.size != want:
                raise RefbenchError(f"sample {smp.sample_id!r}: prediction {path} is {im.size[0]}x{im.size[1]} but "
                                    f"protocol {protocol.name} scores on {want[0]}x{want[1]}")
            p = mask_from_image(im, path)
        g = ds.gt(i)
        if g.shape != p.shape:
            raise RefbenchError(f"sample {smp.sample_id!r}: prediction {path} is {p.shape[1]}x"
                                f"{p.shape[0]} but protocol {protocol.name} scores on {g.shape[1]}x{g.shape[0]}")
        return smp.sample_id, p, g, smp.type

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(ds), batch_size):
            chunk = list(pool.map(load, range(start, min(start + batch_size, len(ds)))))
            by_shape: dict[tuple, list] = {}
            for item in chunk:
                by_shape.setdefault(item[1].shape, []).append(item)
            for group in by_shape.values():
                acc.update(torch.from_numpy(np.stack([p for _, p, _, _ in group])),
                           torch.from_numpy(np.stack([g for _, _, g, _ in group])),
                           [s for s, _, _, _ in group], [t for _, _, _, t in group])
    _require_scored(acc, len(ds))
    canvas = f"{protocol.canvas}x{protocol.canvas} canvas" if protocol.canvas else "original image size"
    notes.append(f"GT of {sd.name} built as refbench eval builds it ({canvas}, GT rule {protocol.gt_rule})")
    return acc, notes, sd
