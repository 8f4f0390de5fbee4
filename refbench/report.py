"""Plain-text rendering of metric reports for the terminal."""
from __future__ import annotations

from refbench.metrics.accumulator import MetricReport
from refbench.metrics.stats import Interval
from refbench.core.protocols import Protocol


def format_value(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def metrics_table(report: MetricReport, ci: dict[str, Interval] | None = None, title: str | None = None) -> str:
    """A readable table: one row per metric, value in percent, 95 % CI when given."""
    rows = []
    for name, v in report.metrics.items():
        row = [name, format_value(v)]
        if ci is not None:
            iv = ci.get(name)
            row.append("–" if iv is None or iv.low is None else f"[{iv.low:.2f}, {iv.high:.2f}]")
        rows.append(row)
    header = ["metric", "value (%)"] + (["95% CI"] if ci is not None else [])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = []
    if title:
        out.append(title)
    out.append(line(header))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    c = report.counts
    out.append(f"samples: {c['total']} (zero {c['zero']}, one {c['one']}, many {c['many']})")
    out.append(Protocol(**{**report.protocol, "thresholds": tuple(report.protocol["thresholds"])}).summary())
    out.extend(f"note: {n}" for n in report.notes)
    return "\n".join(out)
