"""Reproduced runs beside the published numbers: deltas, bootstrap CIs and paired tests.

A run is a refbench results file, read as a :class:`~refbench.core.results.ResultsDoc`.
``eval`` runs are matched to published rows whose ``method_key`` is ``<model>-<variant>`` or
``<model>`` (so ``magnet``/``paper`` matches MagNet's single-dataset row and ``magnet``/``all``
the ‡ row ``magnet-all``; :mod:`refbench.tables.match`); ``score`` runs have no model or split and
are shown without published numbers.  Per-sample records (``records.jsonl`` beside the results
file) give the bootstrap CI when the file has none and the paired test between two runs.

Every reproduced value is displayed as ``published / reproduced (Δ, 95% CI)`` with
Δ = reproduced − published, in percentage points; a partial run (``--limit``, skipped images) is
marked ``partial: N of M`` wherever it appears, and a run scored under another protocol than the
paper's says so beside its value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

import leaderboards
from leaderboards import Layout, PublishedNumber
from refbench.core.errors import RefbenchError
from refbench.core.records import SampleRecords
from refbench.core.results import ResultsDoc, read_results
from refbench.tables.grid import EMPTY, Cell, Row, Table, build_published
from refbench.tables.match import comparable, lookup, main_numbers, method_keys, protocol_mismatch, source


@dataclass
class Run:
    """A results document with a display label (and the CI filled from its records when it had none)."""

    doc: ResultsDoc
    label: str = ""
    ci_source: str = ""
    _records: SampleRecords | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.doc.path or Path("?")

    @property
    def split_name(self) -> str | None:
        return self.doc.identity.split_name

    @property
    def metrics(self) -> dict[str, float | None]:
        return self.doc.metrics

    @property
    def ci(self) -> dict[str, tuple[float | None, float | None]]:
        return self.doc.ci

    def records(self) -> SampleRecords:
        if self._records is None:
            self._records = self.doc.records()
        return self._records

    def describe(self) -> str:
        """``label (split)`` plus ``, partial: N of M`` when the run is partial."""
        partial = self.doc.identity.partial_text()
        return f"{self.label} ({self.split_name or self.doc.kind + ' run'}" + (f", {partial})" if partial else ")")


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Read results files and give each a short unique label (``model/variant`` or the file name)."""
    if not paths:
        raise RefbenchError("no results files given; pass one or more results JSON files after --results")
    runs = [Run(read_results(p)) for p in paths]
    for run in runs:
        ident = run.doc.identity
        run.label = (ident.model + (f"/{ident.variant}" if ident.variant else "")) if ident.model else run.path.stem
        if run.doc.ci:
            run.ci_source = run.doc.ci_method or "from the results file"
    seen: dict[tuple, int] = {}
    for run in runs:
        key = (run.label, run.split_name)
        seen[key] = seen.get(key, 0) + 1
    for run in runs:
        if seen[(run.label, run.split_name)] > 1:
            run.label += f" [{run.path.parent.name}/{run.path.name}]"
    return runs


def fill_missing_ci(runs: list[Run], n_resamples: int, seed: int) -> None:
    """Bootstrap the CI from the records for runs whose file has none (n_resamples = 0: skip)."""
    from refbench.metrics.stats import bootstrap_ci

    if n_resamples <= 0:
        return
    for run in runs:
        if run.doc.ci or run.doc.records_path is None:
            continue
        intervals = bootstrap_ci(run.records(), run.doc.protocol, n_resamples=n_resamples, seed=seed)
        run.doc.ci = {k: (v.low, v.high) for k, v in intervals.items()}
        run.ci_source = f"percentile bootstrap over sentences from records.jsonl, {n_resamples} resamples, seed {seed}"


# ---- formatting ------------------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2) -> str:
    return EMPTY if value is None else f"{value:.{digits}f}"


def fmt_ci(ci: tuple[float | None, float | None] | None) -> str:
    if ci is None or ci[0] is None or ci[1] is None:
        return EMPTY
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def reproduced_suffix(published: PublishedNumber | None, value: float | None,
                      ci: tuple[float | None, float | None] | None) -> str:
    """``/ 75.10 (-0.14, [74.60, 75.62])``: what follows the published value in a cell."""
    if value is None:
        return f"/ {EMPTY}"
    parts = []
    if published is not None:
        parts.append(f"{value - published.value:+.2f}")
    if ci is not None and ci[0] is not None:
        parts.append(fmt_ci(ci))
    return f"/ {value:.2f}" + (f" ({', '.join(parts)})" if parts else "")


