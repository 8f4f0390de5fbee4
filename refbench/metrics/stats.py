"""Uncertainty for RIS metrics: bootstrap confidence intervals and a paired significance test.

Both resample per-sample contributions (refbench.metrics.definitions), so they apply to
every metric of every protocol, including ratio metrics such as oIoU = sum I / sum U.

* :func:`bootstrap_ci` — percentile bootstrap over samples (sentences): each resample draws
  n samples with replacement (multinomial counts), metric = 100 * counts@num / counts@den.
* :func:`paired_test` — two runs on the same sample ids.  The p-value comes from an
  approximate randomization (permutation) test: under H0 "A and B are exchangeable", the
  two runs' records of each sample are swapped with probability 1/2; p is the share of
  permutations whose |metric(A') - metric(B')| is at least the observed |delta| (with the
  usual +1 correction).  A paired bootstrap CI of delta accompanies it.

Sentences of one image are correlated; the per-sentence unit is the papers' unit and the
CI is therefore slightly optimistic.  Pass ``groups`` (e.g. image ids) to resample whole
groups instead (cluster bootstrap).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from refbench.core.errors import RefbenchError
from refbench.metrics.definitions import Contributions, contributions
from refbench.core.records import SampleRecords
from refbench.core.protocols import Protocol, get_protocol


def _resample_counts(rng: np.random.Generator, n: int, r: int, groups: np.ndarray | None) -> np.ndarray:
    """(r, n) float64 multiplicities of each sample in r bootstrap resamples."""
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=r).astype(np.float64)
    uniq, inv = np.unique(groups, return_inverse=True)
    g = len(uniq)
    gc = rng.multinomial(g, np.full(g, 1.0 / g), size=r).astype(np.float64)  # (r, g)
    return gc[:, inv]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 100.0 * num / np.where(den > 0, den, 1.0), np.nan)


@dataclass
class Interval:
    low: float | None
    high: float | None

    def to_list(self) -> list[float | None]:
        return [self.low, self.high]


def _percentiles(samples: np.ndarray, confidence: float) -> list[Interval]:
    alpha = (1.0 - confidence) / 2.0
    out = []
    for j in range(samples.shape[1]):
        col = samples[:, j]
        col = col[~np.isnan(col)]
        if len(col) == 0:
            out.append(Interval(None, None))
        else:
            lo, hi = np.quantile(col, [alpha, 1.0 - alpha])
            out.append(Interval(float(lo), float(hi)))
    return out


def bootstrap_ci(records: SampleRecords, protocol: "str | Protocol" = "lavt", n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0, groups: Sequence | None = None,
                 chunk: int = 200) -> dict[str, Interval]:
    """Percentile-bootstrap confidence interval of every metric (percent)."""
    protocol = get_protocol(protocol)
    c = contributions(records, protocol)
    n = len(records)
    if n == 0:
        return {name: Interval(None, None) for name in c.names}
    g = None if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    vals = []
    for start in range(0, n_resamples, chunk):
        w = _resample_counts(rng, n, min(chunk, n_resamples - start), g)
        vals.append(_ratio(w @ c.num, w @ c.den))
    return dict(zip(c.names, _percentiles(np.concatenate(vals), confidence)))


@dataclass
class PairedResult:
    """Comparison of run A against run B on one metric."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    p_value: float | None
    ci: Interval

    def to_dict(self) -> dict:
        return {"metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta,
                "p_value": self.p_value, "ci": self.ci.to_list()}


def align(a: SampleRecords, b: SampleRecords) -> tuple[SampleRecords, SampleRecords]:
    """Both record sets ordered by A's ids; error unless they cover the same samples."""
    ia = {sid: k for k, sid in enumerate(a.ids)}
    if len(ia) != len(a.ids) or len(set(b.ids)) != len(b.ids):
        raise RefbenchError("paired test: a run scores some sample twice")
    only_a = len(set(a.ids) - set(b.ids))
    only_b = len(set(b.ids) - set(a.ids))
    if only_a or only_b:
        raise RefbenchError(f"paired test needs the same samples in both runs: {only_a} only in A, {only_b} only in B")
    order_b = np.array([{s: k for k, s in enumerate(b.ids)}[sid] for sid in a.ids], dtype=np.int64)
    return a, b.take(order_b)


def paired_test(a: SampleRecords, b: SampleRecords, protocol: "str | Protocol" = "lavt",
                n_permutations: int = 10000, n_resamples: int = 1000, confidence: float = 0.95,
                seed: int = 0, chunk: int = 500) -> list[PairedResult]:
    """Does run A differ from run B on the same samples?  One PairedResult per metric."""
    protocol = get_protocol(protocol)
    a, b = align(a, b)
    ca, cb = contributions(a, protocol), contributions(b, protocol)
    va, vb = ca.values(), cb.values()
    n = len(a)
    rng = np.random.default_rng(seed)
    (sna, sda), (snb, sdb) = ca.totals(), cb.totals()
    obs = _ratio(sna, sda) - _ratio(snb, sdb)
    dnum, dden = ca.num - cb.num, ca.den - cb.den
    exceed = np.zeros(len(ca.names))
    valid = np.zeros(len(ca.names))
    for start in range(0, n_permutations, chunk):
        s = rng.integers(0, 2, size=(min(chunk, n_permutations - start), n)).astype(np.float64)
        sn, sd = s @ dnum, s @ dden
        d = _ratio(sna - sn, sda - sd) - _ratio(snb + sn, sdb + sd)
        ok = ~np.isnan(d)
        # tolerance guards against float ties of permutations equal to the observed split
        exceed += (ok & (np.abs(d) >= np.abs(obs) - 1e-9)).sum(0)
        valid += ok.sum(0)
    deltas = []
    for start in range(0, n_resamples, chunk):
        w = _resample_counts(rng, n, min(chunk, n_resamples - start), None)
        deltas.append(_ratio(w @ ca.num, w @ ca.den) - _ratio(w @ cb.num, w @ cb.den))
    cis = _percentiles(np.concatenate(deltas) if deltas else np.zeros((0, len(ca.names))), confidence)
    out = []
    for j, name in enumerate(ca.names):
        da, db = va[name], vb[name]
        delta = None if da is None or db is None else float(da - db)
        p = None if delta is None or valid[j] == 0 else float((exceed[j] + 1) / (valid[j] + 1))
        out.append(PairedResult(name, da, db, delta, p, cis[j]))
    return out


__all__ = ["bootstrap_ci", "paired_test", "PairedResult", "Interval", "Contributions"]
