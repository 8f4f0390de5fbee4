"""An :class:`~refbench.analysis.analyze.Analysis` as tables (rendered by ``refbench.tables``), a figure and JSON.

Tables are :class:`refbench.tables.grid.Table` objects, so Markdown, LaTeX and CSV come from the
project's renderers (escaping included).  Every table states the protocol, the CI method and, in
its notes, the exact definition of every partition (word lists and bins included).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refbench.analysis import slices as S
from refbench.analysis.analyze import Analysis, SliceResult
from refbench.core.errors import RefbenchError
from refbench.tables.compare import fmt, fmt_ci
from refbench.tables.grid import EMPTY, Cell, Row, Table

SCHEMA = "refbench.analysis"
#: partitions with more slices than this show only the largest ones in the figure (all in tables and JSON)
FIGURE_MAX_SLICES = 12


def definition_notes() -> list[str]:
    """One note per partition: its exact definition."""
    return [f"{p.name}: {p.definition}" for p in S.PARTITIONS] + [
        "every partition puts each sample in exactly one slice ('no target' where a definition needs a target); a "
        "slice's metrics are the run's metrics restricted to its samples (refbench.metrics on the records)",
        "object sizes are measured on the GT at the original image resolution; both the COCO absolute-area bins and "
        "the share-of-image bins are shown"]


def _rows(results: list[SliceResult], cells_of) -> list[Row]:
    rows, previous = [], None
    for s in results:
        first = s.partition != previous
        rows.append(Row([s.partition if first else "", s.label], cells_of(s), rule_above=first and previous is not None))
        previous = s.partition
    return rows


def slice_table(a: Analysis, k: int = 0) -> Table:
    """Run ``k``'s slices: n, share, and each shown metric with its 95 % CI."""
    run = a.runs[k]
    shown = a.shown_metrics()

    def cells(s: SliceResult) -> list[Cell]:
        return [Cell(str(s.n)), Cell(f"{100 * s.share:.1f}")] + [
            Cell(fmt(s.metrics.get(m)), extra=fmt_ci(s.ci.get(m)) if s.ci.get(m) and s.metrics.get(m) is not None
                 else "") for m in shown]

    ci = (f"95% CI: percentile bootstrap over the slice's sentences ({a.bootstrap} resamples, seed {a.seed})"
          if a.bootstrap else "no CI (--bootstrap 0)")
    partial = f"; {run.partial_text} samples" if run.partial_text else ""
    caption = (f"{', '.join(shown)} (%) of {run.label} on {run.split_name} by slice, protocol {run.protocol.name} "
               f"[{run.protocol.hash()}]{partial}; n = sentences in the slice, share = n / all sentences of the run "
               f"(%); {ci}.")
    notes = [*a.notes, *definition_notes()] if k == 0 else [*a.notes, "slice definitions: see the first table"]
    return Table(f"slices-{k + 1}", f"Slices of {run.label} on {run.split_name}", caption, ["Partition", "Slice"],
                 ["n", "share (%)", *[f"{m} (95% CI)" for m in shown]], _rows(a.slices[k], cells), [], notes)


def paired_tables(a: Analysis) -> list[Table]:
    """One table per shown metric: A, B, Δ = A − B, the paired-bootstrap CI of Δ and the p-value, per slice."""
    if a.paired is None:
        return []
    ra, rb = a.runs
    out = []
    by_key = {(p.partition, p.label): p for p in a.paired}
    for m in a.shown_metrics():
        def cells(s: SliceResult, m=m) -> list[Cell]:
            res = next(r for r in by_key[(s.partition, s.label)].results if r.metric == m)
            return [Cell(str(s.n)), Cell(fmt(res.a)), Cell(fmt(res.b)),
                    Cell(EMPTY if res.delta is None else f"{res.delta:+.2f}"), Cell(fmt_ci((res.ci.low, res.ci.high))),
                    Cell(EMPTY if res.p_value is None else f"{res.p_value:.4f}")]

        caption = (f"{m} (%) by slice: A = {ra.label}, B = {rb.label}, both on {ra.split_name} under protocol "
                   f"{ra.protocol.name}; Δ = A - B in percentage points, 95% paired-bootstrap CI of Δ ({a.bootstrap} "
                   f"resamples), p-value of an approximate randomization test ({a.permutations} permutations, seed "
                   f"{a.seed}) on the slice's sentences.")
        out.append(Table(f"slices-paired-{m}", f"{m} by slice: {ra.label} vs {rb.label}", caption,
                         ["Partition", "Slice"], ["n", "A", "B", "Δ", "95% CI of Δ", "p"], _rows(a.slices[0], cells),
                         [], [*a.notes, "slice definitions: see the first table"]))
    return out


