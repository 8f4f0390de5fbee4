"""Trivial predictors: the floor every trained model must clear.

* ``empty``   predicts no foreground (IoU 0 on every targeted sentence);
* ``full``    predicts the whole image (IoU = target area / image area);
* ``largest`` predicts the largest annotated object of the image, ignoring the sentence
  (an oracle for "segment the most salient thing": it knows the instance masks).

Scored exactly as ``refbench eval`` scores a model (same protocol, canvas and GT rule).
"""
from __future__ import annotations

import numpy as np
import torch

from refbench.data.masks import rasterize
from refbench.data.transforms import resize_mask_nearest
from refbench.metrics.accumulator import RISMetrics
from refbench.core.protocols import Protocol, get_protocol

PREDICTORS = ("empty", "full", "largest")


def trivial_metrics(split, protocol: "str | Protocol" = "lavt", limit: int | None = None) -> dict[str, dict]:
    """``{predictor: metrics}`` of the trivial predictors on ``split`` (a SplitData)."""
    from refbench.data import RISDataset

    protocol = get_protocol(protocol).resolve("nonzero")
    ds = RISDataset(split, protocol, skip_missing_images=True)
    accs = {name: RISMetrics(protocol) for name in PREDICTORS}
    by_image: dict[int, list[dict]] = {}
    for a in split.coco.anns.values():
        by_image.setdefault(int(a["image_id"]), []).append(a)
    largest_cache: dict[int, np.ndarray] = {}
    for i, s in enumerate(ds.samples[:limit]):
        gt = torch.from_numpy(ds.gt(i))[None]
        if s.image_id not in largest_cache:
            masks = [rasterize([a["segmentation"]], s.height, s.width, "union") for a in by_image.get(s.image_id, [])]
            full = max(masks, key=lambda m: int(m.sum()), default=np.zeros((s.height, s.width), bool))
            largest_cache[s.image_id] = full if protocol.canvas is None else resize_mask_nearest(full, protocol.canvas)
        preds = {"empty": torch.zeros_like(gt), "full": torch.ones_like(gt),
                 "largest": torch.from_numpy(largest_cache[s.image_id])[None]}
        for name, p in preds.items():
            accs[name].update(p, gt, [s.sample_id], [s.type])
    return {name: acc.compute() for name, acc in accs.items()}
