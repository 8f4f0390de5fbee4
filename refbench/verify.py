"""``refbench verify``: does a run reproduce the published number of its model and split?

The run's model (and variant), dataset, split, subset and every metric it reports are looked
up in the published tables (``leaderboards``; the model's own paper first).  A metric
reproduces when |reproduced − published| <= tolerance (percentage points).  The default
tolerance, 0.1 points, covers the rounding of the printed numbers (0.005) and the float
differences between refbench's batched evaluation and the official batch-1 scripts (on the
parity fixtures < 0.1 % of mask pixels flip, all within 1e-3 of the decision boundary).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from refbench.core.errors import RefbenchError

DEFAULT_TOLERANCE = 0.1


@dataclass
class Check:
    metric: str
    published: float
    source: str
    reproduced: float | None
    delta: float | None
    ci: tuple[float | None, float | None] | None
    ok: bool


def verify_run(path: str | Path, tolerance: float = DEFAULT_TOLERANCE,
               metrics: tuple[str, ...] = ()) -> tuple[list[Check], list[str]]:
    """Checks for every metric of the run (or only ``metrics``) that has a published counterpart."""
    from refbench.core.results import load_results
    from refbench.tables.compare import load_run, lookup, main_numbers, protocol_notes

    doc = load_results(path)
    if doc.get("kind") != "eval":
        raise RefbenchError(f"{path}: only `refbench eval` results can be verified (this is a {doc.get('kind')!r} file)")
    expected = doc.get("expected_sentences")
    if doc.get("limit") is not None or (expected is not None and doc.get("n_samples") != expected):
        raise RefbenchError(f"{path}: the run scored {doc.get('n_samples')} of {expected} sentences (--limit or "
                            "skipped images); only a complete split can be compared with a published number")
    run = load_run(path)
    numbers = main_numbers()
    checks, used = [], []
    for metric, value in run.metrics.items():
        if metrics and metric not in metrics:
            continue
        pub = lookup(run, metric, numbers)
        if pub is None:
            continue
        used.append((run, pub))
        delta = None if value is None else value - pub.value
        checks.append(Check(metric, pub.value, f"{pub.paper}:{pub.table}", value, delta, run.ci.get(metric),
                            delta is not None and abs(delta) <= tolerance + 1e-9))
    if not checks:
        raise RefbenchError(f"{path}: no published number for model {run.model!r} (variant {run.variant!r}) on "
                            f"{run.split_name}; see `refbench table --list` for what the papers report")
    return checks, protocol_notes([run], used)


def format_checks(checks: list[Check], tolerance: float) -> str:
    rows = [("metric", "published", "reproduced", "delta", "95% CI", "within ±%g" % tolerance)]
    for c in checks:
        ci = "–" if not c.ci or c.ci[0] is None else f"[{c.ci[0]:.2f}, {c.ci[1]:.2f}]"
        rows.append((c.metric, f"{c.published:.2f} ({c.source})", "–" if c.reproduced is None else f"{c.reproduced:.2f}",
                     "–" if c.delta is None else f"{c.delta:+.2f}", ci, "yes" if c.ok else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows)
