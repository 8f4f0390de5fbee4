"""Switchable Normalization (Luo et al., "Differentiable Learning-to-Normalize via Switchable
Normalization", ICLR 2019), the normalization JMCELN's Progressive Alignment Network ends with.

    mean = Σ_k softmax(λ)_k · μ_k,   var = Σ_k softmax(λ')_k · σ²_k,   k ∈ {IN, LN, BN}
    y = γ · (x − mean) / sqrt(var + ε) + β

μ/σ² of IN are taken per sample and channel over H×W, of LN per sample over C×H×W, of BN per
channel over N×H×W (in training; running averages in eval).  All variances are the biased
ones of the paper's Eq. 2; the statistics are computed in float32 whatever the input dtype.
"""
from __future__ import annotations

import torch
from torch import nn


class SwitchableNorm2d(nn.Module):
    """SN over (B, C, H, W) maps.

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: running BN statistics: ``running = (1 - momentum) · running + momentum · batch``
            (PyTorch's convention; the reference code's 0.9 "keep" factor is momentum 0.1 here).

    Parameters ``weight``/``bias`` (C,) = γ/β, ``mean_weight``/``var_weight`` (3,) = λ/λ' (IN, LN,
    BN order; start equal, as in the reference code); buffers ``running_mean``/``running_var`` (C,).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), same dtype."""
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"SwitchableNorm2d({self.num_features}) expects (B, {self.num_features}, H, W), "
                             f"got {tuple(x.shape)}")
        b, c = x.shape[:2]
        flat = x.float().flatten(2)  # (B, C, HW)
        mean_in = flat.mean(-1, keepdim=True)  # (B, C, 1)
        var_in = flat.var(-1, unbiased=False, keepdim=True)
        sq_in = var_in + mean_in.pow(2)  # E[x²] per sample and channel
        mean_ln = mean_in.mean(1, keepdim=True)  # (B, 1, 1)
        var_ln = (sq_in.mean(1, keepdim=True) - mean_ln.pow(2)).clamp_min(0)
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)  # (1, C, 1)
            var_bn = (sq_in.mean(0, keepdim=True) - mean_bn.pow(2)).clamp_min(0)
            with torch.no_grad():
                self.running_mean.lerp_(mean_bn.view(c).to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var_bn.view(c).to(self.running_var.dtype), self.momentum)
        else:
            mean_bn = self.running_mean.float().view(1, c, 1)
            var_bn = self.running_var.float().view(1, c, 1)
        wm = torch.softmax(self.mean_weight.float(), 0)
        wv = torch.softmax(self.var_weight.float(), 0)
        mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn
        var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn
        y = (flat - mean) * torch.rsqrt(var + self.eps)
        y = y * self.weight.float().view(1, c, 1) + self.bias.float().view(1, c, 1)
        return y.view_as(x).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
