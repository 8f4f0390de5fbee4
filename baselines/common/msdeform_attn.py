"""Multi-scale deformable attention (Zhu et al., "Deformable DETR", ICLR 2021, §4.1, Eq. 3), plain PyTorch.

Each query looks at ``n_points`` sampled locations per head and per feature level around its
reference point; the locations are the reference point plus learned offsets (in pixels of the
level, divided by the level's width/height), the values are read with bilinear interpolation
(``grid_sample``, zero padding, ``align_corners=False``), and a softmax over the
``n_levels * n_points`` samples of a head weights them:

    MSDeformAttn(z_q, p_q, {x_l}) = W_o [ sum_l sum_k A_{qlk} · W_v x_l(p_q + Δp_{qlk}) ]_heads

This is the reference formulation that Mask2Former's pixel decoder falls back to without its
CUDA extension; it runs on any device.  Key names are the Deformable-DETR / Mask2Former ones:
``sampling_offsets``, ``attention_weights``, ``value_proj``, ``output_proj``.

Sampling is always computed in float32 (autocast disabled), as the CUDA kernel's
``cast_inputs=float32`` does: bf16 sampling locations would be off by up to a pixel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def level_start_index(spatial_shapes: torch.Tensor) -> torch.Tensor:
    """(L,) int64 offset of each level in the flattened sequence, from (L, 2) (H, W) shapes."""
    areas = spatial_shapes.prod(1)
    return torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])


def reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device | None = None) -> torch.Tensor:
    """(1, sum H_l·W_l, L, 2) normalized (x, y) pixel centres of every level, repeated for each level.

    Pixel (i, j) of an H×W level has centre ((j + 0.5) / W, (i + 0.5) / H).  Without padding all
    valid ratios are 1, so the same point is used on every level (Deformable DETR encoder).
    """
    points = []
    for h, w in spatial_shapes:
        ys, xs = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device), indexing="ij")
        points.append(torch.stack([xs.reshape(-1) / w, ys.reshape(-1) / h], dim=-1))
    ref = torch.cat(points, dim=0)[None]  # (1, S, 2)
    return ref[:, :, None, :].expand(-1, -1, len(spatial_shapes), -1)


def ms_deform_attn_sample(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                          sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """The deformable-attention core: bilinear samples weighted and summed per head.

    Args:
        value: (B, S, M, D) per-head values of all levels, flattened level after level.
        spatial_shapes: ``[(H_l, W_l)]`` of the L levels (sum H_l·W_l = S).
        sampling_locations: (B, Q, M, L, P, 2) normalized (x, y) in [0, 1].
        attention_weights: (B, Q, M, L, P), softmax-normalized over L·P.

    Returns:
        (B, Q, M·D) attended values, heads concatenated.
    """
    b, _, m, d = value.shape
    _, q, _, n_levels, n_points, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2.0 * sampling_locations - 1.0  # grid_sample's [-1, 1] convention
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * m, d, h, w)  # (B·M, D, H, W)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # (B·M, Q, P, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # (B·M, D, Q, L·P)
    weights = attention_weights.transpose(1, 2).reshape(b * m, 1, q, n_levels * n_points)
    out = (stacked * weights).sum(-1)  # (B·M, D, Q)
    return out.view(b, m * d, q).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention.

    Args:
        d_model: channels of queries and values.
        n_levels: feature levels attended to.
        n_heads: heads (``d_model`` must be divisible by it).
        n_points: sampled points per head and level.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR init: offsets start on a ring of directions (one per head, growing
        with the point index), attention starts uniform, projections Xavier-uniform."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, value_input: torch.Tensor,
                spatial_shapes: list[tuple[int, int]], padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from queries to the multi-scale value map.

        Args:
            query: (B, Q, C) queries (content + position embedding).
            reference_points: (B or 1, Q, L, 2) normalized (x, y) reference point per level.
            value_input: (B, S, C) flattened multi-scale features, level after level.
            spatial_shapes: ``[(H_l, W_l)]`` of the levels (sum H_l·W_l = S).
            padding_mask: (B, S) True on padded positions (their values are zeroed), or None.

        Returns:
            (B, Q, C).
        """
        b, q, _ = query.shape
        s = value_input.shape[1]
        if s != sum(h * w for h, w in spatial_shapes) or len(spatial_shapes) != self.n_levels:
            raise ValueError(f"value of length {s} does not match {self.n_levels} levels of shapes {spatial_shapes}")
        value = self.value_proj(value_input)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(b, s, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(b, q, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(b, q, self.n_heads, self.n_levels * self.n_points)
        weights = weights.float().softmax(-1).view(b, q, self.n_heads, self.n_levels, self.n_points)
        # offsets are in pixels of each level: divide by (W_l, H_l) to get normalized units
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=torch.float32, device=query.device)
        locations = (reference_points.float()[:, :, None, :, None, :]
                     + offsets.float() / normalizer[None, None, None, :, None, :])
        with torch.autocast(device_type=query.device.type, enabled=False):
            out = ms_deform_attn_sample(value.float(), spatial_shapes, locations, weights)
        return self.output_proj(out.to(value.dtype))
