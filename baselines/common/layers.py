"""Small building blocks shared by the baselines (stochastic depth, token-layout helpers)."""
from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop the whole residual branch per sample.

    In training, each sample's branch is zeroed with probability ``p`` and the kept ones are
    scaled by ``1 / (1 - p)``; in eval (and for ``p == 0``) it is the identity.  Parameter-free.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def apply_pointwise(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a pointwise projection to channels-last tokens ``x`` (B, N, C_in) -> (B, N, C_out).

    ``module`` is an ``nn.Sequential`` whose first layer is either a ``Conv1d`` with kernel 1
    (then the whole sequence runs channels-first, so an ``InstanceNorm1d`` after it normalizes
    each channel over the N tokens, as in LAVT) or a ``Linear`` (then it runs channels-last, so a
    ``LayerNorm`` after it normalizes each token over channels, as in MagNet).
    """
    first = module[0] if isinstance(module, nn.Sequential) else module
    if isinstance(first, nn.Conv1d):
        return module(x.transpose(1, 2)).transpose(1, 2)
    return module(x)


def tokens_to_map(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) row-major tokens -> (B, C, H, W) contiguous feature map."""
    b, n, c = x.shape
    if n != height * width:
        raise ValueError(f"{n} tokens do not form a {height}x{width} map")
    return x.transpose(1, 2).reshape(b, c, height, width).contiguous()


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature map -> (B, H*W, C) row-major tokens."""
    return x.flatten(2).transpose(1, 2)


def init_transformer_weights(module: nn.Module) -> None:
    """Transformer random init over ``module``'s submodules: Linear weights ~ N(0, 0.02) truncated
    at ±2σ, biases 0; LayerNorm weight 1, bias 0 (Swin's official init; MERES's random parts)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
