"""Swin Transformer backbone with the official key names, drivable stage by stage.

Liu et al., "Swin Transformer", ICCV 2021; the variant used by LAVT, MagNet and DMMI is the
semantic-segmentation one (windows padded for maps that are not multiples of the window,
``norm0..3`` output norms, no absolute position embedding).  Facts:
the official LAVT repository (yz93/LAVT-RIS) and Microsoft's Swin Transformer release.

Key names match the official checkpoints::

    patch_embed.{proj, norm}
    layers.{i}.blocks.{j}.{norm1, attn.{relative_position_bias_table, relative_position_index,
                          qkv, proj}, norm2, mlp.{fc1, fc2}}
    layers.{i}.<extras>            (e.g. LAVT's fusion / res_gate, added by the model)
    layers.{i}.downsample.{norm, reduction}   (i < last)
    norm{i}

Driving it stage by stage (what the language-fused models do)::

    x, h, w = swin.embed(images)                       # (B, H*W, C0) tokens
    for i, stage in enumerate(swin.layers):
        x = stage.forward_blocks(x, h, w)              # windowed attention blocks
        ...                                            # model-specific fusion on x
        out_i = swin.stage_output(i, x, h, w)          # norm{i}, then (B, C_i, H, W)
        x, h, w = stage.downsample_tokens(x, h, w)     # patch merging (identity at the end)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from baselines.common.layers import DropPath, init_transformer_weights, tokens_to_map
from refbench.core.errors import RefbenchError

# Value added to attention logits between tokens from different regions of a shifted window.
SHIFT_MASK_VALUE = -100.0


@dataclass(frozen=True)
class SwinConfig:
    """Swin hyper-parameters.  Defaults: Swin-B, window 12 (LAVT §4.1, ``--swin_type base --window12``).

    Attributes:
        embed_dim: channels of stage 0; stage i has ``embed_dim * 2**i``.
        depths, num_heads: blocks and attention heads per stage.
        window_size: side of the attention window; odd blocks shift by ``window_size // 2``.
        patch_size: side of the non-overlapping patch embedding (stride of stage 0).
        mlp_ratio: MLP hidden width / channels.
        drop_path_rate: stochastic depth, linearly increasing over all blocks (training only).
    """

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 12
    patch_size: int = 4
    in_chans: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.3
    patch_norm: bool = True

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} differ in length")
        for dim, heads in zip(self.stage_dims, self.num_heads):
            if dim % heads:
                raise ValueError(f"stage width {dim} is not divisible by {heads} heads")
        if self.window_size < 2:
            raise ValueError("window_size must be >= 2")

    @property
    def stage_dims(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2 ** i for i in range(len(self.depths)))

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(self.patch_size * 2 ** i for i in range(len(self.depths)))


def relative_position_index(window: int) -> torch.Tensor:
    """(window², window²) int64 index into the (2·window−1)² relative-position table.

    Entry [i, j] encodes the offset of token i from token j (row-major in the window) as
    ``(dy + window − 1) · (2·window − 1) + (dx + window − 1)``, as the official buffer does.
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N)
    return (rel[0] * (2 * window - 1) + rel[1]).to(torch.int64)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, Hp, Wp, C) -> (B·nW, window², C), windows in row-major order per image."""
    b, hp, wp, c = x.shape
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, batch: int, hp: int, wp: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B·nW, window², C) -> (B, Hp, Wp, C)."""
    c = windows.shape[-1]
    x = windows.view(batch, hp // window, wp // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, hp, wp, c)


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device: torch.device | None = None) -> torch.Tensor:
    """(nW, window², window²) additive mask for shifted-window attention on a padded Hp×Wp map.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to three
    regions per axis ([0, n−window), [n−window, n−shift), [n−shift, n)); tokens attend only
    within their region: 0 inside, −100 across regions (the official values).
    """

    def regions(n: int) -> torch.Tensor:
        r = torch.zeros(n, dtype=torch.int64, device=device)
        r[n - window:] = 1
        r[n - shift:] = 2
        return r

    ids = regions(hp)[:, None] * 3 + regions(wp)[None, :]
    ids = window_partition(ids[None, :, :, None], window).squeeze(-1)  # (nW, N)
    different = ids[:, :, None] != ids[:, None, :]
    return torch.where(different, SHIFT_MASK_VALUE, 0.0).to(torch.float32)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window with a learned relative-position bias.

    ``relative_position_index`` is a persistent buffer (it is in every official checkpoint).
    """

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.dim, self.window, self.num_heads = dim, window, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=True)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> torch.Tensor:
        """(heads, N, N) bias gathered from the table."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B·nW, N, C) window tokens; mask: (nW, N, N) additive or None.  Returns (B·nW, N, C)."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B·nW, heads, N, d)
        bias = self.relative_position_bias().unsqueeze(0)  # (1, heads, N, N)
        if q.dtype == torch.bfloat16 and q.device.type == "cpu" and not torch.is_grad_enabled():
            out = _bf16_window_attention(q, k, v, bias, mask, self.scale)
            return self.proj(out.transpose(1, 2).reshape(bw, n, c))
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias + mask.unsqueeze(1)).unsqueeze(0)  # (1, nW, heads, N, N)
            bias = bias.expand(bw // nw, -1, -1, -1, -1).reshape(bw, self.num_heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


def _bf16_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                           mask: torch.Tensor | None, scale: float, block: int = 64) -> torch.Tensor:
    """Window attention for bfloat16 q, k, v (B·nW, heads, N, d) on CPU, without autograd.

    torch's CPU flash-attention kernel is hardly faster in bfloat16 than in float32 for Swin's
    144-token windows (d = 32).  Here, per image and per ``block`` (window, head) pairs, one
    bfloat16 ``baddbmm`` forms the scores with the relative-position bias and shift mask folded
    in (one (nW·heads, N, N) bias shared by the images), a softmax (computed in float32 inside
    the kernel, rounded once to bfloat16) normalizes them, and one bfloat16 ``bmm`` applies them
    to the values: the (block, N, N) scores stay in cache and in reused memory.
    """
    bw, heads, n, d = q.shape
    with torch.autocast(device_type="cpu", enabled=False):
        if mask is None:  # one bias for every window
            groups, per = 1, bw
            full = bias.to(q.dtype).expand(bw, heads, n, n)
        else:             # bias + shift mask of each of the nW windows, shared by the images
            per = mask.shape[0]
            groups = bw // per
            full = (bias + mask.to(bias.dtype)[:, None]).to(q.dtype)
        full = full.reshape(per * heads, n, n)
        q, k, v = (t.reshape(groups, per * heads, n, d) for t in (q, k, v))
        out = torch.empty_like(q)
        for i in range(groups):
            for start in range(0, per * heads, block):
                end = min(start + block, per * heads)
                scores = torch.baddbmm(full[start:end], q[i, start:end], k[i, start:end].transpose(1, 2), alpha=scale)
                torch.bmm(torch.softmax(scores, dim=-1), v[i, start:end], out=out[i, start:end])
    return out.view(bw, heads, n, d)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP block.

    The map is zero-padded at the bottom/right to a multiple of the window *after* ``norm1``;
    padded tokens take part in attention like real ones (only the shift regions are masked),
    and are cropped away afterwards, exactly as the official segmentation Swin does.
    """

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, height: int, width: int, shift_mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, H*W, C) -> (B, H*W, C); ``shift_mask`` from :func:`shifted_window_mask` (used if shifted)."""
        b, n, c = x.shape
        ws = self.window
        y = self.norm1(x).view(b, height, width, c)
        pad_b, pad_r = (-height) % ws, (-width) % ws
        if pad_b or pad_r:
            y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = height + pad_b, width + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, ws), shift_mask if self.shift else None)
        y = window_reverse(y, ws, b, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        if pad_b or pad_r:
            y = y[:, :height, :width, :]
        x = x + self.drop_path(y.reshape(b, n, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches: Conv(k = s = patch) then LayerNorm over channels.

    Images whose sides are not multiples of the patch are zero-padded at the bottom/right.
    """

    def __init__(self, patch: int, in_chans: int, dim: int, norm: bool = True) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, 3, H, W) -> tokens (B, h*w, C), h, w with h = ceil(H / patch)."""
        pad_b, pad_r = (-images.shape[-2]) % self.patch, (-images.shape[-1]) % self.patch
        if pad_b or pad_r:
            images = F.pad(images, (0, pad_r, 0, pad_b))
        x = self.proj(images)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, h, w


class PatchMerging(nn.Module):
    """2×2 neighbourhood concat (4C) -> LayerNorm(4C) -> bias-free Linear 4C -> 2C.

    Odd maps are zero-padded at the bottom/right first; the output is ceil(H/2) × ceil(W/2).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, int, int]:
        b, _, c = x.shape
        x = x.view(b, height, width, c)
        if height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        # order (0,0), (1,0), (0,1), (1,1) as in the official code: it fixes the reduction's input layout
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        h2, w2 = x.shape[1], x.shape[2]
        return self.reduction(self.norm(x.reshape(b, h2 * w2, 4 * c))), h2, w2


class SwinStage(nn.Module):
    """One resolution of Swin: ``depth`` blocks (shift on odd blocks), extras, optional patch merging.

    ``extras`` are modules a multimodal model hangs on the stage (they get the ``layers.{i}.``
    key prefix, between ``blocks`` and ``downsample``, as in the official checkpoints); the
    stage itself never calls them.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float, qkv_bias: bool,
                 drop_paths: list[float], downsample: bool, extras: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.dim, self.window, self.shift = dim, window, window // 2
        self.blocks = nn.ModuleList([
            SwinBlock(dim, num_heads, window, 0 if j % 2 == 0 else window // 2, mlp_ratio, qkv_bias, drop_paths[j])
            for j in range(depth)])
        for name, module in (extras or {}).items():
            self.add_module(name, module)
        self.downsample = PatchMerging(dim) if downsample else None
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Run the attention blocks on (B, H*W, C) tokens of an H×W map."""
        mask = None
        if len(self.blocks) > 1:
            ws = self.window
            hp, wp = height + (-height) % ws, width + (-width) % ws
            mask = shifted_window_mask(hp, wp, ws, self.shift, x.device)
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, height, width, mask, use_reentrant=False)
            else:
                x = block(x, height, width, mask)
        return x

    def downsample_tokens(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, int, int]:
        """Patch merging to the next stage; the identity for the last stage."""
        if self.downsample is None:
            return x, height, width
        return self.downsample(x, height, width)


StageExtras = Callable[[int, int], Mapping[str, nn.Module]]


class SwinTransformer(nn.Module):
    """Hierarchical Swin backbone with per-stage output norms ``norm0..norm{S-1}``.

    Args:
        config: :class:`SwinConfig`.
        stage_extras: ``f(stage_index, stage_dim) -> {name: module}`` registered on each stage
            (LAVT: ``fusion`` + ``res_gate``).  The backbone's own :meth:`forward` ignores them.
    """

    def __init__(self, config: SwinConfig, stage_extras: StageExtras | None = None) -> None:
        super().__init__()
        self.config = config
        dims = config.stage_dims
        self.num_features = dims
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, config.embed_dim, config.patch_norm)
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths)).tolist()
        self.layers = nn.ModuleList()
        start = 0
        for i, (depth, heads) in enumerate(zip(config.depths, config.num_heads)):
            self.layers.append(SwinStage(
                dims[i], depth, heads, config.window_size, config.mlp_ratio, config.qkv_bias,
                rates[start:start + depth], downsample=i < len(dims) - 1,
                extras=stage_extras(i, dims[i]) if stage_extras else None))
            start += depth
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.init_weights()

    def init_weights(self) -> None:
        """Official random init: Linear weights ~ N(0, 0.02) truncated at ±2, biases 0, LayerNorm 1/0.

        Like the official builder, this runs over the extras too (so LAVT's language gates,
        zero-initialised in their constructor, end up N(0, 0.02) before pretrained Swin
        weights are loaded on top).
        """
        init_transformer_weights(self)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute block activations in backward (saves memory when training at 480²)."""
        for stage in self.layers:
            stage.grad_checkpointing = enabled

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, 3, H, W) normalized images -> stage-0 tokens (B, h*w, C0), h, w."""
        if images.dim() != 4 or images.shape[1] != self.config.in_chans:
            raise RefbenchError(f"images must be (B, {self.config.in_chans}, H, W), got {tuple(images.shape)}")
        return self.patch_embed(images)

    def stage_output(self, index: int, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``norm{index}`` over (B, H*W, C) tokens, returned as a (B, C, H, W) map."""
        return tokens_to_map(getattr(self, f"norm{index}")(x), height, width)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Vision-only features: per stage ``norm{i}`` of the block output, (B, C_i, H/s_i, W/s_i)."""
        x, h, w = self.embed(images)
        outs = []
        for i, stage in enumerate(self.layers):
            x = stage.forward_blocks(x, h, w)
            outs.append(self.stage_output(i, x, h, w))
            x, h, w = stage.downsample_tokens(x, h, w)
        return outs


def load_pretrained_swin(swin: SwinTransformer, path: str) -> list[str]:
    """Initialise ``swin`` from an ImageNet classification Swin checkpoint (e.g.
    ``swin_base_patch4_window12_384_22k.pth``), as the official training does (non-strict).

    Accepts ``{'model': sd}``, ``{'state_dict': sd}`` or a bare state dict, with optional
    ``module.``/``backbone.`` prefixes.  Drops the classifier ``head.*``, the final ``norm.*``
    and cached ``attn_mask`` buffers; a relative-position table of another window size is
    resized bicubically.  Keys of the backbone without a counterpart (language-fusion extras,
    ``norm0..3``) keep their initialisation.  Returns notes; raises RefbenchError when the file
    does not look like a Swin of this width.
    """
    from refbench.core.checkpoint import read_checkpoint, strip_prefix

    obj = read_checkpoint(path)
    sd = obj
    if isinstance(obj, dict):
        for name in ("model", "state_dict"):
            if isinstance(obj.get(name), dict):
                sd = obj[name]
                break
    if not isinstance(sd, dict) or not sd:
        raise RefbenchError(f"{path}: no state dict found (expected {{'model': ...}} or a bare state dict)")
    sd = strip_prefix(strip_prefix(sd, "module."), "backbone.")
    own = swin.state_dict()
    loaded, resized, skipped = {}, [], []
    for key, value in sd.items():
        if key.startswith("head.") or key.startswith("norm.") or key.endswith("attn_mask"):
            continue
        if key not in own or not isinstance(value, torch.Tensor):
            skipped.append(key)
            continue
        target = own[key]
        if value.shape != target.shape and key.endswith("relative_position_bias_table"):
            value = _resize_bias_table(value, target.shape)
            resized.append(key)
        elif value.shape != target.shape and key.endswith("relative_position_index"):
            continue  # computed from the window size; ours is right for this model
        if value.shape != target.shape:
            raise RefbenchError(
                f"{path}: {key} has shape {tuple(value.shape)}, this Swin expects {tuple(target.shape)}; "
                f"use a Swin checkpoint with embed_dim {swin.config.embed_dim} and depths {swin.config.depths}")
        loaded[key] = value.to(target.dtype)
    block_keys = [k for k in own if ".blocks." in k]
    if sum(k in loaded for k in block_keys) < 0.9 * len(block_keys):
        raise RefbenchError(
            f"{path}: only {sum(k in loaded for k in block_keys)} of {len(block_keys)} Swin block tensors match; "
            "this is not a Swin classification checkpoint of this size")
    swin.load_state_dict(loaded, strict=False)
    kept = sorted({k.split(".")[0] if not k.startswith("layers.") else ".".join(k.split(".")[:3])
                   for k in own if k not in loaded})
    notes = [f"loaded {len(loaded)} Swin tensors from {path}"]
    if resized:
        notes.append(f"resized {len(resized)} relative-position tables bicubically to window {swin.config.window_size}")
    if kept:
        notes.append("kept initialisation for: " + ", ".join(kept))
    if skipped:
        notes.append(f"ignored {len(skipped)} checkpoint tensors without a counterpart (e.g. {skipped[0]})")
    return notes


def _resize_bias_table(table: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(L1², heads) -> (L2², heads) by bicubic interpolation of the (heads, L1, L1) grid."""
    l1 = int(round(table.shape[0] ** 0.5))
    l2 = int(round(shape[0] ** 0.5))
    if table.shape[1] != shape[1] or l1 * l1 != table.shape[0]:
        raise RefbenchError(f"relative_position_bias_table of shape {tuple(table.shape)} cannot be resized to {tuple(shape)}")
    grid = table.float().t().reshape(1, -1, l1, l1)
    grid = F.interpolate(grid, size=(l2, l2), mode="bicubic", align_corners=False)
    return grid.reshape(-1, l2 * l2).t().contiguous()