# ---- notes ---------------------------------------------------------------------------------------------------
def protocol_notes(numbers_used: list[tuple[Run, PublishedNumber]]) -> list[str]:
    """One note per run whose protocol differs from the protocol behind the matched published numbers."""
    notes, done = [], set()
    for run, num in numbers_used:
        why = protocol_mismatch(run.doc, num)
        key = (id(run), source(num))
        if why is None or key in done:
            continue
        done.add(key)
        notes.append(f"{run.label} ({run.split_name}) {why}: the numbers are not directly comparable")
    return notes


def partial_notes(runs: list[Run]) -> list[str]:
    return [f"{run.label} ({run.split_name or run.doc.kind + ' run'}) is {run.doc.identity.partial_text()} samples "
            "(--limit or skipped images): not comparable with a number over the whole split"
            for run in runs if run.doc.partial]


def _value_text(run: Run, value: float | None) -> str:
    text = fmt(value)
    return f"{text} (partial: {run.doc.identity.n_samples} of {run.doc.identity.split_samples or '?'})" \
        if run.doc.partial and value is not None else text


# ---- tables ------------------------------------------------------------------------------------------------------
def comparison_table(runs: list[Run], numbers: list[PublishedNumber], scope: str) -> Table:
    """One row per run and metric: published (and where from), reproduced, Δ, 95% CI."""
    rows: list[Row] = []
    used: list[tuple[Run, PublishedNumber]] = []
    for run in runs:
        for metric, value in run.metrics.items():
            pub = lookup(run.doc, metric, numbers)
            if pub is not None:
                used.append((run, pub))
            ci = run.ci.get(metric)
            delta = None if pub is None or value is None else value - pub.value
            cells = [Cell(pub.text if pub else EMPTY), Cell(source(pub) if pub else EMPTY), Cell(_value_text(run, value)),
                     Cell(EMPTY if delta is None else f"{delta:+.2f}"), Cell(fmt_ci(ci))]
            rows.append(Row([run.label, run.split_name or EMPTY, metric], cells))
    notes = [f"{run.label}: {run.path} (protocol {run.doc.protocol.name} [{run.doc.protocol_hash}])"
             + (f"; CI: {run.ci_source}" if run.ci else "; no CI") for run in runs]
    notes += partial_notes(runs) + protocol_notes(used)
    unmatched = [r.label for r in runs if r.doc.kind == "eval" and not any(u[0] is r for u in used)]
    if unmatched:
        notes.append(f"no published number found in {scope} for: {', '.join(unmatched)} "
                     "(published rows are matched by method_key = <model>-<variant> or <model>)")
    return Table("reproduced", "Published vs reproduced",
                 f"Reproduced numbers beside the published ones ({scope}); Δ = reproduced - published in "
                 "percentage points; 95% CI of the reproduced value.",
                 ["Run", "Split", "Metric"], ["Published", "Source", "Reproduced", "Δ", "95% CI"], rows, [], notes)


def cell_target(row: Row, col, cell: Cell) -> tuple[str, str, str | None, str] | None:
    """(dataset, split, subset, metric) a cell stands for: its number's, or the column's completed by the
    row's (when all numbers of the row agree); None if that is not determined."""
    if cell.number is not None:
        n = cell.number
        return n.dataset, n.split, n.subset, n.metric
    out = []
    for attr in ("dataset", "split", "metric"):
        value = getattr(col, attr)
        if value is None:
            values = {getattr(n, attr) for n in row.numbers}
            if len(values) != 1:
                return None
            value = values.pop()
        out.append(value)
    return out[0], out[1], col.subset, out[2]


