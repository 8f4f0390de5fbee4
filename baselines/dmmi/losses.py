"""DMMI's training objective (Hu et al., ICCV 2023, §3.2, §3.3; official ``train.py`` and
``lib/loss_functions.py``)::

    total = L_ce + 0.01 · L_sim + 0.01 · L_con

* L_ce: cross-entropy of the 2-channel logits at input size, class weights (0.9, 1.1).
* L_sim (Eq. 8): cosine similarity between the CCR reconstruction Ê and the *detached* final
  language features E4*, per valid token (padding excluded), averaged per sentence.
* L_con (Eqs. 9–11): symmetric InfoNCE between the pooled decoder vector V_o and the pooled,
  projected (``align_lan``) language features E_o, temperature τ = 0.05.

Both auxiliary terms are multiplied by the one-to-zero indicator δ (``target_flag``: 0 for
``"zero"`` samples), so zero-target samples send no gradient through them.  Where the code and
the paper differ the code is followed: L_sim = 1 − mean_b(δ_b · cos_b), so each zero-target
sample adds the constant 1/B to the value (the paper's δ·(1 − cos) would add 0); the gradients
are the same.  E_o averages *all* L positions, padding included (official ``AdaptiveAvgPool``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refbench.core.errors import RefbenchError

COSINE_EPS = 1e-6  # official nn.CosineSimilarity(dim=1, eps=1e-6)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      class_weights: tuple[float, float] = (0.9, 1.1)) -> torch.Tensor:
    """Class-weighted cross-entropy (torch's weighted mean).

    Args:
        logits: (B, 2, H, W) background/foreground scores at the GT size.
        target: (B, H, W) in {0, 1} (any integer or bool dtype).
        class_weights: (background, foreground) weights.
    """
    if target.shape != (logits.shape[0], *logits.shape[-2:]):
        raise RefbenchError(f"batch['mask'] must be (B, H, W) = {(logits.shape[0], *logits.shape[-2:])}, "
                            f"got {tuple(target.shape)}")
    target = target.long()
    if target.numel() and (int(target.min()) < 0 or int(target.max()) > 1):
        raise RefbenchError(f"batch['mask'] must hold 0/1 labels, got values in [{int(target.min())}, "
                            f"{int(target.max())}]")
    weight = torch.tensor(class_weights, dtype=torch.float32, device=logits.device)
    return F.cross_entropy(logits.float(), target, weight=weight)


def similarity_loss(language: torch.Tensor, reconstructed: torch.Tensor, attention_mask: torch.Tensor,
                    target_flag: torch.Tensor) -> torch.Tensor:
    """L_sim (Eq. 8, official ``Cosine_Sim_Loss``): ``1 − mean_b(δ_b · mean_valid_l cos(E_bl, Ê_bl))``.

    Args:
        language: E4* (B, C, L); detached here (no gradient flows into it).
        reconstructed: Ê (B, C, L) from the CCR module.
        attention_mask: (B, L) 1 on real tokens; padded tokens are excluded from the mean.
        target_flag: (B,) δ, 0 for one-to-zero samples.
    """
    mask = attention_mask.to(torch.float32)
    lengths = mask.sum(dim=1)
    if bool((lengths == 0).any()):
        raise RefbenchError("similarity loss: a sentence has no real token (attention_mask all 0)")
    m = mask[:, None, :]
    cos = F.cosine_similarity(language.detach().float() * m, reconstructed.float() * m, dim=1, eps=COSINE_EPS)
    per_sentence = (cos * target_flag.float()[:, None]).sum(dim=1) / lengths
    return 1.0 - per_sentence.mean()


def info_nce(vision: torch.Tensor, language: torch.Tensor, target_flag: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE (Eqs. 9–11): CE(V·Eᵀ/τ) + CE(E·Vᵀ/τ) with the diagonal as positives.

    ``vision``, ``language``: (B, C) vectors (L2-normalised here); ``target_flag`` (B,) δ.  Each
    direction is ``mean_b(δ_b · CE_b)`` (divided by B, not by Σδ, as Eq. 10 and the code do).
    """
    v = F.normalize(vision.float(), dim=1)
    e = F.normalize(language.float(), dim=1)
    logits = v @ e.t() / temperature
    labels = torch.arange(logits.shape[0], device=logits.device)
    flag = target_flag.float()
    i2t = (F.cross_entropy(logits, labels, reduction="none") * flag).mean()
    t2i = (F.cross_entropy(logits.t(), labels, reduction="none") * flag).mean()
    return i2t + t2i


class MultiModalContrastiveLoss(nn.Module):
    """§3.3.2 multi-modal contrastive learning (official ``Contrastive_Loss``; key ``align_lan.0``).

    E_o = mean over the L positions of ``align_lan(E4*)`` (1×1 Conv1d); V_o = the pooled decoder
    vector; loss = :func:`info_nce` (E_o is *not* detached: it trains the backbone's words too).
    """

    def __init__(self, lang_dim: int = 768, temperature: float = 0.05) -> None:
        super().__init__()
        self.temperature = temperature
        self.align_lan = nn.Sequential(nn.Conv1d(lang_dim, lang_dim, 1))

    def forward(self, pooled_vision: torch.Tensor, language: torch.Tensor, target_flag: torch.Tensor) -> torch.Tensor:
        """pooled_vision (B, C), language (B, C, L), target_flag (B,) -> scalar loss."""
        return info_nce(pooled_vision, self.align_lan(language).mean(dim=-1), target_flag, self.temperature)