def tables(a: Analysis) -> list[Table]:
    """Every table of the analysis: one per run, then the paired ones."""
    return [slice_table(a, k) for k in range(len(a.runs))] + paired_tables(a)


def to_json(a: Analysis) -> dict:
    """The analysis as a JSON document (all metrics of every slice, definitions, word lists and bins)."""
    def slice_doc(s: SliceResult) -> dict:
        return {"partition": s.partition, "label": s.label, "n": s.n, "share": s.share, "metrics": s.metrics,
                "ci": {k: list(v) for k, v in s.ci.items()}}

    doc = {"schema": SCHEMA, "schema_version": 1, "bootstrap": a.bootstrap, "seed": a.seed,
           "permutations": a.permutations if a.paired is not None else None,
           "definitions": {p.name: p.definition for p in S.PARTITIONS},
           "word_lists": {"spatial": sorted(S.SPATIAL_WORDS), "relational": sorted(S.RELATIONAL_WORDS),
                          "attribute": sorted(S.ATTRIBUTE_WORDS)},
           "bins": {"expression length (words, inclusive)": [[lo, None if hi == float("inf") else hi, label]
                                                             for lo, hi, label in S.LENGTH_BINS],
                    "COCO area (px, upper bound exclusive)": [[None if up == float("inf") else up, label]
                                                               for up, label in S.COCO_AREA_BINS],
                    "share of image (upper bound exclusive)": [[None if up == float("inf") else up, label]
                                                                for up, label in S.SHARE_BINS],
                    "same-category objects (inclusive)": [[lo, None if hi == float("inf") else hi, label]
                                                          for lo, hi, label in S.AMBIGUITY_BINS]},
           "notes": a.notes,
           "runs": [{"path": str(r.path), "label": r.label, "split": r.split_name, "samples": len(r.records),
                     "partial": r.partial_text or None, "protocol": r.protocol.name,
                     "protocol_hash": r.protocol.hash(), "slices": [slice_doc(s) for s in a.slices[k]]}
                    for k, r in enumerate(a.runs)]}
    if a.paired is not None:
        doc["paired"] = [{"partition": p.partition, "label": p.label, "n": p.n,
                          "results": [r.to_dict() for r in p.results]} for p in a.paired]
    return doc


