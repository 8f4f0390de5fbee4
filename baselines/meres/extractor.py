"""The visual expression extractor of MERES (§3.2): adaptive selection, semantic refinement,
visual relationship modeling.

Notation (paper §3.1–3.2; B = batch):

* ``Q_l`` (B, T, D): the language encoder's tokens ``[w_cls, w_1, ..., w_{T-1}]``; ``w_cls`` (index
  0) is the global cue, the others the local cues.  Padded positions exist (T = token length) and
  are carried along but never used as keys or guidance (``token_mask`` False there).
* ``F_v = F_4`` (B, N, C): the stage-4 vision features, N = H_4·W_4 pixel tokens.
* ``Q̂_l`` (B, T, D): Q_l enhanced by cross-attention layers with F_v as keys/values.
* ``S`` (B, T, N): cosine relevance of every (token, pixel) pair in the joint space (Eqs. 1–2).
* ``selected`` (B, T, N) bool: the top-k selection ``S_k`` as a mask, True on the K pixels of
  each token; the selective mask ``M`` of Eq. 5 is 0 there and -inf elsewhere.
* ``F_a``, ``F_r``, ``Q̂_v`` (B, T, D): aggregated, refined and final visual expression tokens.

The paper writes ``F_v ∈ R^{N×C}`` but the pooled / attended pixel tokens in D (``F_k ∈ R^{K×D}``,
``F_a ∈ R^{T×D}``, Eq. 7 pools ``F_v`` itself): a linear C -> D projection of F_v is implied and
is :attr:`SemanticRefinement.pixel_proj` here (not named in the paper).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.meres.blocks import CrossAttentionBlock, SelfAttentionBlock, sine_position_encoding
from baselines.meres.config import MERESConfig


def _position(grid: tuple[int, int], dim: int, like: torch.Tensor, enabled: bool) -> torch.Tensor | None:
    return sine_position_encoding(grid[0], grid[1], dim, like.device, like.dtype) if enabled else None


# -- adaptive selection (§3.2, Eqs. 1–2) ------------------------------------------------------------

class LinguisticEnhancement(nn.Module):
    """First step of the adaptive selection (§3.2): "the linguistic expression tokens are first
    enhanced by the cross-attention layers using the vision features as key-value pairs".

    ``Q̂_l = CA_L(... CA_1(Q_l, F_v) ...)``, each layer a pre-norm cross-attention + MLP of width
    D whose keys/values are the stage-4 pixel tokens (C channels; position code on the keys).
    Each token attends the pixels on its own, so a padded token cannot affect a real one.
    """

    def __init__(self, lang_dim: int, vis_dim: int, config: MERESConfig) -> None:
        super().__init__()
        self.position_encoding = config.position_encoding
        self.layers = nn.ModuleList(
            CrossAttentionBlock(lang_dim, vis_dim, config.enhance_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.enhance_layers))

    def forward(self, words: torch.Tensor, pixels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """words Q_l (B, T, D), pixels F_v (B, N, C) of an H_4×W_4 ``grid`` -> Q̂_l (B, T, D)."""
        pos = _position(grid, pixels.shape[-1], pixels, self.position_encoding)
        for layer in self.layers:
            words = layer(words, pixels, key_pos=pos)
        return words


class AdaptiveSelection(nn.Module):
    """Eqs. 1–2: joint embedding, cosine relevance map S and the top-k selection S_k.

    ``X = φ^V(F_v)``, ``Y = φ^L(Q̂_l)`` (Eq. 1, linear projections to ``joint_dim``);
    ``S = cos(Y, X) ∈ R^{T×N}``, ``S_k = topK(S)`` per linguistic token (Eq. 2), K = round(k·N)
    with k = 30 % (§4.3.6).  Ablations of Table 4(a): ``threshold`` keeps the pixels with
    σ(S/τ) > 0.5 — for τ > 0 that is S > 0, so τ is not needed here — and, when a token has none,
    its best pixel (the mask must select at least one pixel for Eq. 6); ``none`` keeps all N.
    """

    def __init__(self, vis_dim: int, lang_dim: int, config: MERESConfig) -> None:
        super().__init__()
        self.phi_v = nn.Linear(vis_dim, config.joint_dim)
        self.phi_l = nn.Linear(lang_dim, config.joint_dim)
        self.selection = config.selection
        self.config = config

    def relevance(self, pixels: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Eq. 1 and S = cos(Y, X): pixels F_v (B, N, C), words Q̂_l (B, T, D) -> S (B, T, N) in [-1, 1].

        Computed in float32 even under autocast (N·T cosines; the ranking and Eq. 3's logits
        S/τ should not carry bf16 rounding).
        """
        x = self.phi_v(pixels)
        y = self.phi_l(words)
        with torch.autocast(device_type=pixels.device.type, enabled=False):
            x = nn.functional.normalize(x.float(), dim=-1)
            y = nn.functional.normalize(y.float(), dim=-1)
            return torch.matmul(y, x.transpose(1, 2))

    def select(self, relevance: torch.Tensor) -> torch.Tensor:
        """S (B, T, N) -> ``selected`` bool (B, T, N): the index lists S_k of Eq. 2 as a mask."""
        n = relevance.shape[-1]
        if self.selection == "none":
            return torch.ones_like(relevance, dtype=torch.bool)
        if self.selection == "topk":
            index = relevance.topk(self.config.num_selected(n), dim=-1).indices
        else:  # threshold: sigma(S / tau) > 0.5  <=>  S > 0; the best pixel always stays
            index = relevance.argmax(dim=-1, keepdim=True)
        selected = torch.zeros_like(relevance, dtype=torch.bool).scatter_(-1, index, True)
        if self.selection == "threshold":
            selected |= relevance > 0
        return selected

    def forward(self, pixels: torch.Tensor, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels F_v (B, N, C), words Q̂_l (B, T, D) -> (S (B, T, N) float32, selected (B, T, N) bool)."""
        relevance = self.relevance(pixels, words)
        return relevance, self.select(relevance.detach())


# -- semantic refinement (§3.2, Eqs. 4–8) -----------------------------------------------------------

def topk_selective_mask(selected: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Eq. 5: M (B, T, N), 0 where pixel n is among token t's selected pixels, -inf elsewhere."""
    return torch.zeros(selected.shape, dtype=dtype, device=selected.device).masked_fill(~selected, float("-inf"))


def topk_weighted_average_pooling(relevance: torch.Tensor, selected: torch.Tensor, pixels: torch.Tensor,
                                  use_mask: bool = True) -> torch.Tensor:
    """Eqs. 6–7: ``F_a = 1/K Σ_n softmax_n(S + M)_{t,n} · F_v[n]``.

    Args:
        relevance: S (B, T, N).
        selected: (B, T, N) bool; K_t = number of selected pixels of token t (= K for top-k).
        pixels: F_v (B, N, D).
        use_mask: add the top-k mask M before the softmax (Eq. 6); False is the Table 4(f)
            ablation "w/o top-k mask", where the softmax runs over all N pixels.

    Returns:
        F_a (B, T, D).  As Eq. 7 is written, the softmax-weighted sum is divided by K once more
        (the weights already sum to 1 over the selected pixels), so F_a is 1/K of a weighted mean;
        the next step normalises its input (pre-norm), so only the residual carries the scale.
    """
    scores = relevance.float()
    if use_mask:
        scores = scores + topk_selective_mask(selected)
    weights = scores.softmax(dim=-1)                                   # S_norm (B, T, N)
    count = selected.sum(dim=-1, keepdim=True).to(weights.dtype)       # K (B, T, 1)
    return torch.matmul((weights / count).to(pixels.dtype), pixels)   # (B, T, D)


class SemanticRefinement(nn.Module):
    """Eqs. 4–8: top-k weighted average pooling, then the selective masked cross-attention.

    ``F̂ = MCA(F_a, F_v, M) + F_a``, ``F_r = MLP(F̂) + F̂`` (Eq. 8): each aggregated token attends
    only to its own top-k pixels (the mask M).  ``refine=False`` is the Table 4(c) ablation
    (F_r = F_a, "simply aggregating the selected information").
    """

    def __init__(self, vis_dim: int, dim: int, config: MERESConfig) -> None:
        super().__init__()
        self.pixel_proj = nn.Linear(vis_dim, dim)
        self.use_mask = config.normalize_with_topk_mask
        self.position_encoding = config.position_encoding
        self.mca = (CrossAttentionBlock(dim, dim, config.refine_heads, config.mlp_ratio, config.dropout)
                    if config.semantic_refinement else None)

    def forward(self, relevance: torch.Tensor, selected: torch.Tensor, pixels: torch.Tensor,
                grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """S (B, T, N), selected (B, T, N), F_v (B, N, C) -> (F_a, F_r), each (B, T, D)."""
        pixels = self.pixel_proj(pixels)                                              # F_v in D
        aggregated = topk_weighted_average_pooling(relevance, selected, pixels, self.use_mask)
        if self.mca is None:
            return aggregated, aggregated
        pos = _position(grid, pixels.shape[-1], pixels, self.position_encoding)
        return aggregated, self.mca(aggregated, pixels, allowed=selected, key_pos=pos)


# -- visual relationship modeling (§3.2, Eq. 9) -----------------------------------------------------

class VisualRelationshipModeling(nn.Module):
    """Eq. 9: ``Q̂ = MHSA(F_r) + F_r``, ``Q̂_v = MLP(Q̂) + Q̂`` over the T visual tokens.

    Tokens of padded words (and, in the Table 4(b) ablations, of unused cues) are not keys.
    """

    def __init__(self, dim: int, config: MERESConfig) -> None:
        super().__init__()
        self.block = SelfAttentionBlock(dim, config.relation_heads, config.mlp_ratio, config.dropout)

    def forward(self, refined: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """F_r (B, T, D), token_mask bool (B, T) -> Q̂_v (B, T, D)."""
        return self.block(refined, token_mask)


# -- the extractor -----------------------------------------------------------------------------------

@dataclass
class ExtractorOutput:
    """What one pass of the extractor produces (shapes for T tokens, N stage-4 pixels, width D).

    Attributes:
        relevance: S (B, T, N) float32 cosine relevance; row 0 is the global token's map s of Eq. 3.
        selected: (B, T, N) bool, the top-k (or ablation) selection per token.
        aggregated: F_a (B, T, D), Eq. 7.
        refined: F_r (B, T, D), Eq. 8 (= F_a without refinement).
        tokens: Q̂_v (B, T, D), Eq. 9 (= F_r without relationship modeling).
        token_mask: (B, T) bool, which visual expression tokens are guidance elements.
    """

    relevance: torch.Tensor
    selected: torch.Tensor
    aggregated: torch.Tensor
    refined: torch.Tensor
    tokens: torch.Tensor
    token_mask: torch.Tensor


def linguistic_cue_mask(token_mask: torch.Tensor, cues: str) -> torch.Tensor:
    """Which tokens produce visual expression tokens (Table 4(b)): (B, T) bool.

    ``global+local``: every real token; ``global``: w_cls (index 0) only; ``local``: the real
    tokens but w_cls — and w_cls for a sentence without any other token, so that every sentence
    keeps one guidance element (attention over no key is undefined).
    """
    if cues == "global+local":
        return token_mask
    first = torch.zeros_like(token_mask)
    first[:, 0] = True
    if cues == "global":
        return token_mask & first
    local = token_mask & ~first
    return local | (first & ~local.any(dim=1, keepdim=True))


class VisualExpressionExtractor(nn.Module):
    """§3.2: Q̂_v from the enhanced linguistic tokens Q̂_l and the stage-4 vision features F_v.

    i) adaptive selection (Eqs. 1–2; the enhancement of Q_l, its first sentence, is the separate
    :class:`LinguisticEnhancement`, because Q̂_l is also a guidance element of the decoder),
    ii) semantic refinement (Eqs. 4–8), iii) visual relationship modeling (Eq. 9).
    """

    def __init__(self, vis_dim: int, lang_dim: int, config: MERESConfig) -> None:
        super().__init__()
        self.cues = config.linguistic_cues
        self.adaptive_selection = AdaptiveSelection(vis_dim, lang_dim, config)
        self.semantic_refinement = SemanticRefinement(vis_dim, lang_dim, config)
        self.relationship_modeling = (VisualRelationshipModeling(lang_dim, config)
                                      if config.relationship_modeling else None)

    def forward(self, words: torch.Tensor, pixels: torch.Tensor, grid: tuple[int, int],
                token_mask: torch.Tensor) -> ExtractorOutput:
        """words Q̂_l (B, T, D), pixels F_v (B, N, C) on an H_4×W_4 ``grid``, token_mask (B, T) bool."""
        relevance, selected = self.adaptive_selection(pixels, words)
        aggregated, refined = self.semantic_refinement(relevance, selected, pixels, grid)
        cue_mask = linguistic_cue_mask(token_mask, self.cues)
        tokens = refined if self.relationship_modeling is None else self.relationship_modeling(refined, cue_mask)
        return ExtractorOutput(relevance, selected, aggregated, refined, tokens, cue_mask)
