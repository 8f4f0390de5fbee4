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
from typing import NamedTuple

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


def _planar_sizes(spatial_shapes: list[tuple[int, int]], n_points: int, device: torch.device) -> torch.Tensor:
    """(2, L·P) float32: row 0 the width, row 1 the height of each sample's level (the layout of
    :func:`gather_samples`'s coordinates: x of all L·P samples, then y)."""
    wh = torch.tensor([[w for _, w in spatial_shapes], [h for h, _ in spatial_shapes]], dtype=torch.float32,
                      device=device)
    return wh[:, :, None].expand(-1, -1, n_points).reshape(2, -1)


def ms_deform_attn_sample(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                          sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """The deformable-attention core: bilinear samples weighted and summed per head.

    Computes what ``grid_sample`` (bilinear, zero padding, ``align_corners=False``) per level,
    followed by the attention-weighted sum over levels and points, computes (the official
    pure-PyTorch path); see :func:`value_table` and
    :func:`gather_samples` for how.

    Args:
        value: (B, S, M, D) per-head values of all levels, flattened level after level.
        spatial_shapes: ``[(H_l, W_l)]`` of the L levels (sum H_l·W_l = S).
        sampling_locations: (B, Q, M, L, P, 2) normalized (x, y) in [0, 1].
        attention_weights: (B, Q, M, L, P), softmax-normalized over L·P.

    Returns:
        (B, Q, M·D) attended values, heads concatenated, in the dtype of ``value``.
    """
    b, q, m, n_levels, n_points, _ = sampling_locations.shape
    planar = sampling_locations.float().permute(0, 1, 2, 5, 3, 4).reshape(b, q, m, 2, n_levels * n_points)
    size = _planar_sizes(spatial_shapes, n_points, planar.device)
    pixels = torch.addcmul(size.new_tensor(-0.5), planar, size)               # x = loc_x·W − 0.5
    attention = attention_weights.float().reshape(b, q, m, n_levels * n_points)
    inference = not (torch.is_grad_enabled() and (attention.requires_grad or pixels.requires_grad
                                                   or value.requires_grad))
    workspace = {} if inference else None                                      # {}: in place, not kept
    table = value_table(value, spatial_shapes, workspace)
    return gather_samples(table, n_points, pixels, attention, 0, workspace).to(table.dtype)


class ValueTable(NamedTuple):
    """The per-head values of every level with a zero border, as rows of one float32 table.

    ``rows`` is (B·T·M, D): row ``(b·T + t)·M + head`` holds the D values of bordered pixel t
    of image b, where level l occupies bordered pixels ``starts[l]`` to ``starts[l] + (H_l + 3)·
    (W_l + 3)`` (1 border pixel before and 2 after each axis).  ``pixels_per_image`` is T.
    """
    rows: torch.Tensor
    shapes: list[tuple[int, int]]
    starts: list[int]
    widths: list[int]
    pixels_per_image: int
    dtype: torch.dtype  # of the values before they were tabled (float32 in the table)


def value_table(value: torch.Tensor, spatial_shapes: list[tuple[int, int]], workspace: dict | None = None
                ) -> ValueTable:
    """:class:`ValueTable` of ``value`` (B, S, M, D), flattened level after level.  With a
    ``workspace`` (inference only), the table lives in it and is rewritten in place: its borders
    were zeroed once and stay zero."""
    b, s, m, d = value.shape
    starts, widths, offset = [], [], 0
    for h, w in spatial_shapes:
        starts.append(offset)
        widths.append(w + 3)
        offset += (h + 3) * (w + 3)
    levels = value.split([h * w for h, w in spatial_shapes], dim=1)
    if workspace is not None:  # interiors written into a zeroed (reused) table; the borders stay zero
        table = _buffer(workspace, "table", (b, offset, m * d), torch.float32, value.device, zero=True)
        for (h, w), st, v in zip(spatial_shapes, starts, levels):
            level = table[:, st:st + (h + 3) * (w + 3)].view(b, h + 3, w + 3, m * d)
            level[:, 1:h + 1, 1:w + 1].copy_(v.reshape(b, h, w, m * d))
    else:
        table = torch.cat([F.pad(v.reshape(b, h, w, m * d), (0, 0, 1, 2, 1, 2)).reshape(b, (h + 3) * (w + 3), m * d)
                           for (h, w), v in zip(spatial_shapes, levels)], dim=1).float()
    return ValueTable(table.reshape(b * offset * m, d), list(spatial_shapes), starts, widths, offset, value.dtype)


def _buffer(workspace: dict | None, kind: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
            zero: bool = False) -> torch.Tensor:
    """A fresh tensor, or (with a workspace) the one kept in ``workspace`` under this kind, shape,
    dtype and device (fresh pages cost more than the arithmetic on them)."""
    key = (kind, shape, dtype, device)
    if workspace is not None and key in workspace:
        return workspace[key]
    t = torch.zeros(shape, dtype=dtype, device=device) if zero else torch.empty(shape, dtype=dtype, device=device)
    if workspace is not None:
        workspace[key] = t
    return t


def gather_samples(table: ValueTable, n_points: int, pixels: torch.Tensor, attention: torch.Tensor,
                   first_image: int = 0, workspace: dict | None = None) -> torch.Tensor:
    """The bilinear samples of ``table``, weighted by ``attention`` and summed per query and head.

    Args:
        table: from :func:`value_table`.
        n_points: P, sampled points per head and level.
        pixels: (b, Q, M, 2, L·P) float32 planar pixel coordinates of queries of the b images
            ``first_image`` .. ``first_image + b - 1`` of the table (x of every sample, then y;
            pixel centres at integers, ``x = loc_x·W − 0.5``).
        attention: (b, Q, M, L·P) float32, softmax-normalized over L·P.
        workspace: inference only: buffers are reused from it, and ``pixels`` is overwritten.

    Returns:
        (b, Q, M·D) float32.

    One weighted gather: every query-head sums ``4·L·P`` rows (the four bilinear corners of each
    sample) of the table, each row weighted by bilinear weight × attention weight
    (``F.embedding_bag``, mode ``sum``).  No (Q, L·P, D) sample tensor is materialised, which is
    where the official path spends its time and memory.  Coordinates are clamped to
    ``[−1, W]``: outside that range every corner falls on the zero border, so the clamp changes
    nothing, and the corners ``floor(x)``, ``floor(x) + 1`` always index the bordered table.
    """
    b, q, m = pixels.shape[:3]
    lp = pixels.shape[-1]
    dev = pixels.device
    inference = workspace is not None
    rows_all = table.rows.shape[0]
    idx = torch.int32 if rows_all < 2 ** 31 - 8 * max(table.widths) * m else torch.int64

    size = _planar_sizes(table.shapes, n_points, dev)                         # (2, L·P)
    if inference:                                                              # in place
        xy = pixels.clamp_(min=size.new_tensor(-1.0), max=size)
        corner = torch.floor(xy, out=_buffer(workspace, "corner", tuple(xy.shape), torch.float32, dev))
        frac = xy.sub_(corner)
        corner = _buffer(workspace, "corner_index", tuple(xy.shape), idx, dev).copy_(corner)
    else:
        xy = torch.minimum(pixels, size).clamp(min=-1.0)
        corner = xy.floor()
        frac = xy - corner
        corner = corner.to(idx)
    cx, cy = corner[:, :, :, 0], corner[:, :, :, 1]                            # (b, Q, M, L·P)
    fx, fy = frac[:, :, :, 0], frac[:, :, :, 1]

    def per_sample(values: list[int]) -> torch.Tensor:                        # (L·P,) level constant
        return torch.tensor(values, dtype=idx, device=dev)[:, None].expand(-1, n_points).reshape(-1)

    # row of the top-left corner: ((i·T + start_l + (y + 1)·W'_l + x + 1)·M + head
    per_image = table.pixels_per_image * m
    const = (per_sample([st + w + 1 for st, w in zip(table.starts, table.widths)]) * m
             + (torch.arange(first_image, first_image + b, dtype=idx, device=dev) * per_image).view(b, 1, 1, 1)
             + torch.arange(m, dtype=idx, device=dev).view(1, 1, m, 1))        # (b, 1, M, L·P)
    down = per_sample(table.widths) * m                                        # one bordered row down

    rows = _buffer(workspace, "rows", (b, q, m, 4, lp), idx, dev)
    top_left = rows[:, :, :, 0]
    torch.mul(cy, down, out=top_left)
    top_left.add_(cx, alpha=m).add_(const)
    torch.add(top_left, m, out=rows[:, :, :, 1])
    torch.add(top_left, down, out=rows[:, :, :, 2])
    torch.add(rows[:, :, :, 2], m, out=rows[:, :, :, 3])
    # weights a·(1−fx)(1−fy), a·fx(1−fy), a·(1−fx)fy, a·fx·fy
    if not inference:
        bottom = attention * fy
        top = attention - bottom
        weights = torch.stack([top - fx * top, fx * top, bottom - fx * bottom, fx * bottom], dim=3)
    else:  # inference: written in place into one buffer
        weights = _buffer(workspace, "weights", (b, q, m, 4, lp), torch.float32, dev)
        w00, w01, w10, w11 = weights.unbind(3)
        torch.mul(attention, fy, out=w10)                                      # bottom = a·fy
        torch.sub(attention, w10, out=w00)                                     # top = a − a·fy
        torch.mul(fx, w00, out=w01)
        w00.sub_(w01)
        torch.mul(fx, w10, out=w11)
        w10.sub_(w11)
    with torch.autocast(device_type=dev.type, enabled=False):
        out = F.embedding_bag(rows.view(-1, 4 * lp), table.rows, per_sample_weights=weights.view(-1, 4 * lp),
                              mode="sum")
    return out.view(b, q, -1)


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
        # output features of sampling_offsets are ordered (head, level, point, xy); this order
        # puts them (head, xy, level, point)
        order = torch.arange(n_heads * n_levels * n_points * 2).view(n_heads, n_levels, n_points, 2)
        self.register_buffer("_planar_rows", order.permute(0, 3, 1, 2).reshape(-1), persistent=False)
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
                spatial_shapes: list[tuple[int, int]], padding_mask: torch.Tensor | None = None,
                workspace: dict | None = None) -> torch.Tensor:
        """Attend from queries to the multi-scale value map.

        Args:
            query: (B, Q, C) queries (content + position embedding).
            reference_points: (B or 1, Q, L, 2) normalized (x, y) reference point per level.
            value_input: (B, S, C) flattened multi-scale features, level after level.
            spatial_shapes: ``[(H_l, W_l)]`` of the levels (sum H_l·W_l = S).
            padding_mask: (B, S) True on padded positions (their values are zeroed), or None.
            workspace: a dict that successive calls on inputs of the same size may share, to reuse
                the sampling buffers (inference only; the encoder passes one for its layers).

        Returns:
            (B, Q, C).
        """
        grad = torch.is_grad_enabled()
        workspace = ({} if workspace is None else workspace) if not grad else None
        values = self.values(value_input, spatial_shapes, padding_mask, workspace)
        return self.attend(query, reference_points, values, 0, workspace)

    def values(self, value_input: torch.Tensor, spatial_shapes: list[tuple[int, int]],
               padding_mask: torch.Tensor | None = None, workspace: dict | None = None) -> ValueTable:
        """The projected values as a :class:`ValueTable` (value_input (B, S, C); see ``forward``),
        which :meth:`attend` reads for any slice of the queries."""
        b, s, _ = value_input.shape
        if s != sum(h * w for h, w in spatial_shapes) or len(spatial_shapes) != self.n_levels:
            raise ValueError(f"value of length {s} does not match {self.n_levels} levels of shapes {spatial_shapes}")
        value = self.value_proj(value_input)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(b, s, self.n_heads, self.d_model // self.n_heads)
        return value_table(value, spatial_shapes, workspace)

    def attend(self, query: torch.Tensor, reference_points: torch.Tensor, values: ValueTable,
               first_image: int = 0, workspace: dict | None = None) -> torch.Tensor:
        """(b, Q, C) attended output for queries (b, Q, C) of images ``first_image`` ..
        ``first_image + b - 1`` of ``values``; reference_points (b or 1, Q, L, 2).  ``workspace``:
        inference only (buffers reused, intermediates overwritten)."""
        b, q, _ = query.shape
        lp = self.n_levels * self.n_points
        # offsets (b, Q, M, L, P, 2) in the checkpoint's row order; permuting the rows of the
        # projection gives them planar, (b, Q, M, 2, L·P): x of every sample, then y
        # one projection of the query for both (one GEMM, one autocast cast of the query)
        n_off = self.sampling_offsets.out_features
        proj = F.linear(query, torch.cat([self.sampling_offsets.weight[self._planar_rows], self.attention_weights.weight]),
                        torch.cat([self.sampling_offsets.bias[self._planar_rows], self.attention_weights.bias])).float()
        offsets = proj[..., :n_off].unflatten(-1, (self.n_heads, 2, lp))
        weights = proj[..., n_off:].unflatten(-1, (self.n_heads, lp)).softmax(-1)
        # offsets are in pixels of each level: sample x = ref_x·W_l − 0.5 + offset_x (pixel centres
        # at integers); the official code forms (ref + offset / W_l)·W_l − 0.5, equal up to rounding
        size = _planar_sizes(values.shapes, self.n_points, query.device)
        ref = reference_points.float().transpose(2, 3)[:, :, None, :, :, None]            # (R, Q, 1, 2, L, 1)
        ref = ref.expand(-1, -1, -1, -1, -1, self.n_points).reshape(ref.shape[0], q, 1, 2, lp)
        ref_pixels = torch.addcmul(size.new_tensor(-0.5), ref, size)
        grad = torch.is_grad_enabled() and offsets.requires_grad
        pixels = offsets + ref_pixels if grad else offsets.add_(ref_pixels)
        with torch.autocast(device_type=query.device.type, enabled=False):
            out = gather_samples(values, self.n_points, pixels, weights, first_image, None if grad else workspace)
        return self.output_proj(out.to(values.dtype))
