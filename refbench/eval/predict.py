"""The one prediction loop: batches of samples in, boolean masks on the protocol canvas out.

Used by ``refbench eval``, training validation, the demo's figures, ``refbench predict`` and the
benchmarks, so that every number and every picture comes from the same code path.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

from refbench.core.models import RISModel
from refbench.core.protocols import Protocol
from refbench.eval.device import autocast
from refbench.eval.postprocess import masks_on_canvas


def predict_batch(model: RISModel, batch: dict, protocol: Protocol, device: torch.device,
                  precision: str = "fp32") -> "torch.Tensor | list[torch.Tensor]":
    """Masks for one collated batch: bool (B, S, S) on a square canvas, or a list of (H_i, W_i).

    ``batch`` holds ``image`` (B, 3, s, s), ``input_ids``/``attention_mask`` (B, L) and, for an
    original-size canvas, ``orig_size`` (and ``letterbox`` for letterboxed inputs).
    """
    with torch.no_grad(), autocast(device, precision):
        logits = model(batch["image"].to(device, non_blocking=True), batch["input_ids"].to(device),
                       batch["attention_mask"].to(device))
    return masks_on_canvas(logits, protocol, batch.get("orig_size"), batch.get("letterbox"))


def predict_batches(model: RISModel, batches: Iterable[dict], protocol: Protocol, device: torch.device,
                    precision: str = "fp32") -> Iterator[tuple[dict, "torch.Tensor | list[torch.Tensor]"]]:
    """``(batch, masks)`` for every batch; the model is put in eval mode for the loop and restored after."""
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            yield batch, predict_batch(model, batch, protocol, device, precision)
    finally:
        model.train(was_training)


def gt_on_device(batch: dict, device: torch.device) -> "torch.Tensor | list[torch.Tensor]":
    """The batch's GT masks moved to ``device`` (a tensor, or a list for an original-size canvas)."""
    gt = batch["mask"]
    return gt.to(device) if isinstance(gt, torch.Tensor) else [g.to(device) for g in gt]
