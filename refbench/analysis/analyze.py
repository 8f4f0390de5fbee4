"""A run's metrics broken down by slice, with 95 % CIs; two runs compared slice by slice.

The run's per-sample records (``records.jsonl``) are joined, by sample id, with the samples of the
split the run scored, opened through :func:`refbench.eval.splits.open_eval_split` from the run's
identity (data root, dataset, split, subset).  The split's annotation files must have the sha256
the run recorded (otherwise the slices would describe other data).  For every partition of
:mod:`refbench.analysis.slices` and every slice:

* the metrics are those of ``refbench.metrics`` on the run's records restricted to the slice
  (:meth:`SampleRecords.take`), under the run's protocol: exactly the numbers the run would report
  for those samples alone;
* the 95 % CI is the percentile bootstrap over the slice's sentences (:func:`bootstrap_ci`);
* with a second run on the same samples and a comparable protocol, Δ = A − B with the paired
  approximate-randomization test and paired-bootstrap CI of :func:`paired_test`, per slice.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from refbench.analysis.slices import PARTITIONS, SampleFacts, labels, sample_facts
from refbench.core.errors import RefbenchError
from refbench.core.progress import SILENT, Reporter
from refbench.core.protocols import Protocol
from refbench.core.records import SampleRecords

#: the metrics shown in tables and the figure when the protocol has them (the JSON has all)
SHOWN_METRICS = ("mIoU", "oIoU", "P@0.5", "gIoU", "cIoU", "Acc", "N-acc", "T-acc")


@dataclass
class AnalysisRun:
    """One run joined with its split: ``records`` and ``facts`` aligned sample by sample."""

    path: Path
    label: str
    doc: object                    # refbench.core.results.ResultsDoc
    records: SampleRecords
    facts: list[SampleFacts]
    split_name: str

    @property
    def protocol(self) -> Protocol:
        return self.doc.protocol

    @property
    def partial_text(self) -> str:
        return self.doc.identity.partial_text()


@dataclass
class SliceResult:
    """One slice of one partition for one run (metrics and CI bounds in percent)."""

    partition: str
    label: str
    index: np.ndarray              # positions in the run's records
    n: int
    share: float                   # n / samples of the run
    metrics: dict[str, float | None]
    ci: dict[str, tuple[float | None, float | None]]


@dataclass
class PairedSlice:
    """A slice compared between run A and run B (refbench.metrics.stats.PairedResult per metric)."""

    partition: str
    label: str
    n: int
    results: list


@dataclass
class Analysis:
    runs: list[AnalysisRun]
    slices: list[list[SliceResult]]          # per run
    paired: list[PairedSlice] | None
    bootstrap: int
    permutations: int
    seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def protocol(self) -> Protocol:
        return self.runs[0].protocol

    def shown_metrics(self) -> list[str]:
        have = [m for m in self.slices[0][0].metrics] if self.slices and self.slices[0] else []
        return [m for m in SHOWN_METRICS if m in have] or have[:3]


def resolve_results(path: str | Path) -> Path:
    """A run directory (holding results.json) or a results file -> the results file."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
        if not p.is_file():
            raise RefbenchError(f"{path}: no results.json in this folder; pass an eval run directory or its "
                                "results.json")
    return p


def open_run_split(doc, data_root: str | None = None, reporter: Reporter = SILENT):
    """The split a run scored, opened from its identity (or ``data_root``), checked against its annotation sha256s."""
    from refbench.core.provenance import sha256_file
    from refbench.eval.splits import open_eval_split

    ident = doc.identity
    where = doc.path or "results"
    if ident.split_name is None:
        raise RefbenchError(f"{where}: the run scored mask folders, not a dataset split; slices need the split "
                            "(an eval run, or refbench score --gt SPLIT)")
    if not ident.annotation_sha256:
        raise RefbenchError(f"{where}: the run records no annotation sha256, so it cannot be checked that the split "
                            "is the data it scored; re-run the evaluation with this refbench")
    root = data_root if data_root is not None else ident.data_root
    if root is None and not os.environ.get("REFBENCH_DATA"):
        raise RefbenchError(f"{where}: the run records no data root (a refbench score run); pass --data-root with the "
                            "data it scored")
    split = open_eval_split(ident.split_name, root, explicit=root is not None, reporter=reporter)
    have = {k: sha256_file(p) for k, p in split.annotation_files.items()}
    for key, sha in ident.annotation_sha256.items():
        if have.get(key) != sha:
            raise RefbenchError(f"{where}: the {key} file {split.annotation_files.get(key, '?')} has sha256 "
                                f"{str(have.get(key))[:12]}…, the run scored {sha[:12]}…; the slices would describe "
                                "other data: pass --data-root with the data the run used")
    return split


def load_run(run, data_root: str | None = None, reporter: Reporter = SILENT,
             cache: dict | None = None) -> AnalysisRun:
    """Join a ``refbench.tables.compare.Run`` with its split.  ``cache`` ({split key: (split, {id: facts})})
    lets several runs on one split open it and compute each sample's facts once."""
    doc = run.doc
    rec = run.records()
    rec.check_unique()
    if len(rec) == 0:
        raise RefbenchError(f"{run.path}: the run has no records")
    key = (doc.identity.split_name, tuple(sorted(doc.identity.annotation_sha256.items())), doc.protocol.gt_rule)
    cache = cache if cache is not None else {}
    if key not in cache:
        cache[key] = (open_run_split(doc, data_root, reporter), {})
    split, known = cache[key]
    by_id = {s.sample_id: s for s in split.samples}
    unknown = [sid for sid in rec.ids if sid not in by_id]
    if unknown:
        raise RefbenchError(f"{run.path}: {len(unknown)} record(s) are not samples of {split.name}, e.g. "
                            f"{unknown[0]!r}; the records and the split do not belong together")
    todo = [by_id[sid] for sid in rec.ids if sid not in known]
    if todo:
        known.update((f.sample_id, f) for f in sample_facts(split, todo, doc.protocol.gt_rule, reporter))
    return AnalysisRun(run.path, run.label, doc, rec, [known[sid] for sid in rec.ids], doc.identity.split_name)


