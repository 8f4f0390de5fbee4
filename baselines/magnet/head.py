"""MagNet's mask head: Mask2Former's pixel decoder and masked-attention transformer decoder.

Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation", CVPR 2022
(§3.2 masked attention, §3.3 the multi-scale deformable-attention pixel decoder, §4 settings).
MagNet's supplementary §3: "exactly the same pixel decoder and Transformer decoder ... 4 layers,
hidden 256 ... 9 layers and 1 object query".  The released MagNet code takes them from the
"Mask2Former-Simplify" port; facts and key names from the official MagNet repository (yxchng/mask-grounding):

    pixel_decoder.{input_proj.{0..3}.{0: Conv1x1, 1: GroupNorm(32)}, transformer.level_embed (4, C),
                   transformer.encoder.layers.{0..3}.{self_attn.*, norm1, linear1, linear2, norm2},
                   mask_features (Conv1x1)}
    predictor.{transformer_{cross,self}_attention_layers.{i}.{multihead_attn|self_attn, norm},
               transformer_ffn_layers.{i}.{linear1, linear2, norm}, decoder_norm, query_feat,
               query_embed, level_embed, class_embed, mask_embed.layers.{0,1,2}}

All four backbone levels (strides 4..32) enter the deformable encoder, so there are no FPN
lateral/output convs; the stride-4 level of the encoder output gives the mask features, and the
three coarsest levels (strides 32, 16, 8) feed the decoder's cross-attention in turn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.msdeform_attn import MSDeformAttn, reference_points


@dataclass(frozen=True)
class HeadConfig:
    """Mask2Former head settings; defaults are MagNet's (supplementary §3, spec §2.4).

    Attributes:
        in_channels: backbone channels per level, finest first (Swin-B: 128, 256, 512, 1024).
        conv_dim: pixel-decoder width (``input_proj`` output, deformable encoder d_model).
        mask_dim: channels of the per-pixel mask features.
        encoder_layers, encoder_heads, encoder_ffn, encoder_points: deformable encoder.
        hidden_dim, decoder_layers, decoder_heads, decoder_ffn: transformer decoder
            (``DEC_LAYERS`` 10 in the config = 9 layers + the prediction on the learnable queries).
        num_queries: object queries (1 in RIS: one target mask).
        num_classes: classes besides "no object" (``class_embed`` has num_classes + 1 outputs).
        feature_levels: how many of the coarsest encoder levels the decoder cycles through.
        group_norm_groups: groups of the ``input_proj`` GroupNorm.
    """

    in_channels: tuple[int, ...] = (128, 256, 512, 1024)
    conv_dim: int = 256
    mask_dim: int = 256
    encoder_layers: int = 4
    encoder_heads: int = 8
    encoder_ffn: int = 1024
    encoder_points: int = 4
    hidden_dim: int = 256
    decoder_layers: int = 9
    decoder_heads: int = 8
    decoder_ffn: int = 2048
    num_queries: int = 1
    num_classes: int = 1
    feature_levels: int = 3
    group_norm_groups: int = 32


def sine_position_embedding(batch: int, height: int, width: int, num_feats: int, device: torch.device,
                            temperature: float = 10000.0, scale: float = 2 * math.pi) -> torch.Tensor:
    """DETR's normalized sine position embedding, (B, 2·num_feats, H, W) float32.

    Row/column indices 1..H (1..W) are scaled to (0, 2π] (divided by the last index + 1e-6);
    channel pairs hold sin/cos at geometric frequencies; the first ``num_feats`` channels
    encode y, the last x.
    """
    ones = torch.ones(1, height, width, dtype=torch.float32, device=device)
    y = ones.cumsum(1)
    x = ones.cumsum(2)
    eps = 1e-6
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_x = x[..., None] / dim_t
    pos_y = y[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2).expand(batch, -1, -1, -1)


# -- pixel decoder ----------------------------------------------------------------------------------

class DeformableEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention, then a ReLU FFN (dropout 0 at eval).

    Without autograd the layer runs token block by token block (:attr:`inference_block` tokens of
    one image at a time) after projecting the values of all tokens once: every block's
    intermediates (sampling indices and weights, the 4x-wide FFN activation) stay in cache and
    in reused memory instead of passing through fresh full-size tensors.  Each token's output
    depends only on the values and on its own row, so the result is that of the whole-map path.
    """

    inference_block = 2048

    def __init__(self, d_model: int, ffn: int, n_levels: int, n_heads: int, n_points: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, ffn)
        self.linear2 = nn.Linear(ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, ref: torch.Tensor,
                shapes: list[tuple[int, int]], workspace: dict | None = None) -> torch.Tensor:
        """src, pos: (B, S, C); ref: (1 or B, S, L, 2).  -> (B, S, C).  ``workspace``: see MSDeformAttn."""
        if torch.is_grad_enabled():
            src = self.norm1(src + self.dropout(self.self_attn(src + pos, ref, src, shapes)))
            return self.norm2(src + self.dropout(self._ffn(src)))
        workspace = {} if workspace is None else workspace
        values = self.self_attn.values(src, shapes, workspace=workspace)
        out = None
        for i in range(src.shape[0]):
            ref_i = ref[i:i + 1] if ref.shape[0] > 1 else ref
            for start in range(0, src.shape[1], self.inference_block):
                end = min(start + self.inference_block, src.shape[1])
                x = src[i:i + 1, start:end]
                x = self.norm1(x + self.self_attn.attend(x + pos[i:i + 1, start:end], ref_i[:, start:end], values, i,
                                                         workspace))
                x = self.norm2(x + self._ffn(x))
                if out is None:
                    out = src.new_empty(src.shape, dtype=x.dtype)
                out[i:i + 1, start:end] = x
        return out

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x), inplace=True)))  # in place: no 4x-wide temporary


