"""Streaming, mergeable RIS metric accumulator.

    acc = RISMetrics("lavt")
    for batch in loader:
        acc.update_logits(model(images, ids, mask), batch["gt"], batch["sample_id"], batch["type"])
    report = acc.report()          # MetricReport: metrics in percent + counts + protocol

Masks are torch tensors on any device (CPU or CUDA); per batch, I, U and the two areas are
reduced on that device and only 4*B integers cross to the host.  The state is the list of
per-sample records (never masks), so accumulators merge exactly and can be rebuilt from a
records file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from refbench.core.errors import RefbenchError
from refbench.core.binarize import as_binary_mask, binarize
from refbench.metrics.definitions import contributions
from refbench.core.records import TYPES, SampleRecords, type_codes
from refbench.core.protocols import Protocol, get_protocol

MaskBatch = "torch.Tensor | Sequence[torch.Tensor]"


_LANE = 255  # a byte lane of an int64 word can add up 255 ones before it overflows
_CPU_CHUNK_BYTES = 1 << 22  # CPU intersections are computed this many bytes of masks at a time


def _as_words(x: torch.Tensor) -> torch.Tensor:
    """Bool (B, N) -> int64 (B, ceil(N/8)): each word holds 8 pixels as 0/1 bytes (zero padded)."""
    b, n = x.shape
    x = x.contiguous().view(torch.uint8)
    if n % 8:
        x = torch.nn.functional.pad(x, (0, 8 - n % 8))
    return x.view(torch.int64)


def _count_words(words: torch.Tensor) -> torch.Tensor:
    """Number of 1-bytes per row of an int64 word tensor (B, W) as int64 (B,).

    Words are summed in blocks of 255 so that no byte lane overflows, then the lanes are
    unpacked: one pass over W words instead of 8W pixels.
    """
    b, w = words.shape
    m = w // _LANE
    lanes = words[:, : m * _LANE].reshape(b, m, _LANE).sum(2)           # (B, m), each lane <= 255
    rest = words[:, m * _LANE:].sum(1, keepdim=True)                   # (B, 1), each lane < 255
    packed = torch.cat([lanes, rest], 1).contiguous()
    return packed.view(torch.uint8).reshape(b, -1).sum(1, dtype=torch.int64)


def count_true(x: torch.Tensor) -> torch.Tensor:
    """Number of True values per row of a bool tensor (B, N), as int64 (B,).

    ``bool.sum`` converts every element to int64 first and is ~40x slower on CPU than
    reading the memory; counting packed words is exact and runs at memory speed.
    """
    return _count_words(_as_words(x))


def intersection_union(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(4, B) int64 tensor of I, U, predicted area, GT area for bool masks (B, H, W).

    Vectorized over the batch on the tensors' device (the intersection is a bitwise AND of
    packed words, 8 pixels per operation).  U = |pred| + |gt| - I.
    """
    wp = _as_words(pred.reshape(pred.shape[0], -1))
    wg = _as_words(gt.reshape(gt.shape[0], -1))
    if wp.is_cuda or wp.numel() * 8 <= _CPU_CHUNK_BYTES:
        inter, pa, ga = _count_words(wp & wg), _count_words(wp), _count_words(wg)
    else:  # on CPU, a few rows at a time: the AND goes into one reused cache-sized buffer (a fresh
        # batch-sized tensor costs more in page faults than the AND itself) and both masks are
        # counted while they are still in cache, so each mask is read from memory once
        rows = max(1, _CPU_CHUNK_BYTES // (wp.shape[1] * 8))
        buf = torch.empty((rows, wp.shape[1]), dtype=torch.int64)
        parts = []
        for i in range(0, len(wp), rows):
            p, g = wp[i:i + rows], wg[i:i + rows]
            parts.append(torch.stack([_count_words(torch.bitwise_and(p, g, out=buf[: len(p)])), _count_words(p),
                                      _count_words(g)]))
        inter, pa, ga = torch.cat(parts, 1)
    return torch.stack([inter, pa + ga - inter, pa, ga])


@dataclass
class MetricReport:
    """Metrics in percent (full precision) with the counts and protocol they refer to."""

    metrics: dict[str, float | None]
    counts: dict[str, int]
    protocol: dict
    protocol_hash: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "counts": self.counts, "protocol": self.protocol,
                "protocol_hash": self.protocol_hash, "notes": self.notes}


