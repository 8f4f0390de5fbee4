"""Model output -> boolean masks on the protocol's canvas.

* Square canvas (``lavt``: 480): logits at another size are resized bilinearly with
  align_corners=True (as LAVT/DMMI/MagNet upsample inside the model) and binarized.
* Original-size canvas (``canvas=None``), stretched input: each sample's logits are resized
  bilinearly to its original image size and binarized.
* Original-size canvas, letterboxed input (``cris``): as CRIS's test does, the sigmoid
  probabilities (for the sigmoid rules) are resized bicubically to the input size and then
  mapped back to the original image through the inverse letterbox affine (bicubic), and
  thresholded; other rules resample logits the same way and binarize.  A threshold rule on a
  2-channel model is applied to its foreground margin l1 - l0 (refbench.core.binarize).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from refbench.data.transforms import letterbox_to_original
from refbench.core.binarize import binarize, foreground_logit
from refbench.core.protocols import Protocol

_THRESH = {"sigmoid>0.5": 0.5, "sigmoid>0.35": 0.35}


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=True)


def masks_on_canvas(logits: torch.Tensor, protocol: Protocol, orig_sizes=None,
                    letterbox=None) -> "torch.Tensor | list[torch.Tensor]":
    """Bool masks (B, S, S) for a square canvas, or a list of (H_i, W_i) for original size.

    Args:
        logits: raw model output (B, C, h, w), C = 2 (argmax) or 1 (sigmoid rules).
        protocol: resolved protocol (``binarize`` set).
        orig_sizes: (B, 2) original (H, W), needed when ``protocol.canvas`` is None.
        letterbox: (B, 3) (scale, pad_x, pad_y) of letterboxed inputs, or None.
    """
    logits = logits.float()
    rule = protocol.binarize
    if rule in _THRESH:  # a threshold applies to the foreground output (never a 2-channel model's channel 0)
        logits = foreground_logit(logits)
    if protocol.canvas is not None:
        return binarize(_resize(logits, (protocol.canvas, protocol.canvas), "bilinear"), rule)
    out = []
    sigmoid_first = rule in _THRESH and protocol.family == "cris"
    for i, (h, w) in enumerate(torch.as_tensor(orig_sizes).tolist()):
        x = logits[i:i + 1]
        if letterbox is not None:
            s = protocol.input_size
            x = torch.sigmoid(x) if sigmoid_first else x
            x = letterbox_to_original(_resize(x, (s, s), "bicubic")[0], letterbox[i], h, w)[None]
            out.append(x[0, 0] > _THRESH[rule] if sigmoid_first else binarize(x, rule)[0])
        elif sigmoid_first:
            out.append(_resize(torch.sigmoid(x), (h, w), "bicubic")[0, 0] > _THRESH[rule])
        else:
            out.append(binarize(_resize(x, (h, w), "bilinear"), rule)[0])
    return out
