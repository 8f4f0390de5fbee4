"""Logits -> boolean masks, exactly as the official test scripts do it.

Rules:
    ``argmax``        (B, 2, H, W) logits, foreground where channel 1 wins the argmax
                      (LAVT, DMMI, ReLA).  Ties go to background, as ``argmax`` returns the
                      first maximum.
    ``sigmoid>0.5``   (B, 1, H, W) or (B, H, W) logits, ``sigmoid(x) > 0.5`` (MagNet).
    ``sigmoid>0.35``  the same with 0.35 (CRIS).
                      A threshold rule always applies to the model's *foreground* output: for a
                      2-channel (background, foreground) model that is the margin l1 - l0, whose
                      sigmoid is the softmax foreground probability (:func:`foreground_logit`),
                      never channel 0.
    ``nonzero``       any masks, foreground where the value != 0 (saved PNG predictions).

The sigmoid rules evaluate the sigmoid in the input dtype as the official code does, so
logits within float rounding of 0 binarize as they would there.
"""
from __future__ import annotations

import torch

from refbench.core.errors import RefbenchError
from refbench.core.protocols import BINARIZATIONS


def binarize(logits: torch.Tensor, rule: str) -> torch.Tensor:
    """Boolean masks (B, H, W) from model outputs under ``rule`` (see module docstring)."""
    if rule not in BINARIZATIONS:
        raise RefbenchError(f"unknown binarization {rule!r}; valid: {', '.join(BINARIZATIONS)}")
    if rule == "nonzero":
        return _squeeze_channel(logits, rule) != 0
    if not torch.is_floating_point(logits):
        raise RefbenchError(f"binarization {rule!r} expects float logits, got {logits.dtype}")
    if logits.numel() and torch.isnan(logits.amax()):  # amax propagates NaN; 8x cheaper than isnan().any()
        raise RefbenchError("model output contains NaN; refusing to score it (check precision/checkpoint)")
    if rule == "argmax":
        if logits.dim() != 4 or logits.shape[1] != 2:
            raise RefbenchError(f"binarization 'argmax' expects (B, 2, H, W) logits, got {tuple(logits.shape)}")
        # argmax over 2 channels == (l1 > l0): first maximum wins ties, as torch.argmax.
        return logits[:, 1] > logits[:, 0]
    threshold = 0.5 if rule == "sigmoid>0.5" else 0.35
    return torch.sigmoid(_squeeze_channel(foreground_logit(logits), rule)) > threshold


def foreground_logit(logits: torch.Tensor) -> torch.Tensor:
    """The model's foreground score as one channel: (B, 2, H, W) -> (B, 1, H, W) margin ``l1 - l0``
    (``sigmoid(l1 - l0)`` = softmax foreground probability); one-channel inputs pass through."""
    if logits.dim() == 4 and logits.shape[1] == 2:
        return logits[:, 1:2] - logits[:, 0:1]
    return logits


def _squeeze_channel(x: torch.Tensor, rule: str) -> torch.Tensor:
    if x.dim() == 4:
        if x.shape[1] != 1:
            raise RefbenchError(f"binarization {rule!r} expects one channel, got {tuple(x.shape)}")
        return x[:, 0]
    if x.dim() != 3:
        raise RefbenchError(f"binarization {rule!r} expects (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")
    return x


def as_binary_mask(x: torch.Tensor, what: str) -> torch.Tensor:
    """Validate that ``x`` already is a binary mask (bool, or 0/1 values) and return it as bool.

    Raises a RefbenchError naming ``what`` for NaN or non-binary values (e.g. logits or
    probabilities passed where masks are expected).
    """
    if x.dtype == torch.bool:
        return x
    if torch.is_floating_point(x) and torch.isnan(x).any():
        raise RefbenchError(f"{what} contains NaN; expected binary masks (0/1 or bool)")
    if ((x != 0) & (x != 1)).any():
        lo, hi = float(x.min()), float(x.max())
        raise RefbenchError(
            f"{what} is not binary (values in [{lo:g}, {hi:g}]); pass masks of 0/1, or logits through "
            "update_logits() with a binarization rule")
    return x != 0
