"""MagNet's training losses (Chng et al., CVPR 2024, §3.2, §3.4, §3.5).

    L = λ_BCE·L_BCE + λ_Dice·L_Dice + λ_CAL·L_CAL + λ_grounding·L_grounding      (Eq. 15)

with λ = 2.0 / 2.0 / 0.5 / 1.0.  The official repository ships no training code, so every term
here is built from the paper; where the paper leaves a choice open the docstring says what we do.

* :func:`mask_losses` — per-pixel binary cross-entropy and Dice of the mask logit (Mask2Former's
  ``sigmoid_ce_loss`` / ``dice_loss`` with the +1 smoothing).
* :func:`cross_modal_alignment_loss` — CAL = P2P + P2T (Eq. 12–14) on L2-normalised features.
  The printed Eq. 13/14 show the softmax ratio without a logarithm; as in the InfoNCE losses the
  paper builds on ([61, 71]) we take ``-log`` of the ratio, so a perfect alignment scores 0.
  Eq. 14 writes ``I_avg`` where the text defines ``T_avg``; we use ``T_avg`` (the projected mean
  word feature), as the surrounding text says.
* :func:`grounding_loss` — cross-entropy of the masked-token predictions over the BERT vocabulary.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def mask_losses(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary cross-entropy and Dice loss of mask logits against a binary target.

    Args:
        logits: (B, H, W) mask logits.
        target: (B, H, W) bool or {0, 1}.

    Returns:
        ``(bce, dice)``: BCE averaged over all pixels of the batch; Dice
        ``1 - (2·Σ σ(x)·t + 1) / (Σ σ(x) + Σ t + 1)`` per image, averaged over the batch.
    """
    logits = logits.float().flatten(1)
    target = target.to(logits.dtype).flatten(1)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = logits.sigmoid()
    dice = 1.0 - (2.0 * (prob * target).sum(1) + 1.0) / (prob.sum(1) + target.sum(1) + 1.0)
    return bce, dice.mean()


