"""DMMI's two decoders (Hu et al., ICCV 2023, §3.2 and §3.3.1), with the official key names.

Text-to-image decoder (Eq. 7)::

    Y4 = V4*
    Y3 = ψ1(φ(Y4, V3*), E4*)        φ: concat + two 3×3 conv-BN-ReLU; ψ: transformer decoder layer
    Y2 = ψ2(φ(Y3, V2*), E4*)
    Y1 = φ(Y2, V1*)  ->  conv 1×1  ->  2 class maps at stride 4

The conv/BN part is LAVT's ``SimpleDecoding`` at hidden width 768 (reused from
``baselines.lavt.model``); DMMI adds ``transformer_fusion1`` (after the 1/16 block) and
``transformer_fusion2`` (after the 1/8 block).  Each is one post-norm ``nn.TransformerDecoderLayer``
(8 heads, FFN 2048, dropout 0.1, ReLU) in which every *pixel* is a query: self-attention over all
pixels of the map, then cross-attention to the words of the backbone's final language feature,
**padded words included** (the official code passes no key-padding mask).

Image-to-text decoder (§3.3.1, "Context Clue Recovery"): ``lan_func`` takes the 1/8 decoder map
(after a 3×3 conv-BN-ReLU) as memory and the *erased* sentence's BERT features as queries; the
output is the reconstructed text embedding Ê.  The official code uses the 1/8 decoder map, not
V4* as §3.3.1 writes.  ``crossfuse1/2`` pool the 1/16, 1/8 and 1/4 decoder maps into the visual
vector V_o of the contrastive loss (§3.3.2).  Both branches only feed the training losses.

State-dict layout (``classifier.*`` in the official checkpoints): ``conv{1,2}_{4,3,2}``,
``bn{1,2}_{4,3,2}``, ``conv1_1``, ``transformer_fusion{1,2}.{decoder_layer, transformer_model.layers.0}``
(the unused template layer *and* its deep copy), ``lan_func.{conv1, bn1, decoder_layer,
transformer_model.layers.0}``, ``crossfuse{1,2}.linear``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.layers import map_to_tokens
from baselines.lavt.model import SimpleDecoding


def _transformer_pair(dim: int, heads: int, ffn: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """The official pattern: a template layer and a 1-layer ``TransformerDecoder`` holding its deep copy.

    Only the copy (``transformer_model.layers.0``) runs; the template (``decoder_layer``) is kept
    because the official checkpoints store it (strict loading needs it).
    """
    layer = nn.TransformerDecoderLayer(dim, heads, dim_feedforward=ffn, dropout=dropout, activation="relu",
                                       batch_first=True, norm_first=False)
    return layer, nn.TransformerDecoder(layer, num_layers=1)


def _attention(attn: nn.MultiheadAttention, query: torch.Tensor, key_value: torch.Tensor,
               self_attention: bool) -> torch.Tensor:
    """``attn(query, key_value, key_value, need_weights=False)[0]`` for batch-first inputs, computed
    with ``scaled_dot_product_attention`` on (B, heads, N, d) views of the packed projection.

    Same parameters and function as ``nn.MultiheadAttention`` (packed ``in_proj``, no masks, no
    bias_k/v); but torch's own module either takes its fused "fast path", which materialises the
    full (B·heads, N, N) score matrix (~830 MB for two 60×60 maps), or, under autocast, projects
    a strided (N, B, C) view whose matmul copies the projection weight once per pixel.  SDPA
    works on blocks of keys and never holds the scores (q, k, v are strided views of the packed
    projection; SDPA takes them as they are); dropout is SDPA's ``dropout_p``.
    """
    b, n, c = query.shape
    heads = attn.num_heads
    w, bias = attn.in_proj_weight, attn.in_proj_bias
    if self_attention:
        qkv = F.linear(query, w, bias).view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
    else:
        m = key_value.shape[1]
        q = F.linear(query, w[:c], bias[:c]).view(b, n, heads, c // heads).transpose(1, 2)
        kv = F.linear(key_value, w[c:], bias[c:]).view(b, m, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.dropout if attn.training else 0.0)
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, c))


def decoder_layer(layer: nn.TransformerDecoderLayer, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """``layer(tgt, memory)`` of a batch-first, post-norm ``nn.TransformerDecoderLayer`` without
    masks: self-attention, cross-attention to ``memory``, ReLU/GELU FFN, each ``norm(x + dropout(f(x)))``.

    tgt (B, N, C), memory (B, M, C) -> (B, N, C), computed by :func:`_attention` (no N×N scores).
    """
    x = tgt.contiguous()
    x = layer.norm1(x + layer.dropout1(_attention(layer.self_attn, x, x, True)))
    x = layer.norm2(x + layer.dropout2(_attention(layer.multihead_attn, x, memory.contiguous(), False)))
    hidden = layer.linear1(x)
    # ReLU in place on the (N, FFN)-sized hidden layer (its input is not needed again)
    hidden = F.relu(hidden, inplace=True) if layer.activation is F.relu else layer.activation(hidden)
    return layer.norm3(x + layer.dropout3(layer.linear2(layer.dropout(hidden))))


class TransformerFusion(nn.Module):
    """ψ of Eq. 7: pixels (queries) attend to each other, then to the words (memory)."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.decoder_layer, self.transformer_model = _transformer_pair(dim, heads, ffn, dropout)

    def forward(self, vis: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """vis (B, C, H, W), words (B, C, L) -> (B, C, H, W); padded words are attended (official)."""
        b, c, h, w = vis.shape
        out = decoder_layer(self.transformer_model.layers[0], map_to_tokens(vis), words.transpose(1, 2))
        return out.transpose(1, 2).reshape(b, c, h, w)


class ContextClueRecovery(nn.Module):
    """CCR (§3.3.1, official ``lan_func``): the erased sentence queries the visual map, Ê = D(E', V).

    ``conv1``/``bn1`` (3×3, bias-free) + ReLU project the decoder map to the language width; then
    one transformer decoder layer with the words as queries and the pixels as memory.
    """

    def __init__(self, vis_dim: int, lang_dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.decoder_layer, self.transformer_model = _transformer_pair(lang_dim, heads, ffn, dropout)
        self.conv1 = nn.Conv2d(vis_dim, lang_dim, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(lang_dim)

    def forward(self, vis: torch.Tensor, erased_words: torch.Tensor) -> torch.Tensor:
        """vis (B, C_v, H, W), erased_words (B, C_l, L) -> reconstructed words Ê (B, C_l, L)."""
        memory = map_to_tokens(F.relu(self.bn1(self.conv1(vis))))
        return decoder_layer(self.transformer_model.layers[0], erased_words.transpose(1, 2), memory).transpose(1, 2)


class CrossLayerFuse(nn.Module):
    """Official ``CrossLayerFuse``: ``linear(concat(previous vector, avg-pool(map)))``."""

    def __init__(self, prev_dim: int, map_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(prev_dim + map_dim, out_dim)

    def forward(self, previous: torch.Tensor, feature_map: torch.Tensor) -> torch.Tensor:
        """previous (B, C1), feature_map (B, C2, H, W) -> (B, out_dim)."""
        return self.linear(torch.cat([previous, feature_map.mean(dim=(2, 3))], dim=1))


@dataclass
class DecoderOutput:
    """What the decoders produce.

    Attributes:
        logits: (B, 2, H/4, W/4) class scores (background, foreground) at stride 4.
        pooled: (B, C_l) visual vector V_o of the contrastive loss (training branch only).
        reconstructed: (B, C_l, L) CCR reconstruction Ê of the erased sentence (training only).
    """

    logits: torch.Tensor
    pooled: torch.Tensor | None = None
    reconstructed: torch.Tensor | None = None


class DMMIDecoder(SimpleDecoding):
    """Text-to-image decoder (Eq. 7) plus the training-only image-to-text branch (official ``Decoder``).

    Args:
        stage_dims: channels of V1*..V4* (Swin-B 128..1024; ResNet-101 256..2048).
        hidden: decoder width (768 = the language width in the official code).
        lang_dim: language width C_l.
        heads, ffn, dropout: of every transformer decoder layer.
    """

    def __init__(self, stage_dims: tuple[int, ...], hidden: int, lang_dim: int, heads: int = 8,
                 ffn: int = 2048, dropout: float = 0.1) -> None:
        super().__init__(stage_dims, hidden)
        self.transformer_fusion1 = TransformerFusion(hidden, heads, ffn, dropout)
        self.crossfuse1 = CrossLayerFuse(hidden, hidden, lang_dim)
        self.transformer_fusion2 = TransformerFusion(hidden, heads, ffn, dropout)
        self.lan_func = ContextClueRecovery(hidden, lang_dim, heads, ffn, dropout)
        self.crossfuse2 = CrossLayerFuse(lang_dim, hidden, lang_dim)

    def forward(self, y4: torch.Tensor, y3: torch.Tensor, y2: torch.Tensor, y1: torch.Tensor,
                words: torch.Tensor, erased_words: torch.Tensor | None = None) -> DecoderOutput:
        """Stage maps (B, C_i, H_i, W_i) coarsest first and the final words (B, C_l, L).

        With ``erased_words`` (B, C_l, L) the image-to-text branch also runs and the output
        carries ``pooled`` and ``reconstructed``; without it only the mask path runs.
        """
        train_branch = erased_words is not None
        y4, y3, y2, y1 = self.channels_last(y4, y3, y2, y1)  # (and the pixel tokens come out contiguous)
        x = self._fuse(y4, y3, "4")                      # φ(Y4, V3*), 1/16
        pooled = x.mean(dim=(2, 3)) if train_branch else None
        x = self.transformer_fusion1(x, words)           # ψ1 -> Y3
        x = self._fuse(x, y2, "3")                       # φ(Y3, V2*), 1/8
        reconstructed = None
        if train_branch:
            reconstructed = self.lan_func(x, erased_words)
            pooled = self.crossfuse1(pooled, x)
        x = self.transformer_fusion2(x, words)           # ψ2 -> Y2
        if not train_branch:
            return DecoderOutput(self.finest(x, y1))      # φ(Y2, V1*) at 1/4, then conv1_1
        x = self._fuse(x, y1, "2")                       # φ(Y2, V1*), 1/4
        pooled = self.crossfuse2(pooled, x)
        return DecoderOutput(self.conv1_1(x).contiguous(), pooled, reconstructed)
