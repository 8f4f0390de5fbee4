"""Score saved predictions against ground truth, without running a model.

Predictions and GT are single-channel PNG masks named ``<sample_id>.png``; any nonzero
pixel is foreground.  An all-zero GT PNG is a zero-target sample.  Masks of one size are
scored in batches; decoding runs in a thread pool (PIL releases the GIL while decoding).
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
from refbench.metrics.accumulator import RISMetrics
from refbench.core.protocols import Protocol, get_protocol


def read_mask_png(path: Path) -> np.ndarray:
    """A single-channel PNG as a bool (H, W) array (nonzero = foreground)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F"):
                raise RefbenchError(f"{path}: mask PNG must be single-channel (mode L/P/1/I), got mode {im.mode}")
            arr = np.asarray(im)
    except RefbenchError:
        raise
    except (OSError, ValueError) as e:
        raise RefbenchError(f"{path}: cannot read PNG ({e})") from None
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise RefbenchError(f"{path}: mask contains NaN")
    return arr != 0


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
    if path is None:
        return None
    try:
        types = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RefbenchError(f"--types file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise RefbenchError(f"--types file {path} is not valid JSON ({e})") from None
    if not isinstance(types, dict):
        raise RefbenchError(f"--types file {path} must be a JSON object {{sample_id: zero|one|many}}")
    return {str(k): str(v) for k, v in types.items()}


def score_directories(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, protocol: "str | Protocol" = "lavt",
                      types_file: str | os.PathLike | None = None, batch_size: int = 32,
                      workers: int = 4) -> tuple[RISMetrics, list[str]]:
    """Score every GT id against its prediction PNG; returns the accumulator and notes."""
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
        g, p = read_mask_png(gts[sid]), read_mask_png(preds[sid])
        if g.shape != p.shape:
            raise RefbenchError(f"sample {sid!r}: prediction {preds[sid]} is {p.shape[1]}x{p.shape[0]} but GT "
                                f"{gts[sid]} is {g.shape[1]}x{g.shape[0]}; predictions must be at the GT size")
        return sid, p, g

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
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

    protocol = get_protocol(protocol)
    sd = open_split(split, data_root)
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
        g, p = ds.gt(i), read_mask_png(preds[smp.sample_id])
        if g.shape != p.shape:
            raise RefbenchError(f"sample {smp.sample_id!r}: prediction {preds[smp.sample_id]} is {p.shape[1]}x"
                                f"{p.shape[0]} but protocol {protocol.name} scores on {g.shape[1]}x{g.shape[0]}")
        return smp.sample_id, p, g, smp.type

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(ds), batch_size):
            chunk = list(pool.map(load, range(start, min(start + batch_size, len(ds)))))
            by_shape: dict[tuple, list] = {}
            for item in chunk:
                by_shape.setdefault(item[1].shape, []).append(item)
            for group in by_shape.values():
                acc.update(torch.from_numpy(np.stack([p for _, p, _, _ in group])),
                           torch.from_numpy(np.stack([g for _, _, g, _ in group])),
                           [s for s, _, _, _ in group], [t for _, _, _, t in group])
    canvas = f"{protocol.canvas}x{protocol.canvas} canvas" if protocol.canvas else "original image size"
    notes.append(f"GT of {sd.name} built as refbench eval builds it ({canvas}, GT rule {protocol.gt_rule})")
    return acc, notes, sd
