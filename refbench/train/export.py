"""Compact checkpoints for shipping: float16, unused vocabulary rows zeroed, gzip-compressed.

The tiny models refbench ships were trained on the synthetic benchmark, whose sentences use a few
hundred of the 30,522 BERT (or 49,408 CLIP) tokens.  Rows of a vocabulary-sized matrix (word
embeddings; MagNet's masked-token predictor output) that belong to tokens the corpus never uses
carry no learned information; they are zeroed, which gzip then stores almost for free, and float
tensors are stored as float16 (loaded back into the float32 model), except normalization running
statistics and any tensor outside float16's range, which stay float32 (a BatchNorm running variance
of 1e12 would become inf and turn every prediction into NaN).  The shipped file is what
refbench's reference numbers are measured with, so the numbers describe exactly what users get.
"""
from __future__ import annotations

import gzip
import io
import os
from typing import Iterable

import torch

from refbench.core.checkpoint import read_checkpoint
from refbench.core.errors import RefbenchError


FP16_MAX = float(torch.finfo(torch.float16).max)


def _stays_fp32(name: str, t: torch.Tensor) -> bool:
    return name.endswith(("running_mean", "running_var")) or bool(t.detach().abs().max() > FP16_MAX)


def compact_state(state: dict[str, torch.Tensor], used_token_ids: Iterable[int],
                  vocab_sizes: tuple[int, ...] = (30522, 49408)) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Half-precision copy of ``state`` (see module doc) with the rows of unused tokens zeroed in
    vocabulary-sized matrices; returns (state, names of the zeroed matrices)."""
    keep = torch.tensor(sorted(set(int(i) for i in used_token_ids)), dtype=torch.long)
    out, zeroed = {}, []
    for k, t in state.items():
        if torch.is_floating_point(t):
            t = t.detach().to(torch.float32 if t.numel() == 0 or _stays_fp32(k, t) else torch.float16)
            if t.dim() >= 1 and t.shape[0] in vocab_sizes and len(keep):
                mask = torch.zeros(t.shape[0], dtype=torch.bool)
                mask[keep[keep < t.shape[0]]] = True
                t = t.clone()
                t[~mask] = 0
                zeroed.append(k)
        out[k] = t
    return out, zeroed


def export_compact(src: str | os.PathLike, dst: str | os.PathLike, used_token_ids: Iterable[int], **meta) -> dict:
    """Write refbench checkpoint ``src`` as a compact gzip file ``dst``; returns its header."""
    ckpt = read_checkpoint(src)
    if not isinstance(ckpt, dict) or "refbench" not in ckpt or "model" not in ckpt:
        raise RefbenchError(f"{src}: not a refbench checkpoint (expected {{'refbench': ..., 'model': ...}})")
    state, zeroed = compact_state(ckpt["model"], used_token_ids)
    header = {**ckpt["refbench"], **meta, "compact": {"dtype": "float16", "zeroed_unused_token_rows": zeroed,
                                                       "used_tokens": len(set(used_token_ids))}}
    buf = io.BytesIO()
    torch.save({"refbench": header, "model": state}, buf)
    tmp = os.fspath(dst) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))
    os.replace(tmp, dst)
    return header