def slice_metrics(run: AnalysisRun, bootstrap: int, seed: int, advance=None) -> list[SliceResult]:
    """Every slice of every partition for one run."""
    from refbench.metrics.accumulator import RISMetrics
    from refbench.metrics.stats import bootstrap_ci

    out: list[SliceResult] = []
    n_all = len(run.records)
    for part in PARTITIONS:
        lab = labels(part, run.facts)
        for label in sorted(set(lab.tolist()), key=part.sort_key):
            idx = np.flatnonzero(lab == label)
            sub = run.records.take(idx)
            acc = RISMetrics(run.protocol)
            acc.add_records(sub)
            metrics = acc.compute()
            ci = {}
            if bootstrap > 0:
                ci = {k: (v.low, v.high) for k, v in bootstrap_ci(sub, run.protocol, n_resamples=bootstrap,
                                                                    seed=seed).items()}
            out.append(SliceResult(part.name, label, idx, len(idx), len(idx) / n_all, metrics, ci))
            if advance is not None:
                advance(1, f"{part.name}: {label}")
    return out


def _check_pair(a: AnalysisRun, b: AnalysisRun) -> SampleRecords:
    """B's records in A's sample order; one-line refusal unless the runs are comparable on the same samples."""
    from refbench.tables.match import comparable

    if a.split_name != b.split_name or a.doc.identity.annotation_sha256 != b.doc.identity.annotation_sha256:
        raise RefbenchError(f"{b.path}: scored {b.split_name} of other annotation files than {a.path} "
                            f"({a.split_name}); compare runs on the same split")
    if not comparable(a.protocol.replace(binarize=None), b.protocol.replace(binarize=None)):
        raise RefbenchError(f"{b.path}: protocol {b.protocol.name} [{b.protocol.hash()}] is not comparable with "
                            f"{a.path}'s {a.protocol.name} [{a.protocol.hash()}]; compare runs scored the same way")
    ia, ib = set(a.records.ids), set(b.records.ids)
    if ia != ib:
        raise RefbenchError(f"{b.path}: the runs cover different samples ({len(ia - ib)} only in the first, "
                            f"{len(ib - ia)} only in the second); compare runs on the same samples")
    pos = {sid: k for k, sid in enumerate(b.records.ids)}
    return b.records.take(np.array([pos[sid] for sid in a.records.ids], dtype=np.int64))


def analyze(paths: Sequence[str | Path], data_root: str | None = None, bootstrap: int = 1000,
            permutations: int = 10000, seed: int = 0, reporter: Reporter = SILENT) -> Analysis:
    """Slice analysis of one run, or of two runs on the same samples with per-slice paired tests."""
    from refbench.metrics.stats import paired_test
    from refbench.tables.compare import load_runs

    if not 1 <= len(paths) <= 2:
        raise RefbenchError(f"give one run, or two runs to compare (got {len(paths)})")
    for name, value, low in (("--bootstrap", bootstrap, 0), ("--permutations", permutations, 0), ("--seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise RefbenchError(f"{name} must be an integer >= {low}, got {value!r}")
    loaded = load_runs([resolve_results(p) for p in paths])
    cache: dict = {}
    runs = [load_run(r, data_root, reporter, cache) for r in loaded]
    b_aligned = _check_pair(runs[0], runs[1]) if len(runs) == 2 else None
    n_slices = sum(len(set(labels(p, runs[0].facts).tolist())) for p in PARTITIONS)
    total = n_slices * (len(runs) + (1 if b_aligned is not None else 0))
    paired: list[PairedSlice] | None = None
    with reporter.progress(total, "slice metrics") as advance:
        slices = [slice_metrics(r, bootstrap, seed, advance) for r in runs]
        if b_aligned is not None:
            paired = []
            for s in slices[0]:
                res = paired_test(runs[0].records.take(s.index), b_aligned.take(s.index), runs[0].protocol,
                                  n_permutations=permutations, n_resamples=bootstrap, seed=seed)
                paired.append(PairedSlice(s.partition, s.label, s.n, res))
                advance(1, f"paired {s.partition}: {s.label}")
    notes = [f"{r.label}: {r.path} ({r.split_name}, {len(r.records)} samples, protocol {r.protocol.name} "
             f"[{r.protocol.hash()}]" + (f", {r.partial_text}" if r.partial_text else "") + ")" for r in runs]
    notes += [f"{r.label} is {r.partial_text} samples (--limit or skipped images): its slices describe only the "
              "scored samples" for r in runs if r.partial_text]
    return Analysis(runs, slices, paired, bootstrap, permutations, seed, notes)


__all__ = ["Analysis", "AnalysisRun", "SliceResult", "PairedSlice", "analyze", "load_run", "open_run_split",
           "resolve_results", "slice_metrics", "SHOWN_METRICS"]
