"""Plain-text rendering of metric reports and results documents for the terminal."""
from __future__ import annotations

from refbench.core.protocols import Protocol
from refbench.core.results import ResultsDoc
from refbench.metrics.accumulator import MetricReport
from refbench.metrics.stats import Interval


def format_value(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _table(metrics: dict, ci: dict | None, counts: dict, protocol: Protocol, notes: list[str],
           title: str | None) -> str:
    rows = []
    for name, v in metrics.items():
        row = [name, format_value(v)]
        if ci is not None:
            iv = ci.get(name)
            row.append("–" if iv is None or iv[0] is None else f"[{iv[0]:.2f}, {iv[1]:.2f}]")
        rows.append(row)
    header = ["metric", "value (%)"] + (["95% CI"] if ci is not None else [])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [title] if title else []
    out.append(line(header))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    out.append(f"samples: {counts['total']} (zero {counts['zero']}, one {counts['one']}, many {counts['many']})")
    out.append(protocol.summary())
    out.extend(f"note: {n}" for n in notes)
    return "\n".join(out)


def metrics_table(report: MetricReport, ci: dict[str, Interval] | None = None, title: str | None = None) -> str:
    """A readable table: one row per metric, value in percent, 95 % CI when given."""
    pairs = None if ci is None else {k: (v.low, v.high) for k, v in ci.items()}
    protocol = Protocol(**{**report.protocol, "thresholds": tuple(report.protocol["thresholds"])})
    return _table(report.metrics, pairs, report.counts, protocol, report.notes, title)


def results_table(doc: ResultsDoc, title: str | None = None) -> str:
    """The same table for a results document (its notes say when the run is partial)."""
    return _table(doc.metrics, doc.ci or None, doc.counts, doc.protocol, doc.notes, title)
