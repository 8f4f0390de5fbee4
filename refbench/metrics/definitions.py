"""Exact metric definitions per protocol family.

Every RIS metric is a ratio of two sums of per-sample contributions,

    metric = 100 * sum_i num[i] / sum_i den[i]        (percent)

e.g. oIoU: num = I, den = U;  mIoU: num = IoU, den = 1;  P@0.7: num = [IoU >= 0.7], den = 1;
Acc (Ref-ZOM): num = [zero-target and empty prediction], den = [zero-target].
:func:`contributions` returns these columns; the point estimate, the bootstrap and the
paired test all use them, so they can never disagree on a definition.  Sums are computed
with ``math.fsum`` (exactly rounded), so the result does not depend on sample order or
on how the samples were split across batches, processes or resumed runs.

Families (see refbench.core.protocols):
    lavt    oIoU = sum I / sum U; mIoU = mean IoU with IoU = 0 when U = 0;
            P@X = share of sentences with IoU >= X (or > X per protocol).  All sentences.
    refzom  lavt metrics over one/many-target sentences only;
            Acc = share of zero-target sentences whose prediction has no foreground pixel.
    gres    ReLA: per-sample score = 1 for a no-target sample predicted no-target, 0 for a
            missed one, IoU for a targeted sample (0 if it was predicted no-target);
            gIoU = mean score over all samples; cIoU = sum I / sum U where a missed
            no-target adds its predicted area to U and a targeted sample predicted
            no-target adds U with I = 0; N-acc = TP/(TP+FN) over no-target samples;
            T-acc = TN/(TN+FP) over targeted samples (both only when the split has
            no-target samples); P@X over targeted samples with >=.
    cris    IoU = I / (U + 1e-6); mIoU headline; P@X with strict >; oIoU = sum I / sum U.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from refbench.core.errors import RefbenchError
from refbench.core.records import SampleRecords
from refbench.core.protocols import Protocol


def p_name(threshold: float) -> str:
    """``P@0.5`` style name for a threshold."""
    return f"P@{threshold:g}"


@dataclass
class Contributions:
    """Per-sample numerator/denominator columns: metric j = 100 * num[:, j].sum() / den[:, j].sum()."""

    names: list[str]
    num: np.ndarray  # (n, k) float64
    den: np.ndarray  # (n, k) float64
    notes: list[str]

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Exactly rounded column sums (order independent)."""
        k = len(self.names)
        return (np.array([math.fsum(self.num[:, j]) for j in range(k)]),
                np.array([math.fsum(self.den[:, j]) for j in range(k)]))

    def values(self) -> dict[str, float | None]:
        """Metrics in percent; ``None`` where the denominator is 0 (nothing to measure)."""
        num, den = self.totals()
        return {name: (float(100.0 * num[j] / den[j]) if den[j] > 0 else None) for j, name in enumerate(self.names)}


def _compare(iou: np.ndarray, t: float, op: str) -> np.ndarray:
    return (iou >= t) if op == ">=" else (iou > t)


def precision_curve(iou: np.ndarray, thresholds: np.ndarray, compare: str = ">=") -> np.ndarray:
    """P@X in percent for every X of ``thresholds``: the share of ``iou`` values >= X (or > X), the
    comparison :func:`contributions` uses for P@X; NaN for an empty ``iou``."""
    if compare not in (">=", ">"):
        raise RefbenchError(f"P@X comparison must be '>=' or '>', got {compare!r}")
    thresholds = np.asarray(thresholds, np.float64)
    if len(iou) == 0:
        return np.full(len(thresholds), np.nan)
    s = np.sort(np.asarray(iou, np.float64))
    side = "left" if compare == ">=" else "right"
    return 100.0 * (len(s) - np.searchsorted(s, thresholds, side=side)) / len(s)


