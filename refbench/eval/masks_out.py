"""Predicted masks of ``refbench eval --save-masks``: ``OUT/masks/<sample_id>.png``.

Every mask is the exact prediction the run scored: bool on the protocol canvas (480x480 under
``lavt``; the original image size under ``lavt-original`` and ``cris``), written as a
single-channel 8-bit PNG with 0 = background and 255 = foreground, so that

    refbench score --pred OUT/masks --gt SPLIT --protocol P

reproduces the run's per-sample I and U exactly.

Writing.  Each file is written to a temporary name beside it and renamed into place (a killed
run never leaves half a PNG under a sample's name) and fsynced; the masks of a batch are all
on disk before the batch's records are appended to ``records.jsonl``, so every finished batch
has its masks.  An unfinished batch is recomputed whole on ``--resume`` (same composition), its
masks overwritten; under ``torchrun`` every process writes the masks of its own shard, which
are disjoint, so each sample is written once.

The setting is part of the run.  ``OUT/masks/.refbench-masks.json`` records that the run saves
masks.  ``--resume`` refuses, in one line, a run whose finished batches have no masks (started
without ``--save-masks``) when ``--save-masks`` is given, and a run started with it when it is
not (its mask folder would stay incomplete); ``refbench reproduce`` starts such a cell over.
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from refbench.core.errors import RefbenchError
from refbench.core.records import read_jsonl

MASKS_DIR = "masks"
STATE_FILE = ".refbench-masks.json"
STATE_SCHEMA = "refbench.eval-masks"
FOREGROUND = 255
#: sample ids become file names: letters, digits, ``.``, ``_``, ``-`` only, not starting with a dot
_SAFE_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,199}")
_TMP = re.compile(r"\..+\.png\.\d+\.tmp")


def masks_dir(out: str | os.PathLike) -> Path:
    """``OUT/masks``."""
    return Path(out) / MASKS_DIR


def mask_path(out: str | os.PathLike, sample_id: str) -> Path:
    """Where sample ``sample_id``'s mask goes (``OUT/masks/<sample_id>.png``); unsafe ids are refused."""
    if not _SAFE_ID.fullmatch(sample_id):
        raise RefbenchError(f"sample id {sample_id!r} cannot be a file name (letters, digits, '.', '_', '-' only); "
                            "--save-masks needs file-name-safe sample ids")
    return masks_dir(out) / f"{sample_id}.png"


def save_mask_png(path: Path, mask: np.ndarray) -> None:
    """bool (H, W) -> single-channel PNG (0 / 255), written atomically (temporary file + rename) and fsynced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            Image.fromarray(mask.astype(np.uint8) * FOREGROUND, mode="L").save(f, format="PNG", compress_level=3)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


class MaskWriter:
    """Writes the masks of one process's batches (a few threads: PNG encoding releases the GIL)."""

    def __init__(self, out: str | os.PathLike, threads: int = 4) -> None:
        self.out = Path(out)
        self.dir = masks_dir(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=threads)

    def write_batch(self, ids: Sequence[str], masks: "torch.Tensor | Sequence[torch.Tensor]") -> None:
        """Write ``masks`` (bool (B, S, S), or B tensors (H_i, W_i)) as ``<id>.png``; returns when all are on disk."""
        if len(ids) != len(masks):
            raise RefbenchError(f"{len(ids)} sample ids for {len(masks)} masks")
        if isinstance(masks, torch.Tensor):
            arrays = list(masks.detach().to("cpu", torch.bool).numpy())
        else:
            arrays = [m.detach().to("cpu", torch.bool).numpy() for m in masks]
        paths = [mask_path(self.out, str(sid)) for sid in ids]
        for f in [self._pool.submit(save_mask_png, p, a) for p, a in zip(paths, arrays)]:
            f.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# ---- the run's setting ----------------------------------------------------------------------------------------
def saves_masks(out: str | os.PathLike) -> bool:
    """Whether the run in ``out`` was started with ``--save-masks``."""
    return (masks_dir(out) / STATE_FILE).is_file()


def mark_saving(out: str | os.PathLike, canvas: int | None) -> None:
    """Record that the run in ``out`` saves masks (``canvas``: side of the square canvas, None = original size)."""
    d = masks_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"schema": STATE_SCHEMA, "schema_version": 1, "format": "PNG L, 0 = background, 255 = foreground",
                       "canvas": canvas}, indent=1)
    (d / STATE_FILE).write_text(text + "\n", encoding="utf-8")


def _has_scored_batches(out: Path) -> bool:
    """Whether a records file in ``out`` holds a finished batch (a marker line, or a finished run's clean records)."""
    for p in [out / "records.jsonl", *sorted(out.glob("records.rank*-of-*.jsonl"))]:
        if not p.is_file():
            continue
        rows, _ = read_jsonl(p, recover_last=True, what="records file")
        if any(isinstance(r, dict) and ("batch_done" in r or ("id" in r and "b" not in r)) for r in rows):
            return True
    return False


def resume_conflict(out: str | os.PathLike, save_masks: bool) -> str | None:
    """Why resuming the run in ``out`` with (or without) ``--save-masks`` is not possible, else None."""
    out = Path(out)
    if not (out / "run.json").is_file():
        return None
    if save_masks and not saves_masks(out) and _has_scored_batches(out):
        return ("the run was started without --save-masks, so its finished batches have no masks; resume it "
                "without --save-masks, or start a new --out with --save-masks")
    if not save_masks and saves_masks(out):
        return ("the run was started with --save-masks; resume it with --save-masks (otherwise its mask folder "
                "would stay incomplete)")
    return None


def remove_temporaries(out: str | os.PathLike) -> None:
    """Remove the temporary files a killed writer left in ``OUT/masks`` (call before any process writes)."""
    d = masks_dir(out)
    if d.is_dir():
        for p in d.iterdir():
            if _TMP.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                p.unlink()


def clear(out: str | os.PathLike) -> None:
    """Remove the masks refbench wrote (``<id>.png``, the state file, temporaries) to start a run over;
    any other file is left, and so is the folder then."""
    d = masks_dir(out)
    if not d.is_dir():
        return
    remove_temporaries(out)
    for p in d.iterdir():
        if (p.name == STATE_FILE or (p.suffix == ".png" and _SAFE_ID.fullmatch(p.stem))) and p.is_file() \
                and not p.is_symlink():
            p.unlink()
    if not any(d.iterdir()):
        d.rmdir()


def check_complete(out: str | os.PathLike, ids: Sequence[str]) -> None:
    """Every scored sample has its mask (a one-line error naming the first that does not)."""
    d = masks_dir(out)
    have = {p.name for p in d.iterdir()} if d.is_dir() else set()
    missing = [sid for sid in ids if f"{sid}.png" not in have]
    if missing:
        raise RefbenchError(f"{d}: {len(missing)} of {len(ids)} scored samples have no mask, e.g. "
                            f"{missing[0]}.png (the folder was changed during the run); start a new --out with "
                            "--save-masks")


__all__ = ["MASKS_DIR", "MaskWriter", "mask_path", "masks_dir", "save_mask_png", "saves_masks", "mark_saving",
           "resume_conflict", "remove_temporaries", "clear", "check_complete"]