def sample_points(batch: int, n: int, max_points: int, device: torch.device,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (batch, min(n, max_points)) of distinct pixels per image out of n, uniformly at random
    (all of them, in order, when n <= max_points)."""
    if n <= max_points:
        return torch.arange(n, device=device).expand(batch, n)
    # drawn where the generator lives (a CPU generator may drive a CUDA run), used on ``device``
    scores = torch.rand(batch, n, device=generator.device if generator is not None else device, generator=generator)
    return scores.to(device).topk(max_points, dim=1).indices


def _contrast(anchor: torch.Tensor, distractor_sum: torch.Tensor, log_weight: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-anchor ``-log(e^{a/τ} / (e^{a/τ} + w·Σ_j e^{s_j/τ}))`` from shifted exponentials.

    ``anchor`` (B, n) is the anchor's cosine similarity a; ``distractor_sum`` (B, n) holds
    ``D = Σ_j exp((s_j - 1)/τ)`` over its distractors; ``log_weight`` (B,) is log w.  Cosines are
    at most 1, so the shifted exponentials lie in (e^{-2/τ}, 1], and the loss is
    ``softplus(log(w·D) - (a - 1)/τ)``, accurate even when it is tiny.
    """
    shifted = (anchor - 1.0) / tau
    # D > 0 whenever the distractor set is non-empty; the clamp keeps excluded rows finite
    return F.softplus(torch.log(distractor_sum.clamp_min(1e-30)) + log_weight[:, None] - shifted)


def cross_modal_alignment_loss(pixel_features: torch.Tensor, target: torch.Tensor, text: torch.Tensor,
                               tau_p2p: float = 0.1, tau_p2t: float = 0.3, max_points: int = 4096,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-modal alignment loss of §3.4: pixel-to-pixel (Eq. 13) and pixel-to-text (Eq. 14).

    Args:
        pixel_features: (B, C, H, W) final mask features of the pixel decoder.
        target: (B, H, W) bool: the GT mask at the feature resolution (positive set P; the rest is N).
        text: (B, C) sentence feature ``T_avg`` (mean word feature, projected to C).
        tau_p2p, tau_p2t: τ1 and τ2.
        max_points: pixels per image used at most.  With more pixels, ``max_points`` are drawn at
            random; means over P or N are then means over the drawn pixels, and each sum over the
            opposite set is rescaled by |set| / |drawn from set| (an unbiased estimate of the
            full sum).  The class means ``I_avg±`` always use every pixel.
        generator: random source for the draw.

    All features are L2-normalised before the dot products (the paper's note under Eq. 14).
    Images without positive or without negative pixels (e.g. no-target sentences) contribute
    nothing; if no image qualifies both terms are 0 (still attached to the graph).

    Returns:
        ``(p2p, p2t)`` scalars, each averaged over the qualifying images.
    """
    b, c, h, w = pixel_features.shape
    if target.shape != (b, h, w):
        raise ValueError(f"target {tuple(target.shape)} must be (B, H, W) = {(b, h, w)} like the features")
    feats = F.normalize(pixel_features.float().flatten(2).transpose(1, 2), dim=-1)  # (B, N, C)
    pos = target.reshape(b, h * w).bool()
    neg = ~pos
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    ok = (n_pos > 0) & (n_neg > 0)
    if not bool(ok.any()):
        zero = pixel_features.sum() * 0.0 + text.sum() * 0.0
        return zero, zero
    posf, negf = pos.to(feats.dtype)[..., None], neg.to(feats.dtype)[..., None]
    avg_pos = F.normalize((feats * posf).sum(1) / n_pos.clamp(min=1)[:, None], dim=-1)  # (B, C)
    avg_neg = F.normalize((feats * negf).sum(1) / n_neg.clamp(min=1)[:, None], dim=-1)
    t = F.normalize(text.float(), dim=-1)

    idx = sample_points(b, h * w, max_points, feats.device, generator)  # (B, n)
    fs = feats.gather(1, idx[..., None].expand(-1, -1, c))
    ps, ns = pos.gather(1, idx), neg.gather(1, idx)
    # rescale sampled sums to the full sets: log(|set| / |drawn from set|)
    log_w_neg = torch.log(n_neg.clamp(min=1).float() / ns.sum(1).clamp(min=1).float())
    log_w_pos = torch.log(n_pos.clamp(min=1).float() / ps.sum(1).clamp(min=1).float())
    sets = torch.stack([ns, ps], dim=-1).to(feats.dtype)  # (B, n, 2) indicators of N and P
    fst = fs.transpose(1, 2)

    def distractor_sums(tau: float, columns: torch.Tensor) -> torch.Tensor:
        # exp((s_ij - 1)/τ) for all pixel pairs (one fused matmul + in-place exp), summed over
        # the pixels j of each set: (B, n, n) @ (B, n, k) -> (B, n, k)
        shift = torch.full((1, 1, 1), -1.0 / tau, dtype=fs.dtype, device=fs.device)
        return torch.baddbmm(shift, fs, fst, alpha=1.0 / tau).exp_() @ columns

    sums_p2p = distractor_sums(tau_p2p, sets)  # column 0: over N, column 1: over P
    sums_p2t = distractor_sums(tau_p2t, sets[..., :1])

    def mean_over(values: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        m = members.to(values.dtype)
        return (values * m).sum(1) / m.sum(1).clamp(min=1)

    # Eq. 13, first sum: each positive pixel against the positive mean, negatives as distractors
    pos_term = _contrast((fs * avg_pos[:, None]).sum(-1), sums_p2p[..., 0], log_w_neg, tau_p2p)
    # Eq. 13, second sum: each negative pixel against the negative mean, positives as distractors
    neg_term = _contrast((fs * avg_neg[:, None]).sum(-1), sums_p2p[..., 1], log_w_pos, tau_p2p)
    # Eq. 14: each positive pixel against the sentence feature, negatives as distractors
    text_term = _contrast((fs * t[:, None]).sum(-1), sums_p2t[..., 0], log_w_neg, tau_p2t)

    p2p_img = mean_over(pos_term, ps) + mean_over(neg_term, ns)
    p2t_img = mean_over(text_term, ps)
    # images count if both sets are non-empty among the drawn pixels (a tiny object can be missed)
    weight = (ok & ps.any(1) & ns.any(1)).to(feats.dtype)
    denom = weight.sum().clamp(min=1.0)
    return (p2p_img * weight).sum() / denom, (p2t_img * weight).sum() / denom


def grounding_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mask Grounding loss (Eq. 4): cross-entropy of the predicted token at each masked position.

    Args:
        logits: (N, V) predictor outputs over the vocabulary at the N masked positions.
        labels: (N,) int64 original token ids there.

    Returns:
        Mean CE over the masked positions (0, attached to the graph, if N = 0).  Uniform logits
        give exactly ``log(V)``.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)
