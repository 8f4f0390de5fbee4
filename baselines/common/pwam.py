"""Pixel-Word Attention Module (PWAM) and the language gate of LAVT and its descendants.

LAVT (Yang et al., CVPR 2022), "Pixel-word attention module": every pixel attends over the
words of the sentence, the attended language feature is multiplied element-wise with the
projected visual feature, and a language gate ("Language pathway") scales the result before it
is added back:

    r = PWAM(x, words)                     # (B, H*W, C) multimodal residual
    x = x + LanguageGate(r) * r            # the gated sum goes on through Swin
    # r (after norm{i}) is the stage's output to the decoder

The attention core (:func:`masked_word_attention`) and :class:`SpatialImageLanguageAttention`
are shared by the variants, which differ only in how the visual query and the output
projection are normalised (``projection``):

* ``"conv_instancenorm"`` (LAVT, DMMI): ``Sequential(Conv1d, InstanceNorm1d)``, the norm is
  affine-free and normalises each channel over the pixels;
* ``"linear_layernorm"`` (MagNet's visual PWAM): ``Sequential(Linear, LayerNorm)``, normalising
  each pixel over channels.

Key names follow the official checkpoints (spec §1): ``vis_project.0``,
``image_lang_att.{f_query.0, f_key.0, f_value.0, W.0}``, ``project_mm.0``; gate ``{0, 2}``.
"""
from __future__ import annotations

import torch
from torch import nn

from baselines.common.layers import apply_pointwise

PROJECTIONS = ("conv_instancenorm", "linear_layernorm")
# Logit offset of padded words: ``sim + (1e4 * mask - 1e4)`` in the official code.
PAD_LOGIT = 1e4


