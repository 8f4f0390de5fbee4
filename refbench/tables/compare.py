"""Reproduced runs beside the published numbers: deltas, bootstrap CIs and paired tests.

A run is a refbench results file (``refbench.results`` v1, read with ``load_results``).
``eval`` runs carry ``model``, ``variant``, ``dataset``, ``split``, ``subset`` and are matched
to published rows whose ``method_key`` is ``<model>-<variant>`` or ``<model>`` (so
``magnet``/``paper`` matches MagNet's single-dataset row and ``magnet``/``all`` the ‡ row ``magnet-all``);
``score`` runs have no model or split and are shown without published numbers.
Per-sample records are read from ``records.jsonl`` beside the results file (or the path
in the document's ``records`` field); they give the bootstrap CI when the file has none and
the paired significance test between two runs of the same split.

Every reproduced value is displayed as ``published / reproduced (Δ, 95% CI)`` with
Δ = reproduced − published, in percentage points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import leaderboards
from leaderboards import PAPERS, PublishedNumber
from refbench.core.errors import RefbenchError
from refbench.core.records import SampleRecords
from refbench.core.protocols import Protocol
from refbench.core.results import load_results, read_records_jsonl
from refbench.tables.grid import EMPTY, Cell, Row, Table, build_published
from refbench.tables.layouts import LAYOUTS, Layout

SUBSETS = (None, "seen", "unseen")


@dataclass
class Run:
    """One results file, as far as tables need it."""

    path: Path
    kind: str
    model: str | None
    variant: str | None
    dataset: str | None
    split: str | None
    subset: str | None
    metrics: dict[str, float | None]
    ci: dict[str, tuple[float | None, float | None]]
    ci_source: str
    protocol: Protocol | None
    protocol_hash: str | None
    records_path: Path | None
    label: str = ""
    _records: SampleRecords | None = field(default=None, repr=False)

    @property
    def split_name(self) -> str | None:
        """``dataset/split[:subset]``, or None for a ``score`` run."""
        if self.dataset is None or self.split is None:
            return None
        return f"{self.dataset}/{self.split}" + (f":{self.subset}" if self.subset else "")

    def method_keys(self) -> list[str]:
        """Published ``method_key`` values this run stands for, most specific first."""
        if self.model is None:
            return []
        return ([f"{self.model}-{self.variant}"] if self.variant else []) + [self.model]

    def records(self) -> SampleRecords:
        """Per-sample records (read once); a RefbenchError if the run has none."""
        if self._records is None:
            if self.records_path is None:
                raise RefbenchError(f"{self.path}: no per-sample records (expected records.jsonl beside it)")
            self._records, _ = read_records_jsonl(self.records_path)
        return self._records


def _protocol_of(doc: dict, path: Path) -> Protocol | None:
    d = doc.get("protocol")
    if d is None:
        return None
    if not isinstance(d, dict):
        raise RefbenchError(f"{path}: field 'protocol' must be an object")
    try:
        return Protocol(**{**d, "thresholds": tuple(d.get("thresholds", (0.5, 0.6, 0.7, 0.8, 0.9)))})
    except TypeError as e:
        raise RefbenchError(f"{path}: field 'protocol' does not describe a refbench protocol ({e})") from None


def load_run(path: str | Path) -> Run:
    """Read one results file (schema checked by ``load_results``) into a :class:`Run`."""
    path = Path(path)
    doc = load_results(path)
    kind = doc.get("kind")
    if kind not in ("eval", "score"):
        raise RefbenchError(f"{path}: field 'kind' is {kind!r}; refbench table reads 'eval' and 'score' results")
    fields: dict[str, str | None] = {}
    for name in ("model", "variant", "dataset", "split", "subset"):
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            raise RefbenchError(f"{path}: field {name!r} must be a string, got {value!r}")
        fields[name] = value or None
    if kind == "eval":
        for name in ("model", "dataset", "split"):
            if fields[name] is None:
                raise RefbenchError(f"{path}: eval results file has no {name!r}; re-run refbench eval to write it")
    if fields["subset"] not in SUBSETS:
        raise RefbenchError(f"{path}: field 'subset' is {fields['subset']!r}; use null, 'seen' or 'unseen'")
    metrics: dict[str, float | None] = {}
    for name, value in doc["metrics"].items():
        if value is not None and not isinstance(value, (int, float)):
            raise RefbenchError(f"{path}: metrics[{name!r}] is {value!r}, not a number")
        metrics[name] = None if value is None else float(value)
    ci: dict[str, tuple[float | None, float | None]] = {}
    for name, pair in (doc.get("ci") or {}).items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise RefbenchError(f"{path}: ci[{name!r}] must be [low, high]")
        ci[name] = (pair[0], pair[1])
    rec = doc.get("records")
    records_path = (path.parent / rec) if isinstance(rec, str) else path.parent / "records.jsonl"
    return Run(path, kind, fields["model"], fields["variant"], fields["dataset"], fields["split"], fields["subset"],
               metrics, ci, (doc.get("ci_method") or "from the results file") if ci else "",
               _protocol_of(doc, path), doc.get("protocol_hash"), records_path if records_path.exists() else None)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Load runs and give each a short unique label (``model/variant split`` or the file name)."""
    if not paths:
        raise RefbenchError("no results files given; pass one or more results JSON files after --results")
    runs = [load_run(p) for p in paths]
    for run in runs:
        if run.model:
            run.label = run.model + (f"/{run.variant}" if run.variant else "")
        else:
            run.label = run.path.stem
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
        if run.ci or run.records_path is None or run.protocol is None:
            continue
        intervals = bootstrap_ci(run.records(), run.protocol, n_resamples=n_resamples, seed=seed)
        run.ci = {k: (v.low, v.high) for k, v in intervals.items()}
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


