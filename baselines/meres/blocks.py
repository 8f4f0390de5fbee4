"""Attention blocks MERES builds on: multi-head attention with a boolean "may attend" mask, the
residual cross-attention + MLP block of Eq. 8, the self-attention + MLP block of Eq. 9, and a
2-D sine position code for pixel tokens.

Every block is pre-norm: the paper writes ``F̂ = MCA(F_a, F_v, M) + F_a, F_r = MLP(F̂) + F̂``
(Eq. 8) and ``Q̂ = MHSA(F_r) + F_r, Q̂_v = MLP(Q̂) + Q̂`` (Eq. 9), residuals with no norm after
them, which is the pre-norm form (a LayerNorm inside each branch; not stated in the paper).
Attention runs through ``F.scaled_dot_product_attention`` (autocast-safe, fused on GPU).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention of ``query`` tokens over ``context`` tokens.

    Args:
        dim: query (and output) width.
        num_heads: heads; ``dim`` must be divisible by it.
        context_dim: width of the context tokens (default ``dim``); keys/values are projected
            from it to ``dim``.
        dropout: attention-probability dropout (training only).
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        context_dim = context_dim or dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(context_dim, dim)
        self.v_proj = nn.Linear(context_dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor, allowed: torch.Tensor | None = None,
                query_pos: torch.Tensor | None = None, key_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Attend.

        Args:
            query: (B, Nq, dim).
            context: (B, Nk, context_dim) keys and values.
            allowed: bool, True where a query may attend a key: (B, Nq, Nk) or (B, 1, Nk) for a
                key-padding mask; None = everything.  Every query must be allowed one key.
            query_pos, key_pos: position codes added to the query / key inputs (not to values),
                broadcastable to ``query`` / ``context``.

        Returns:
            (B, Nq, dim).
        """
        q = self.q_proj(query if query_pos is None else query + query_pos)
        k = self.k_proj(context if key_pos is None else context + key_pos)
        v = self.v_proj(context)
        mask = None if allowed is None else allowed[:, None]  # (B, 1, Nq|1, Nk), broadcast over heads
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v), attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class MLP(nn.Sequential):
    """Linear -> GELU -> Linear (the MLP of Eqs. 8 and 9), hidden width ``ratio · dim``."""

    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0) -> None:
        hidden = int(round(dim * ratio))
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                         nn.Dropout(dropout))


class CrossAttentionBlock(nn.Module):
    """``X̂ = CA(X, Z, mask) + X``; ``out = MLP(X̂) + X̂`` (the form of Eq. 8), pre-norm.

    Used for the enhancement of the linguistic tokens (§3.2), the masked cross-attention of the
    semantic refinement (Eq. 8, with the top-k mask) and every decoder stage (§3.3).
    """

    def __init__(self, dim: int, context_dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.attn = MultiHeadAttention(dim, num_heads, context_dim, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, allowed: torch.Tensor | None = None,
                query_pos: torch.Tensor | None = None, key_pos: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Nq, dim), context (B, Nk, context_dim), allowed bool (B, Nq|1, Nk) -> (B, Nq, dim)."""
        x = x + self.attn(self.norm_query(x), self.norm_context(context), allowed, query_pos, key_pos)
        return x + self.mlp(self.norm_mlp(x))


class SelfAttentionBlock(nn.Module):
    """``Q̂ = MHSA(X) + X``; ``out = MLP(Q̂) + Q̂`` (Eq. 9), pre-norm; padded tokens are not keys."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, dim, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, dim), key_mask bool (B, T) True on tokens that may be attended -> (B, T, dim)."""
        h = self.norm_attn(x)
        x = x + self.attn(h, h, None if key_mask is None else key_mask[:, None, :])
        return x + self.mlp(self.norm_mlp(x))


def sine_position_encoding(height: int, width: int, dim: int, device: torch.device | None = None,
                           dtype: torch.dtype = torch.float32, temperature: float = 10000.0) -> torch.Tensor:
    """2-D sine/cosine position code (DETR's, normalised coordinates) for a row-major grid.

    Half of the channels encode y, half x, each as interleaved-free [sin, cos] blocks of
    geometric frequencies.  Returns (1, height·width, dim); ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"sine position code needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    freq = temperature ** (-torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    y = ys[:, None] * freq[None]                                      # (H, q)
    x = xs[:, None] * freq[None]                                      # (W, q)
    y_code = torch.cat([y.sin(), y.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    x_code = torch.cat([x.sin(), x.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([y_code, x_code], dim=-1).reshape(1, height * width, dim).to(dtype)