def no_target_decision(rec: SampleRecords, rule: str) -> tuple[np.ndarray, str]:
    """Predicted no-target flags under ``rule`` and a sentence saying how they were decided."""
    has_flag = rec.pred_nt >= 0
    empty = rec.pred_area == 0
    if rule == "empty-mask":
        return empty, "no-target decision: empty predicted mask"
    if rule == "flag":
        if not has_flag.all():
            raise RefbenchError("protocol needs the model's no-target flag for every sample (pred_nt), some are missing")
        return rec.pred_nt == 1, "no-target decision: model's no-target flag"
    if rule == "flag-or-empty":
        if has_flag.all() and len(rec):
            return rec.pred_nt == 1, "no-target decision: model's no-target flag"
        if not has_flag.any():
            return empty, "no-target decision: empty predicted mask (model gives no no-target flag)"
        return np.where(has_flag, rec.pred_nt == 1, empty), \
            "no-target decision: model's flag where given, else empty predicted mask"
    raise RefbenchError(f"no-target rule {rule!r} does not apply to this protocol family")


def contributions(rec: SampleRecords, protocol: Protocol) -> Contributions:
    """The numerator/denominator columns of every metric ``protocol`` reports."""
    n = len(rec)
    one = np.ones(n)
    I = rec.I.astype(np.float64)
    U = rec.U.astype(np.float64)
    fam, op = protocol.family, protocol.p_compare
    names: list[str] = []
    num: list[np.ndarray] = []
    den: list[np.ndarray] = []
    notes: list[str] = []

    def add(name: str, a: np.ndarray, b: np.ndarray) -> None:
        names.append(name)
        num.append(np.asarray(a, np.float64))
        den.append(np.asarray(b, np.float64))

    if fam in ("lavt", "cris"):
        iou = I / (U + protocol.iou_eps) if protocol.iou_eps else rec.iou()
        add("oIoU", I, U)
        add("mIoU", iou, one)
        for t in protocol.thresholds:
            add(p_name(t), _compare(iou, t, op), one)
    elif fam == "refzom":
        iou = rec.iou()
        tgt = (rec.type != 0).astype(np.float64)
        zero = (rec.type == 0)
        add("oIoU", I * tgt, U * tgt)
        add("mIoU", iou * tgt, tgt)
        for t in protocol.thresholds:
            add(p_name(t), _compare(iou, t, op) * tgt, tgt)
        add("Acc", zero & (rec.pred_area == 0), zero)
        notes.append("oIoU/mIoU/P@X over one/many-target sentences; Acc over zero-target sentences (empty prediction = correct)")
    elif fam == "gres":
        pnt, how = no_target_decision(rec, protocol.no_target)
        notes.append(how)
        gnt = rec.type == 0
        tp, fn = gnt & pnt, gnt & ~pnt
        fp, tn = ~gnt & pnt, ~gnt & ~pnt
        I_eff = np.where(gnt | pnt, 0.0, I)                # targeted + predicted NT: I forced to 0
        U_eff = np.where(tp, 0.0, U)                       # missed no-target adds its predicted area
        iou_t = np.divide(I_eff, U_eff, out=np.zeros(n), where=U_eff > 0)
        score = np.where(gnt, pnt.astype(np.float64), iou_t)
        add("gIoU", score, one)
        add("cIoU", I_eff, U_eff)
        has_nt = bool(gnt.any())
        add("N-acc", tp, (tp | fn) if has_nt else np.zeros(n))
        add("T-acc", tn, (tn | fp) if has_nt else np.zeros(n))
        for t in protocol.thresholds:
            add(p_name(t), ~gnt & _compare(iou_t, t, op), ~gnt)
        if not has_nt:
            notes.append("N-acc/T-acc not reported: the split has no no-target samples")
    else:  # pragma: no cover - Protocol validates the family
        raise RefbenchError(f"unknown metric family {fam!r}")
    if n == 0:
        return Contributions(names, np.zeros((0, len(names))), np.zeros((0, len(names))), notes)
    return Contributions(names, np.stack(num, 1), np.stack(den, 1), notes)


def metric_names(protocol: Protocol) -> list[str]:
    """Names of the metrics ``protocol`` reports, in table order."""
    return contributions(SampleRecords.empty(), protocol).names