def against_table(layout: Layout, runs: list[Run]) -> Table:
    """The paper's table with ``/ reproduced (Δ, CI)`` after every published value a run reproduces."""
    table = build_published(layout, leaderboards.numbers(layout.paper, layout.table))
    matched: set[int] = set()
    used: list[tuple[Run, PublishedNumber]] = []
    for row in table.rows:
        for k, run in enumerate(runs):
            ident = run.doc.identity
            if row.key not in method_keys(run.doc) or run.split_name is None:
                continue
            specific = f"{ident.model}-{ident.variant}"
            if row.key != specific and any(r.key == specific for r in table.rows):
                continue  # a more specific row exists for this variant
            for col, cell in zip(layout.columns, row.cells):
                target = cell_target(row, col, cell)
                if target is None or target[:3] != (ident.dataset, ident.split, ident.subset) \
                        or target[3] not in run.metrics:
                    continue
                metric = target[3]
                suffix = reproduced_suffix(cell.number, run.metrics[metric], run.ci.get(metric))
                if run.doc.partial:
                    suffix += f" [{ident.partial_text()}]"
                if cell.number is not None and protocol_mismatch(run.doc, cell.number):
                    suffix += f" [protocol {run.doc.protocol.name}]"
                if len(runs) > 1:
                    suffix += f" [r{k + 1}]"
                cell.extra = f"{cell.extra}; {suffix}" if cell.extra else suffix
                matched.add(k)
                if cell.number is not None:
                    used.append((run, cell.number))
    table.title += " with reproduced numbers"
    table.caption += " Reproduced values follow each published value: published / reproduced (Δ, 95% CI)."
    table.notes += [(f"[r{k + 1}] " if len(runs) > 1 else "") + f"{run.label}: {run.path} ({run.split_name})"
                    for k, run in enumerate(runs)]
    table.notes += partial_notes(runs) + protocol_notes(used)
    for k, run in enumerate(runs):
        if k not in matched:
            table.notes.append(f"{run.label} ({run.split_name or run.doc.kind + ' run'}) has no cell in {layout.key}: "
                               f"no row with method_key {' or '.join(method_keys(run.doc)) or '(none)'} and a column "
                               "for its split")
    return table


def generalization_table(runs: list[Run], metric: str, numbers: list[PublishedNumber]) -> Table | None:
    """Seen/unseen columns per split for the runs evaluated on generalization subsets (None if there are none)."""
    gen = [r for r in runs if r.doc.identity.subset is not None]
    if not gen:
        return None
    splits = list(dict.fromkeys((r.doc.identity.dataset, r.doc.identity.split) for r in gen))
    labels = list(dict.fromkeys(r.label for r in gen))
    rows = []
    for label in labels:
        cells = []
        for ds, sp in splits:
            for sub in ("seen", "unseen"):
                run = next((r for r in gen if r.label == label and (r.doc.identity.dataset, r.doc.identity.split,
                                                                    r.doc.identity.subset) == (ds, sp, sub)), None)
                if run is None or metric not in run.metrics:
                    cells.append(Cell())
                    continue
                pub = lookup(run.doc, metric, numbers)
                value, ci = run.metrics[metric], run.ci.get(metric)
                mark = f" [{run.doc.identity.partial_text()}]" if run.doc.partial else ""
                cells.append(Cell(pub.text, extra=reproduced_suffix(pub, value, ci) + mark) if pub
                             else Cell(fmt(value), extra=(f"({fmt_ci(ci)})" if ci and ci[0] is not None else "") + mark))
        rows.append(Row([label], cells))
    headers = [sub for _ in splits for sub in ("seen", "unseen")]
    groups = [(f"{ds}/{sp}", 2) for ds, sp in splits]
    return Table("generalization", "Generalization setting (seen / unseen)",
                 f"{metric} (%) on the seen and unseen subsets; cells with a published number read "
                 "published / reproduced (Δ, 95% CI), the others reproduced (95% CI).",
                 ["Run"], headers, rows, groups, partial_notes(gen))