# ---- matching ----------------------------------------------------------------------------------------------------
def _source(n: PublishedNumber) -> str:
    return f"{n.paper}:{n.table}"


def lookup(run: Run, metric: str, numbers: list[PublishedNumber]) -> PublishedNumber | None:
    """The published number for the run's model, split and ``metric`` (own paper first, then paper/table order)."""
    if run.split_name is None:
        return None
    for key in run.method_keys():
        hits = [n for n in numbers if n.method_key == key and n.dataset == run.dataset and n.split == run.split
                and n.subset == run.subset and n.metric == metric]
        if hits:
            own = [n for n in hits if n.paper == run.model]
            return (own or hits)[0]
    return None


def main_numbers() -> list[PublishedNumber]:
    """Every number of the ``main`` tables (the ones a run is matched against without --against)."""
    return [n for n in leaderboards.published() if LAYOUTS[f"{n.paper}:{n.table}"].kind == "main"]


def protocol_notes(runs: list[Run], numbers_used: list[tuple[Run, PublishedNumber]]) -> list[str]:
    """One note per run whose protocol differs from the protocol behind the matched published numbers."""
    notes = []
    done = set()
    for run, num in numbers_used:
        expected = LAYOUTS[_source(num)].protocol_for(num.dataset, num.method_key)
        key = (id(run), expected)
        if key in done or expected is None or run.protocol is None:
            continue
        done.add(key)
        if run.protocol.name != expected:
            notes.append(f"{run.label} ({run.split_name}) was scored with protocol {run.protocol.name}; "
                         f"{_source(num)} reports protocol {expected}: the numbers are not directly comparable")
    return notes


# ---- tables ------------------------------------------------------------------------------------------------------
def comparison_table(runs: list[Run], numbers: list[PublishedNumber], scope: str) -> Table:
    """One row per run and metric: published (and where from), reproduced, Δ, 95% CI."""
    rows: list[Row] = []
    used: list[tuple[Run, PublishedNumber]] = []
    for run in runs:
        for metric, value in run.metrics.items():
            pub = lookup(run, metric, numbers)
            if pub is not None:
                used.append((run, pub))
            ci = run.ci.get(metric)
            delta = None if pub is None or value is None else value - pub.value
            cells = [Cell(pub.text if pub else EMPTY), Cell(_source(pub) if pub else EMPTY), Cell(fmt(value)),
                     Cell(EMPTY if delta is None else f"{delta:+.2f}"), Cell(fmt_ci(ci))]
            rows.append(Row([run.label, run.split_name or EMPTY, metric], cells))
    notes = [f"{run.label}: {run.path}" + (f" (protocol {run.protocol.name} [{run.protocol_hash}])" if run.protocol
                                            else "") + (f"; CI: {run.ci_source}" if run.ci else "; no CI")
             for run in runs]
    notes += protocol_notes(runs, used)
    unmatched = [r.label for r in runs if r.kind == "eval" and not any(u[0] is r for u in used)]
    if unmatched:
        notes.append(f"no published number found in {scope} for: {', '.join(unmatched)} "
                     "(published rows are matched by method_key = <model>-<variant> or <model>)")
    return Table("reproduced", "Published vs reproduced",
                 f"Reproduced numbers beside the published ones ({scope}); Δ = reproduced - published in "
                 "percentage points; 95% CI of the reproduced value.",
                 ["Run", "Split", "Metric"], ["Published", "Source", "Reproduced", "Δ", "95% CI"], rows, [], notes)