class RISMetrics:
    """Accumulates per-sample I/U records and reports the protocol's metrics.

    Args:
        protocol: a protocol name (``lavt``, ``refzom``, ``gres``, ``cris`` …) or Protocol.
    """

    def __init__(self, protocol: "str | Protocol" = "lavt") -> None:
        self.protocol = get_protocol(protocol)
        self._parts: list[SampleRecords] = []
        self._seen: set[str] = set()
        # running integer sums, for progress display
        self.n = 0
        self.sum_I = 0
        self.sum_U = 0
        self.sum_iou = 0.0

    # ---- updates ------------------------------------------------------------------------
    def update(self, pred: MaskBatch, gt: MaskBatch, ids: Sequence[str],
               types: Sequence[str] | None = None, pred_nt: "torch.Tensor | Sequence[bool] | None" = None) -> None:
        """Add a batch of binary predicted masks and GT masks.

        Args:
            pred, gt: bool/0-1 tensors (B, H, W) on any device, or sequences of (H, W) tensors
                when sizes differ between samples.  Shapes must match pairwise.
            ids: one unique sample id per mask.
            types: ``zero``/``one``/``many`` per sample; default: ``zero`` where the GT is
                empty, else ``one``.
            pred_nt: the model's no-target decision per sample, if it has such a head.
        """
        ids = [str(i) for i in ids]
        if isinstance(pred, torch.Tensor) and isinstance(gt, torch.Tensor) and pred.dim() == 3:
            if pred.shape != gt.shape:
                raise RefbenchError(f"prediction shape {tuple(pred.shape)} != GT shape {tuple(gt.shape)} "
                                    f"(samples {ids[:3]}…); resize to the protocol canvas first")
            if len(ids) != pred.shape[0]:
                raise RefbenchError(f"{len(ids)} ids for a batch of {pred.shape[0]} masks")
            stats = intersection_union(as_binary_mask(pred, "prediction"), as_binary_mask(gt.to(pred.device), "ground truth"))
        else:
            if len(pred) != len(gt) or len(ids) != len(pred):
                raise RefbenchError(f"batch lengths differ: {len(pred)} predictions, {len(gt)} GT masks, {len(ids)} ids")
            cols = []
            for sid, p, g in zip(ids, pred, gt):
                if p.shape != g.shape:
                    raise RefbenchError(f"sample {sid!r}: prediction size {tuple(p.shape)} != GT size {tuple(g.shape)}")
                cols.append(intersection_union(as_binary_mask(p[None], f"prediction {sid!r}"),
                                               as_binary_mask(g[None].to(p.device), f"ground truth {sid!r}")))
            stats = torch.cat(cols, 1) if cols else torch.zeros(4, 0, dtype=torch.int64)
        I, U, pa, ga = stats.cpu().numpy().astype(np.int64)
        if types is None:
            tcode = np.where(ga == 0, 0, 1).astype(np.int8)
        else:
            if len(types) != len(ids):
                raise RefbenchError(f"{len(types)} types for {len(ids)} samples")
            tcode = type_codes(types)
        if pred_nt is None:
            nt = np.full(len(ids), -1, np.int8)
        else:
            nt = np.asarray(torch.as_tensor(pred_nt).cpu().numpy(), dtype=bool).astype(np.int8).reshape(-1)
            if len(nt) != len(ids):
                raise RefbenchError(f"{len(nt)} no-target flags for {len(ids)} samples")
        self.add_records(SampleRecords(ids, I, U, pa, ga, tcode, nt))

    def update_logits(self, logits: torch.Tensor, gt: MaskBatch, ids: Sequence[str],
                      types: Sequence[str] | None = None, pred_nt=None, rule: str | None = None) -> torch.Tensor:
        """Binarize raw model outputs (protocol rule, or ``rule``) and add them; returns the masks."""
        rule = rule or self.protocol.binarize
        if rule is None:
            raise RefbenchError(f"protocol {self.protocol.name!r} leaves binarization to the model; pass rule=")
        masks = binarize(logits, rule)
        self.update(masks, gt, ids, types, pred_nt)
        return masks

    def add_records(self, rec: SampleRecords) -> None:
        """Add already computed records (a resumed run, another process's share)."""
        for sid in rec.ids:
            if sid in self._seen:
                raise RefbenchError(f"sample id {sid!r} was scored twice; every sample must be scored once")
            self._seen.add(sid)
        self._parts.append(rec)
        self.n += len(rec)
        self.sum_I += int(rec.I.sum())
        self.sum_U += int(rec.U.sum())
        self.sum_iou += float(rec.iou().sum())

    def merge(self, other: "RISMetrics") -> "RISMetrics":
        """Add another accumulator's records (same protocol) to this one; returns self."""
        if other.protocol.hash() != self.protocol.hash():
            raise RefbenchError(f"cannot merge results of protocol {other.protocol.name!r} into {self.protocol.name!r}")
        self.add_records(other.records)
        return self

    def reset(self) -> None:
        self.__init__(self.protocol)

    # ---- results ------------------------------------------------------------------------
    @property
    def records(self) -> SampleRecords:
        if len(self._parts) > 1:
            self._parts = [SampleRecords.concat(self._parts)]
        return self._parts[0] if self._parts else SampleRecords.empty()

    def running(self) -> dict[str, float]:
        """Cheap running oIoU/mIoU (percent) for progress bars."""
        return {"oIoU": 100.0 * self.sum_I / self.sum_U if self.sum_U else 0.0,
                "mIoU": 100.0 * self.sum_iou / self.n if self.n else 0.0}

    def compute(self) -> dict[str, float | None]:
        """The protocol's metrics in percent, full precision."""
        return self.report().metrics

    def report(self) -> MetricReport:
        rec = self.records
        contrib = contributions(rec, self.protocol)
        counts = {"total": len(rec)}
        for code, name in enumerate(TYPES):
            counts[name] = int((rec.type == code).sum())
        return MetricReport(contrib.values(), counts, self.protocol.to_dict(), self.protocol.hash(), contrib.notes)
