"""MERES training objective: ``L = BCE(mask) + λ_c · L_c`` (§3.3, Eq. 3).

* BCE: binary cross-entropy of the 1-channel mask logits at the input size (§3.3: "The binary
  cross-entropy loss is used for the network training"), on logits (numerically stable).
* L_c (Eq. 3), the pixel contrastive loss on the global token's relevance map s ∈ R^{1×N}::

      L_c = -log σ(s_j / τ)        for j ∈ Z+ (pixels of the target)
            -log(1 - σ(s_j / τ))   for j ∈ Z- (the other pixels)

  with a learnable temperature τ; averaged over the N pixels and the batch (the reduction is not
  stated in the paper).  Z+/Z- are read from the GT on the stage-4 grid by
  :func:`relevance_targets`.  λ_c = ``config.contrastive_weight`` (not stated; 1.0).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from refbench.core.errors import RefbenchError


def check_mask_target(target: torch.Tensor, batch: int, size: tuple[int, int]) -> torch.Tensor:
    """Validate ``batch["mask"]`` (B, H, W) bool / 0-1 at the logits' size; return it as float32."""
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (batch, *size):
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise RefbenchError(f"batch['mask'] must be a (B, H, W) = {(batch, *size)} tensor at the input size, "
                            f"got {shape}")
    if target.dtype != torch.bool and target.numel():
        if torch.is_floating_point(target) and bool(torch.isnan(target).any()):
            raise RefbenchError("batch['mask'] contains NaN; it must hold 0/1 labels")
        if bool(((target != 0) & (target != 1)).any()):
            raise RefbenchError(f"batch['mask'] must hold 0/1 labels, got values in [{float(target.min()):g}, "
                                f"{float(target.max()):g}]")
    return target.float()


def mask_bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Mean BCE of (B, 1, H, W) logits against a (B, H, W) 0/1 float target (computed in float32)."""
    weight = None if pos_weight == 1.0 else torch.tensor(pos_weight, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits[:, 0].float(), target, pos_weight=weight)


def relevance_targets(target: torch.Tensor, grid: tuple[int, int], positive_fraction: float = 0.5) -> torch.Tensor:
    """Z+ of Eq. 3 on the stage-4 grid: (B, H, W) 0/1 GT -> (B, h·w) bool, row-major like F_v.

    A cell is relevant when the share of its area covered by the target (adaptive average
    pooling) is at least ``positive_fraction``; when no cell of a sample reaches it but the sample
    has target pixels, its best-covered cell(s) are relevant.  Empty (no-target) GT: all in Z-.
    """
    frac = F.adaptive_avg_pool2d(target.float()[:, None], grid).flatten(1)      # (B, h·w)
    best = frac.amax(dim=1, keepdim=True)
    return (frac >= positive_fraction) | ((frac == best) & (best > 0))


def pixel_contrastive_loss(scores: torch.Tensor, positive: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Eq. 3 averaged over pixels and batch.

    Args:
        scores: s (B, N), the global token's cosine relevance to every stage-4 pixel.
        positive: (B, N) bool, True on Z+ (the rest is Z-).
        temperature: τ > 0, a scalar tensor (learnable).

    Returns:
        mean_j [-y_j log σ(s_j/τ) - (1 - y_j) log(1 - σ(s_j/τ))], a scalar (float32).
    """
    if scores.shape != positive.shape:
        raise RefbenchError(f"contrastive loss: scores {tuple(scores.shape)} and targets "
                            f"{tuple(positive.shape)} differ")
    return F.binary_cross_entropy_with_logits(scores.float() / temperature.float(), positive.float())


class PixelContrastiveLoss(nn.Module):
    """Eq. 3 with its learnable temperature τ, kept as ``log_temperature`` (τ = exp(·) > 0),
    clamped from below at ``temperature_min``."""

    def __init__(self, temperature_init: float = 0.1, temperature_min: float = 0.01) -> None:
        super().__init__()
        self.temperature_min = temperature_min
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature_init)))

    @property
    def temperature(self) -> torch.Tensor:
        """τ (scalar tensor)."""
        return self.log_temperature.exp().clamp(min=self.temperature_min)

    def forward(self, scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """scores s (B, N), positive (B, N) bool -> scalar L_c."""
        return pixel_contrastive_loss(scores, positive, self.temperature)
