"""A run's samples with their saved masks: ground truth, prediction and image on the protocol canvas.

An eval run written with ``--save-masks`` holds every prediction as ``OUT/masks/<sample_id>.png``
(:mod:`refbench.eval.masks_out`).  The ground truth is built exactly as ``refbench eval`` builds it
(:class:`refbench.data.RISDataset` under the run's protocol), and the image is shown on the same
canvas: PIL-bilinear stretched to the square canvas (what the model sees), or at its original
size for protocols that score there.

Samples are chosen by a per-sample **score**: the IoU for a sample with a target; for a
zero-target sample 1 when the prediction is empty and 0 otherwise (its IoU is 0 either way).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from refbench.core.errors import RefbenchError
from refbench.core.records import SampleRecords

SELECTIONS = ("worst", "best", "random")


def sample_scores(rec: SampleRecords) -> np.ndarray:
    """The gallery's per-sample score in [0, 1] (see module doc)."""
    score = rec.iou()
    zero = rec.type == 0
    score[zero] = (rec.pred_area[zero] == 0).astype(np.float64)
    return score


def masks_folder(doc) -> Path | None:
    """``OUT/masks`` of an eval run, when the run saved its masks (else None)."""
    from refbench.eval.masks_out import masks_dir, saves_masks

    if doc.path is None:
        return None
    out = doc.path.parent
    return masks_dir(out) if saves_masks(out) else None


@dataclass
class RunSample:
    """One sample of a run ready to draw: bool masks and uint8 image on the canvas."""

    sample_id: str
    sentence: str
    type: str
    score: float
    iou: float
    gt: np.ndarray
    pred: np.ndarray
    image: np.ndarray | None


class RunSamples:
    """Access to a run's samples (split opened from the run's identity, checked against its sha256s)."""

    def __init__(self, doc, split, records: SampleRecords) -> None:
        from refbench.data import RISDataset

        self.doc, self.split, self.records = doc, split, records
        self.masks = masks_folder(doc)
        self.dataset = RISDataset(split, doc.protocol, skip_missing_images=True)
        self.index = {s.sample_id: i for i, s in enumerate(self.dataset.samples)}
        self.scores = dict(zip(records.ids, sample_scores(records).tolist()))
        self.ious = dict(zip(records.ids, records.iou().tolist()))

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    def choose(self, how: str, n: int, seed: int = 0) -> list[str]:
        """``n`` sample ids: ``worst`` / ``best`` by score, or ``random`` (seeded)."""
        from refbench.tables.plots import select_samples

        return select_samples(self.scores, how, n, seed)

    def load(self, sample_id: str, with_image: bool = True) -> RunSample:
        """The sample's GT, saved prediction and image on the canvas."""
        from refbench.score import read_mask_png

        if self.masks is None:
            raise RefbenchError(f"{self.doc.path}: the run saved no masks; re-run refbench eval with --save-masks")
        if sample_id not in self.index:
            raise RefbenchError(f"sample {sample_id!r} is not in {self.split.name}")
        i = self.index[sample_id]
        s = self.dataset.samples[i]
        gt = self.dataset.gt(i)
        path = self.masks / f"{sample_id}.png"
        if not path.is_file():
            raise RefbenchError(f"{path}: no saved mask for sample {sample_id!r}; the run's mask folder is incomplete")
        pred = read_mask_png(path)
        if pred.shape != gt.shape:
            raise RefbenchError(f"{path}: mask is {pred.shape[1]}x{pred.shape[0]} but the run's canvas is "
                                f"{gt.shape[1]}x{gt.shape[0]}")
        image = None
        img_path = self.split.image_path(s)
        if with_image and img_path.is_file():
            from refbench.data.dataset import load_rgb

            im = load_rgb(img_path, (s.width, s.height))
            if im.size != (gt.shape[1], gt.shape[0]):
                im = im.resize((gt.shape[1], gt.shape[0]), Image.BILINEAR)  # the stretched input, on the canvas
            image = np.asarray(im)
        return RunSample(sample_id, s.sentence, s.type, self.scores.get(sample_id, 0.0),
                         self.ious.get(sample_id, 0.0), gt, pred, image)


def open_run_samples(results: str | Path, data_root: str | None = None) -> RunSamples:
    """:class:`RunSamples` of the eval run whose results file (or folder) is ``results``."""
    from refbench.analysis.analyze import open_run_split, resolve_results
    from refbench.core.results import read_results

    doc = read_results(resolve_results(results))
    split = open_run_split(doc, data_root)
    return RunSamples(doc, split, doc.records())


def overlay_samples(rs: RunSamples, ids: list[str] | None, select: str, n: int, seed: int = 0) -> list:
    """``refbench.tables.overlays.OverlaySample`` rows for ``plot overlays --run`` (ids, or chosen by ``select``)."""
    from refbench.tables.overlays import OverlaySample

    if not rs.has_masks:
        raise RefbenchError(f"{rs.doc.path}: the run saved no masks; re-run refbench eval with --save-masks "
                            "(a new --out) to draw its overlays")
    chosen = ids if ids else rs.choose(select, n, seed)
    unknown = [i for i in chosen if i not in rs.scores]
    if unknown:
        raise RefbenchError(f"--ids: sample {unknown[0]!r} is not in the run's records")
    out = []
    for sid in chosen:
        s = rs.load(sid)
        out.append(OverlaySample(sid, s.gt, s.pred, s.image, s.sentence))
    return out


__all__ = ["RunSamples", "RunSample", "open_run_samples", "overlay_samples", "sample_scores", "masks_folder",
           "SELECTIONS"]