class DeformableEncoder(nn.Module):
    """Stack of :class:`DeformableEncoderLayer` with a learned per-level embedding (``level_embed``)."""

    def __init__(self, config: HeadConfig, n_levels: int) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(n_levels, config.conv_dim))
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([
            DeformableEncoderLayer(config.conv_dim, config.encoder_ffn, n_levels, config.encoder_heads,
                                   config.encoder_points) for _ in range(config.encoder_layers)])
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.encoder.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: list[torch.Tensor], pos: list[torch.Tensor]) -> list[torch.Tensor]:
        """srcs, pos: per level (B, C, H_l, W_l), coarsest first.  -> encoded maps, same shapes."""
        shapes = [tuple(s.shape[-2:]) for s in srcs]
        flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], dim=1)
        flat_pos = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
                              for lvl, p in enumerate(pos)], dim=1)
        ref = reference_points(shapes, device=flat.device)
        workspace: dict = {}  # the layers' sampling buffers, allocated once
        for layer in self.encoder.layers:
            flat = layer(flat, flat_pos, ref, shapes, workspace=workspace)
        b, _, c = flat.shape
        parts = flat.split([h * w for h, w in shapes], dim=1)
        return [z.transpose(1, 2).reshape(b, c, h, w) for z, (h, w) in zip(parts, shapes)]


class PixelDecoder(nn.Module):
    """Mask2Former's ``MSDeformAttnPixelDecoder`` with every backbone level in the deformable encoder.

    ``forward`` returns the mask features (B, mask_dim, H/4, W/4) and the ``feature_levels``
    coarsest encoded maps (coarsest first) for the transformer decoder.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        # level order is coarsest first: input_proj.0 takes the stride-32 map
        self.input_proj = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c, config.conv_dim, kernel_size=1),
                          nn.GroupNorm(config.group_norm_groups, config.conv_dim))
            for c in reversed(config.in_channels)])
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        self.transformer = DeformableEncoder(config, len(config.in_channels))
        self.mask_features = nn.Conv2d(config.conv_dim, config.mask_dim, kernel_size=1)
        nn.init.kaiming_uniform_(self.mask_features.weight, a=1)  # detectron2 c2_xavier_fill
        nn.init.zeros_(self.mask_features.bias)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """features: backbone maps finest first, (B, C_i, H/4/2^i, W/4/2^i)."""
        srcs, pos = [], []
        for idx, x in enumerate(reversed(features)):
            x = x.float()  # the deformable encoder runs in float32 (official: "does not support half")
            srcs.append(self.input_proj[idx](x))
            b, _, h, w = x.shape
            pos.append(sine_position_embedding(b, h, w, self.config.conv_dim // 2, x.device))
        encoded = self.transformer(srcs, pos)
        return self.mask_features(encoded[-1]), encoded[:self.config.feature_levels]


# -- transformer decoder ----------------------------------------------------------------------------

class CrossAttentionLayer(nn.Module):
    """Post-norm masked cross-attention of the queries over one feature level (dropout 0)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, n_heads, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, attn_mask: torch.Tensor | None,
                pos: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        """Sequence-first: tgt (Q, B, C), memory/pos (HW, B, C), attn_mask (B·heads, Q, HW) bool."""
        out = self.multihead_attn(tgt + query_pos, memory + pos, memory, attn_mask=attn_mask, need_weights=False)[0]
        return self.norm(tgt + out)