def plot_slices(a: Analysis, out: str | Path, metric: str | None = None, dpi: int = 110) -> Path:
    """One panel per partition: the metric per slice (bars, 95 % CI whiskers, n beside each bar); with two
    runs, A and B side by side.  Partitions with many slices show the :data:`FIGURE_MAX_SLICES` largest."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from refbench.tables.figure_io import check_png_out
    from refbench.tables.plots import plain

    metric = metric or a.shown_metrics()[0]
    check_png_out(out)
    parts = [p.name for p in S.PARTITIONS]
    ncol = 2
    nrow = (len(parts) + ncol - 1) // ncol
    heights = []
    for name in parts:
        n = sum(1 for s in a.slices[0] if s.partition == name)
        heights.append(min(n, FIGURE_MAX_SLICES))
    row_h = [max(heights[r * ncol:(r + 1) * ncol]) * 0.32 + 0.9 for r in range(nrow)]
    colors = ["tab:blue", "tab:orange"]
    with matplotlib.rc_context({"text.usetex": False}):
        fig = Figure(figsize=(12.0, sum(row_h) + 0.8), layout="constrained")
        axes = fig.subplots(nrow, ncol, squeeze=False, gridspec_kw={"height_ratios": row_h})
        for ax, name in zip(axes.flat, parts):
            per_run = [[s for s in sl if s.partition == name] for sl in a.slices]
            shown = sorted(per_run[0], key=lambda s: -s.n)[:FIGURE_MAX_SLICES]
            order = {s.label: k for k, s in enumerate(per_run[0])}
            shown.sort(key=lambda s: order[s.label])
            y = np.arange(len(shown))
            h = 0.8 / len(a.runs)
            for k, (run, sl) in enumerate(zip(a.runs, per_run)):
                by = {s.label: s for s in sl}
                vals = np.array([np.nan if by[s.label].metrics.get(metric) is None else by[s.label].metrics[metric]
                                 for s in shown])
                lo = np.array([_whisker(by[s.label], metric, 0) for s in shown])
                hi = np.array([_whisker(by[s.label], metric, 1) for s in shown])
                ax.barh(y + (k - (len(a.runs) - 1) / 2) * h, np.nan_to_num(vals), h, xerr=np.vstack([lo, hi]),
                        color=colors[k % 2], capsize=2, label=plain(run.label))
            ax.set_yticks(y, [plain(f"{s.label} (n={s.n})") for s in shown], fontsize=7)
            ax.set_ylim(max(len(shown), 3) - 0.5, -0.5)  # top to bottom; bars keep their height with few slices
            ax.set_xlim(0, 100)
            ax.set_xlabel(plain(f"{metric} (%)"), fontsize=7)
            more = len(per_run[0]) - len(shown)
            ax.set_title(plain(name + (f" ({more} smaller slices not shown)" if more > 0 else "")), fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3)
        for ax in list(axes.flat)[len(parts):]:
            ax.set_visible(False)
        if len(a.runs) > 1:
            axes.flat[0].legend(fontsize=7, loc="lower right")
        run = a.runs[0]
        fig.suptitle(plain(f"{metric} (%) by slice with 95% CI, protocol {run.protocol.name}; "
                           + ", ".join(f"{r.label} on {r.split_name}" + (f" ({r.partial_text})" if r.partial_text
                                                                          else "") for r in a.runs)), fontsize=10)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(fig)
        fig.savefig(out, dpi=dpi)
    return out


def _whisker(s: SliceResult, metric: str, k: int) -> float:
    v, ci = s.metrics.get(metric), s.ci.get(metric)
    if v is None or not ci or ci[k] is None:
        return 0.0
    return abs(ci[k] - v)


def write_outputs(a: Analysis, out: Path, stem: str = "slices") -> dict[str, Path]:
    """``<stem>.md``, ``.tex`` (+ ``_standalone.tex``), ``.csv``, ``.png`` and ``.json`` in folder ``out``."""
    from refbench.core.results import write_json_atomic, write_text_atomic
    from refbench.tables import render

    if out.exists() and not out.is_dir():
        raise RefbenchError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    ts = tables(a)
    paths = {"markdown": out / f"{stem}.md", "latex": out / f"{stem}.tex", "latex_standalone":
             out / f"{stem}_standalone.tex", "csv": out / f"{stem}.csv", "figure": out / f"{stem}.png",
             "json": out / f"{stem}.json"}
    write_text_atomic(paths["markdown"], render(ts, "markdown"))
    write_text_atomic(paths["latex"], render(ts, "latex"))
    write_text_atomic(paths["latex_standalone"], render(ts, "latex", standalone=True))
    write_text_atomic(paths["csv"], render(ts, "csv"))
    plot_slices(a, paths["figure"])
    write_json_atomic(paths["json"], to_json(a))
    return paths


__all__ = ["slice_table", "paired_tables", "tables", "to_json", "plot_slices", "write_outputs", "definition_notes"]