def word_mask_2d(mask: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Accept a word mask as (B, L) or the official (B, L, 1) / (B, 1, L); return (B, L)."""
    if mask.numel() != batch * length:
        raise ValueError(f"word mask of shape {tuple(mask.shape)} does not fit {batch} sentences of {length} words")
    return mask.reshape(batch, length)


def masked_word_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          key_mask: torch.Tensor | None, num_heads: int = 1,
                          scale: float | None = None) -> torch.Tensor:
    """Scaled dot-product attention of queries over (masked) keys, LAVT style.

    Args:
        query: (B, Nq, Ck) channels-last queries (pixels for PWAM).
        key: (B, Ck, Nk) channels-first keys (words for PWAM).
        value: (B, Cv, Nk) channels-first values.
        key_mask: (B, Nk) 1 on real keys, 0 on padding, or None.  Padded keys and values are
            zeroed and their logits get ``PAD_LOGIT * mask - PAD_LOGIT`` (i.e. -1e4) added.
        num_heads: channels are split into this many contiguous head groups.
        scale: logit scale; default ``Ck ** -0.5`` over the *full* key width, as the official
            code does even with several heads.

    Returns:
        (B, Nq, Cv) attended values, heads concatenated along channels.
    """
    b, nq, ck = query.shape
    cv, nk = value.shape[1], value.shape[2]
    if ck % num_heads or cv % num_heads:
        raise ValueError(f"key width {ck} / value width {cv} not divisible by {num_heads} heads")
    scale = ck ** -0.5 if scale is None else scale
    q = query.reshape(b, nq, num_heads, ck // num_heads).transpose(1, 2)  # (B, h, Nq, dk)
    if key_mask is not None:
        m = key_mask.to(key.dtype).reshape(b, 1, nk)
        key, value = key * m, value * m
    k = key.reshape(b, num_heads, ck // num_heads, nk)  # (B, h, dk, Nk)
    v = value.reshape(b, num_heads, cv // num_heads, nk)  # (B, h, dv, Nk)
    logits = torch.matmul(q, k) * scale  # (B, h, Nq, Nk)
    if key_mask is not None:
        logits = logits + (PAD_LOGIT * key_mask.to(logits.dtype) - PAD_LOGIT).reshape(b, 1, 1, nk)
    attn = logits.softmax(dim=-1)
    out = torch.matmul(attn, v.transpose(-1, -2))  # (B, h, Nq, dv)
    return out.transpose(1, 2).reshape(b, nq, cv)


def _projection(kind: str, c_in: int, c_out: int) -> nn.Sequential:
    if kind == "conv_instancenorm":
        return nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size=1), nn.InstanceNorm1d(c_out))
    if kind == "linear_layernorm":
        return nn.Sequential(nn.Linear(c_in, c_out), nn.LayerNorm(c_out))
    raise ValueError(f"unknown PWAM projection {kind!r}; valid: {', '.join(PROJECTIONS)}")


class SpatialImageLanguageAttention(nn.Module):
    """Pixel-to-word attention of the PWAM: queries from pixels, keys/values from words.

    ``f_query`` and ``W`` are a pointwise projection followed by a norm (see ``projection``),
    ``f_key`` / ``f_value`` are 1×1 Conv1d over the word features.  One softmax over words per
    pixel; padded words are masked (:func:`masked_word_attention`).
    """

    def __init__(self, v_in_channels: int, l_in_channels: int, key_channels: int, value_channels: int,
                 out_channels: int | None = None, num_heads: int = 1,
                 projection: str = "conv_instancenorm") -> None:
        super().__init__()
        out_channels = out_channels or value_channels
        self.key_channels, self.value_channels, self.num_heads = key_channels, value_channels, num_heads
        self.f_key = nn.Sequential(nn.Conv1d(l_in_channels, key_channels, kernel_size=1))
        self.f_query = _projection(projection, v_in_channels, key_channels)
        self.f_value = nn.Sequential(nn.Conv1d(l_in_channels, value_channels, kernel_size=1))
        self.W = _projection(projection, value_channels, out_channels)

    def forward(self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C_v) pixels; words: (B, C_l, L); word_mask: (B, L) or (B, L, 1).  -> (B, N, C_out)."""
        mask = word_mask_2d(word_mask, words.shape[0], words.shape[-1])
        query = apply_pointwise(self.f_query, x)
        out = masked_word_attention(query, self.f_key(words), self.f_value(words), mask, self.num_heads)
        return apply_pointwise(self.W, out)


class PWAM(nn.Module):
    """LAVT's pixel-word attention module: ``project_mm(vis_project(x) ⊙ attend(x, words))``.

    ``vis_project`` and ``project_mm`` are Conv1d(1×1) -> GELU -> Dropout in every variant.
    """

    def __init__(self, dim: int, l_in_channels: int, num_heads: int = 1, dropout: float = 0.0,
                 projection: str = "conv_instancenorm") -> None:
        super().__init__()
        self.vis_project = nn.Sequential(nn.Conv1d(dim, dim, kernel_size=1), nn.GELU(), nn.Dropout(dropout))
        self.image_lang_att = SpatialImageLanguageAttention(dim, l_in_channels, dim, dim, dim, num_heads, projection)
        self.project_mm = nn.Sequential(nn.Conv1d(dim, dim, kernel_size=1), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, dim) pixel tokens; words: (B, C_l, L); word_mask: (B, L).  -> (B, N, dim)."""
        vis = apply_pointwise(self.vis_project, x)
        lang = self.image_lang_att(x, words, word_mask)
        return apply_pointwise(self.project_mm, vis * lang)


class LanguageGate(nn.Sequential):
    """LAVT's language gate: ``tanh(Linear(act(Linear(r))))``, bias-free, element-wise weights.

    ``activation`` is ``"relu"`` (LAVT, DMMI) or ``"gelu"`` (MagNet).  Keys: ``0.weight``,
    ``2.weight``.  Both weights start at zero (the gate is closed at init).
    """

    def __init__(self, dim: int, activation: str = "relu") -> None:
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"gate activation must be one of {sorted(acts)}, got {activation!r}")
        super().__init__(nn.Linear(dim, dim, bias=False), acts[activation](), nn.Linear(dim, dim, bias=False), nn.Tanh())
        nn.init.zeros_(self[0].weight)
        nn.init.zeros_(self[2].weight)

    def gated_sum(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``x + gate(residual) * residual``: the gated sum that goes on through the backbone."""
        return x + self(residual) * residual