def paired_table(runs: list[Run], n_permutations: int, n_resamples: int, seed: int) -> tuple[Table | None, list[str]]:
    """Paired significance test for every two runs on the same split whose scores are comparable.

    Comparable: the same protocol up to the binarization, which each model applies to its own output
    (a LAVT run under ``lavt`` with argmax and a MagNet run under ``lavt`` with sigmoid > 0.5 are scored
    the same way).
    """
    from refbench.metrics.stats import paired_test

    rows: list[Row] = []
    notes: list[str] = []
    by_split: dict[str | None, list[Run]] = {}
    for run in runs:
        by_split.setdefault(run.split_name, []).append(run)
    for split, group in by_split.items():
        for a, b in combinations(group, 2):
            what = f"{a.label} vs {b.label} ({split or 'score runs'})"
            if a.doc.records_path is None or b.doc.records_path is None:
                notes.append(f"paired test {what} skipped: no records.jsonl beside "
                             f"{a.path if a.doc.records_path is None else b.path}")
                continue
            if not comparable(a.doc.protocol.replace(binarize=None), b.doc.protocol.replace(binarize=None)):
                notes.append(f"paired test {what} skipped: the runs used different protocols")
                continue
            try:
                results = paired_test(a.records(), b.records(), a.doc.protocol, n_permutations=n_permutations,
                                      n_resamples=n_resamples, seed=seed)
            except RefbenchError as e:
                notes.append(f"paired test {what} skipped: {e}")
                continue
            for res in results:
                rows.append(Row([split or EMPTY, a.label, b.label, res.metric],
                                [Cell(fmt(res.a)), Cell(fmt(res.b)),
                                 Cell(EMPTY if res.delta is None else f"{res.delta:+.2f}"),
                                 Cell(fmt_ci((res.ci.low, res.ci.high))),
                                 Cell(EMPTY if res.p_value is None else f"{res.p_value:.4f}")]))
    if not rows:
        return None, notes
    table = Table("paired", "Paired tests",
                  f"Run A against run B on the same samples: Δ = A - B (percentage points), 95% paired bootstrap CI "
                  f"of Δ ({n_resamples} resamples), p-value of an approximate randomization test "
                  f"({n_permutations} permutations, seed {seed}).",
                  ["Split", "A", "B", "Metric"], ["A", "B", "Δ", "95% CI of Δ", "p"], rows, [], [])
    return table, notes


def compare_report(paths: list[str | Path], against: Layout | None = None, metric: str = "mIoU",
                   bootstrap: int = 1000, permutations: int = 10000, seed: int = 0) -> list[Table]:
    """Every table of ``refbench table --results``: [paper table], comparison, [seen/unseen], [paired]."""
    runs = load_runs(paths)
    fill_missing_ci(runs, bootstrap, seed)
    if against is not None:
        numbers = leaderboards.numbers(against.paper, against.table)
        scope = against.key
    else:
        numbers = main_numbers()
        scope = "the main tables of " + ", ".join(leaderboards.papers("paper")) + \
            " and refbench's reference table (synth)"
    tables = [against_table(against, runs)] if against is not None else []
    tables.append(comparison_table(runs, numbers, scope))
    gen = generalization_table(runs, metric, numbers)
    if gen is not None:
        tables.append(gen)
    paired, notes = paired_table(runs, permutations, bootstrap, seed)
    if paired is not None:
        paired.notes.extend(notes)
        tables.append(paired)
    else:
        tables[-1].notes.extend(notes)
    return tables


def bar_points(runs: list[Run], metric: str, numbers: list[PublishedNumber]):
    """Published-vs-reproduced bar data for ``plot_published_vs_reproduced`` (runs with ``metric``)."""
    from refbench.tables.plots import BarPoint

    points = []
    for run in runs:
        if metric not in run.metrics:
            continue
        pub = lookup(run.doc, metric, numbers)
        label = f"{run.label}\n{run.split_name or run.doc.kind}" + ("\n" + run.doc.identity.partial_text()
                                                                    if run.doc.partial else "")
        points.append(BarPoint(label, pub.value if pub else None, run.metrics[metric], run.ci.get(metric),
                               source(pub) if pub else ""))
    return points


def iou_series(paths: list[str | Path]) -> tuple[dict[str, tuple[np.ndarray, str]], list[str]]:
    """Per-sentence IoU of targeted samples per run, with the run's P@X comparison; plus notes.

    A path is a results JSON (records.jsonl beside it; protocol from the file) or a records
    ``.jsonl`` (P@X with >=).  Zero-target samples have no IoU to show and are left out.
    """
    from refbench.core.results import read_records_jsonl

    if not paths:
        raise RefbenchError("give one or more results JSON or records JSONL files")
    series: dict[str, tuple[np.ndarray, str]] = {}
    notes: list[str] = []
    json_paths = [Path(p) for p in paths if Path(p).suffix != ".jsonl"]
    runs = {r.path: r for r in load_runs(json_paths)} if json_paths else {}
    for p in map(Path, paths):
        if p.suffix == ".jsonl":
            rec, _ = read_records_jsonl(p)
            label = p.parent.name if p.stem == "records" and p.parent.name else p.stem
            compare = ">="
        else:
            run = runs[p]
            rec = run.records()
            label = run.label + (f" {run.split_name}" if run.split_name else "")
            compare = run.doc.protocol.p_compare
        targeted = rec.type != 0
        if (~targeted).any():
            notes.append(f"{label}: {int((~targeted).sum())} zero-target samples left out")
        while label in series:
            label += "'"
        series[label] = (rec.iou()[targeted], compare)
    return series, notes