def _cell_target(row: Row, col, cell: Cell) -> tuple[str, str, str | None, str] | None:
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
    table = build_published(layout, leaderboards.published(layout.paper, layout.table))
    matched: set[int] = set()
    used: list[tuple[Run, PublishedNumber]] = []
    for row in table.rows:
        for k, run in enumerate(runs):
            if row.key not in run.method_keys() or run.split_name is None:
                continue
            specific = f"{run.model}-{run.variant}"
            if row.key != specific and any(r.key == specific for r in table.rows):
                continue  # a more specific row exists for this variant
            for col, cell in zip(layout.columns, row.cells):
                target = _cell_target(row, col, cell)
                if target is None or target[:3] != (run.dataset, run.split, run.subset) or target[3] not in run.metrics:
                    continue
                metric = target[3]
                suffix = reproduced_suffix(cell.number, run.metrics[metric], run.ci.get(metric))
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
    table.notes += protocol_notes(runs, used)
    for k, run in enumerate(runs):
        if k not in matched:
            table.notes.append(f"{run.label} ({run.split_name or run.kind + ' run'}) has no cell in {layout.key}: "
                               f"no row with method_key {' or '.join(run.method_keys()) or '(none)'} and a column "
                               "for its split")
    return table


def generalization_table(runs: list[Run], metric: str, numbers: list[PublishedNumber]) -> Table | None:
    """Seen/unseen columns per split for the runs evaluated on generalization subsets (None if there are none)."""
    gen = [r for r in runs if r.subset is not None]
    if not gen:
        return None
    splits = list(dict.fromkeys((r.dataset, r.split) for r in gen))
    labels = list(dict.fromkeys(r.label for r in gen))
    rows = []
    for label in labels:
        cells = []
        for ds, sp in splits:
            for sub in ("seen", "unseen"):
                run = next((r for r in gen if r.label == label and (r.dataset, r.split, r.subset) == (ds, sp, sub)),
                           None)
                if run is None or metric not in run.metrics:
                    cells.append(Cell())
                    continue
                pub = lookup(run, metric, numbers)
                value, ci = run.metrics[metric], run.ci.get(metric)
                cells.append(Cell(pub.text, extra=reproduced_suffix(pub, value, ci)) if pub
                             else Cell(fmt(value), extra=f"({fmt_ci(ci)})" if ci and ci[0] is not None else ""))
        rows.append(Row([label], cells))
    headers = [sub for _ in splits for sub in ("seen", "unseen")]
    groups = [(f"{ds}/{sp}", 2) for ds, sp in splits]
    return Table("generalization", "Generalization setting (seen / unseen)",
                 f"{metric} (%) on the seen and unseen subsets; cells with a published number read "
                 "published / reproduced (Δ, 95% CI), the others reproduced (95% CI).",
                 ["Run"], headers, rows, groups)


def paired_table(runs: list[Run], n_permutations: int, n_resamples: int, seed: int) -> tuple[Table | None, list[str]]:
    """Paired significance test for every two runs on the same split (and protocol) that have records."""
    from refbench.metrics.stats import paired_test

    rows: list[Row] = []
    notes: list[str] = []
    by_split: dict[str | None, list[Run]] = {}
    for run in runs:
        by_split.setdefault(run.split_name, []).append(run)
    for split, group in by_split.items():
        for a, b in combinations(group, 2):
            what = f"{a.label} vs {b.label} ({split or 'score runs'})"
            if a.records_path is None or b.records_path is None:
                notes.append(f"paired test {what} skipped: no records.jsonl beside "
                             f"{a.path if a.records_path is None else b.path}")
                continue
            if a.protocol is None or a.protocol_hash != b.protocol_hash:
                notes.append(f"paired test {what} skipped: the runs used different protocols")
                continue
            try:
                results = paired_test(a.records(), b.records(), a.protocol, n_permutations=n_permutations,
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
        numbers = leaderboards.published(against.paper, against.table)
        scope = against.key
    else:
        numbers = main_numbers()
        scope = "the main tables of " + ", ".join(PAPERS) + " and refbench's reference table (synth)"
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
        pub = lookup(run, metric, numbers)
        points.append(BarPoint(f"{run.label}\n{run.split_name or run.kind}", pub.value if pub else None,
                               run.metrics[metric], run.ci.get(metric), _source(pub) if pub else ""))
    return points
