"""The segmentation decoder of MERES (§3.3).

"At each decoder stage, the cross-attention layer, which uses the vision features as the query
and the guidance tokens as the key-value, is employed to highlight the target regions. The
vision decoder features are then upsampled and concatenated with the corresponding vision
encoder features to feed into the next decoder stage. The final segmentation map is projected to
a binary class mask by a linear projection layer."

Stage i (i = 4, 3, 2, 1; coarsest first)::

    x_4 = CA(fuse_4(F_4), G)
    x_i = CA(fuse_i([up(x_{i+1}), F_i]), G)        up: bilinear to F_i's size, [·,·]: channel concat
    logits = Linear(x_1)                            1 channel ("binary class mask") at stride 4

with G = {Q̂_l, Q̂_v} (or an ablation's guidance set) as keys/values, padded tokens excluded.
Not stated in the paper, chosen here: ``fuse_i`` is a 3×3 conv + GroupNorm + ReLU from the
concatenated channels to the stage width (cross-attention mixes no neighbouring pixels, and the
upsampled map must be blended with the skip features somewhere), the cross-attention layer is a
pre-norm cross-attention + MLP block (:class:`~baselines.meres.blocks.CrossAttentionBlock`) with a
sine position code on the pixel queries, and the widths are ``config.decoder_dims``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.layers import map_to_tokens, tokens_to_map
from baselines.meres.blocks import CrossAttentionBlock, sine_position_encoding
from baselines.meres.config import MERESConfig


class DecoderStage(nn.Module):
    """One stage: [upsample + concatenate skip] -> 3×3 conv-GN-ReLU -> cross-attention to G."""

    def __init__(self, in_dim: int, skip_dim: int, dim: int, guidance_dim: int, config: MERESConfig) -> None:
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(in_dim + skip_dim, dim, 3, padding=1, bias=False),
                                  nn.GroupNorm(config.decoder_norm_groups, dim), nn.ReLU(inplace=True))
        self.cross_attn = CrossAttentionBlock(dim, guidance_dim, config.decoder_heads, config.mlp_ratio,
                                              config.dropout)
        self.position_encoding = config.position_encoding

    def forward(self, previous: torch.Tensor | None, skip: torch.Tensor, guidance: torch.Tensor,
                guidance_mask: torch.Tensor) -> torch.Tensor:
        """previous (B, C_prev, h, w) or None (stage 4), skip F_i (B, C_i, H, W),
        guidance (B, G, D), guidance_mask (B, G) bool -> (B, dim, H, W)."""
        if previous is not None:
            previous = F.interpolate(previous, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            skip = torch.cat([previous, skip], dim=1)
        x = self.fuse(skip)
        b, c, h, w = x.shape
        pos = sine_position_encoding(h, w, c, x.device, x.dtype) if self.position_encoding else None
        tokens = self.cross_attn(map_to_tokens(x), guidance, guidance_mask[:, None, :], query_pos=pos)
        return tokens_to_map(tokens, h, w)


class SegmentationDecoder(nn.Module):
    """§3.3: four guided stages from F_4 to F_1 and the final linear projection to 1 channel.

    Args:
        stage_dims: encoder widths (C_1, C_2, C_3, C_4).
        guidance_dim: width D of the guidance tokens.
        config: decoder widths / heads / norm groups.
    """

    def __init__(self, stage_dims: tuple[int, ...], guidance_dim: int, config: MERESConfig) -> None:
        super().__init__()
        skips = list(reversed(stage_dims))                 # C_4, C_3, C_2, C_1
        dims = list(config.decoder_dims)                   # stage 4 first
        ins = [0] + dims[:-1]
        self.stages = nn.ModuleList(DecoderStage(i, s, d, guidance_dim, config) for i, s, d in zip(ins, skips, dims))
        self.classifier = nn.Conv2d(dims[-1], 1, 1)        # per-pixel linear projection (1×1 conv)

    def forward(self, features: list[torch.Tensor], guidance: torch.Tensor,
                guidance_mask: torch.Tensor) -> torch.Tensor:
        """features [F_1, F_2, F_3, F_4] (B, C_i, H_i, W_i), guidance (B, G, D), mask (B, G) bool
        -> logits (B, 1, H_1, W_1)."""
        x = None
        for stage, skip in zip(self.stages, reversed(features)):
            x = stage(x, skip, guidance, guidance_mask)
        return self.classifier(x)