class SelfAttentionLayer(nn.Module):
    """Post-norm self-attention among the queries (dropout 0)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])


class FFNLayer(nn.Module):
    """Post-norm ReLU feed-forward block (dropout 0)."""

    def __init__(self, d_model: int, ffn: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, ffn)
        self.linear2 = nn.Linear(ffn, d_model)
        self.norm = nn.LayerNorm(d_model)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (Mask2Former's ``mask_embed``: 3 layers)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, num_layers: int) -> None:
        super().__init__()
        dims = [d_in] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [d_out]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


@dataclass
class HeadPrediction:
    """One prediction of the decoder: class logits (B, Q, K+1) and mask logits (B, Q, H/4, W/4)."""

    logits: torch.Tensor
    masks: torch.Tensor


class MaskedAttentionDecoder(nn.Module):
    """Mask2Former's ``MultiScaleMaskedTransformerDecoder`` (§3.2, masked attention).

    Each layer: cross-attention of the queries over one level (cycling coarsest -> finer), masked
    to where the previous prediction has sigmoid >= 0.5 (a query whose mask would be empty
    attends everywhere), then self-attention, then an FFN.  A prediction (class logits + mask
    logits = mask_embed(query) · mask_features) is made before the first layer and after each.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        d, n = config.hidden_dim, config.decoder_layers
        self.num_heads = config.decoder_heads
        heads = config.decoder_heads
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(d, heads) for _ in range(n))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(d, heads) for _ in range(n))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(d, config.decoder_ffn) for _ in range(n))
        self.decoder_norm = nn.LayerNorm(d)
        self.query_feat = nn.Embedding(config.num_queries, d)
        self.query_embed = nn.Embedding(config.num_queries, d)
        self.level_embed = nn.Embedding(config.feature_levels, d)
        # ``input_proj`` is identity (in_channels == hidden_dim): empty Sequentials, no keys
        self.class_embed = nn.Linear(d, config.num_classes + 1)
        self.mask_embed = MLP(d, d, config.mask_dim, 3)

    def prediction(self, output: torch.Tensor, mask_features: torch.Tensor,
                   target_size: tuple[int, int]) -> tuple[HeadPrediction, torch.Tensor]:
        """Predict from the queries (Q, B, C); also the boolean attention mask (B·heads, Q, h·w)
        for the next layer (True = blocked), from the mask logits resized bilinearly
        (align_corners=False) to ``target_size``."""
        decoded = self.decoder_norm(output).transpose(0, 1)  # (B, Q, C)
        logits = self.class_embed(decoded)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        small = F.interpolate(masks, size=target_size, mode="bilinear", align_corners=False)
        blocked = small.sigmoid().flatten(2) < 0.5  # (B, Q, h·w)
        blocked = blocked.unsqueeze(1).expand(-1, self.num_heads, -1, -1).flatten(0, 1)
        return HeadPrediction(logits, masks), blocked.detach()

    def forward(self, features: list[torch.Tensor], mask_features: torch.Tensor) -> list[HeadPrediction]:
        """features: ``feature_levels`` maps (B, C, h, w), coarsest first; mask_features
        (B, mask_dim, H/4, W/4).  Returns decoder_layers + 1 predictions, the last being final."""
        b = mask_features.shape[0]
        sizes = [tuple(f.shape[-2:]) for f in features]
        device_type = mask_features.device.type
        if torch.is_autocast_enabled(device_type) and not torch.is_grad_enabled():
            # the 10 predictions' einsum would cast the (B, C, H/4, W/4) mask features every time
            mask_features = mask_features.to(torch.get_autocast_dtype(device_type))
        src, pos = [], []
        for i, f in enumerate(features):
            pe = sine_position_embedding(b, f.shape[-2], f.shape[-1], self.config.hidden_dim // 2, f.device)
            # contiguous (HW, B, C): the attention's input projection of a strided view, under
            # autocast, runs as a batched matmul that copies its weight once per pixel
            pos.append(pe.flatten(2).permute(2, 0, 1).to(f.dtype).contiguous())
            src.append((f.flatten(2) + self.level_embed.weight[i][None, :, None]).permute(2, 0, 1).contiguous())
        # repeat (a copy), not expand: a view of a parameter made under no_grad still requires grad
        # but has no grad_fn, which module hooks (e.g. FlopCounterMode's tracker) reject
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, b, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, b, 1)
        pred, blocked = self.prediction(output, mask_features, sizes[0])
        predictions = [pred]
        for i in range(self.config.decoder_layers):
            level = i % len(features)
            # a query whose mask blocks every position attends everywhere instead
            blocked = blocked & ~blocked.all(-1, keepdim=True)
            output = self.transformer_cross_attention_layers[i](output, src[level], blocked, pos[level], query_pos)
            output = self.transformer_self_attention_layers[i](output, query_pos)
            output = self.transformer_ffn_layers[i](output)
            pred, blocked = self.prediction(output, mask_features, sizes[(i + 1) % len(features)])
            predictions.append(pred)
        return predictions


class MaskDecoderHead(nn.Module):
    """The ``classifier`` of MagNet: pixel decoder + masked-attention decoder.

    ``forward(features)`` takes the four backbone maps (finest first) and returns every
    prediction of the decoder (the last is the output; the others are auxiliary) together with
    the mask features (used by the alignment loss) and the decoder's input levels.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.pixel_decoder = PixelDecoder(config)
        self.predictor = MaskedAttentionDecoder(config)

    def forward(self, features: list[torch.Tensor]) -> dict:
        mask_features, levels = self.pixel_decoder(features)
        predictions = self.predictor(levels, mask_features)
        return {"pred_logits": predictions[-1].logits, "pred_masks": predictions[-1].masks,
                "predictions": predictions, "mask_features": mask_features, "levels": levels}
