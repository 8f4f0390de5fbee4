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
    """Checks for every metric of the run (or only ``metrics``) that has a published counterpart.

    Refused (RefbenchError) for a partial run, for a run of another kind than ``eval``, and for a run
    scored under another protocol than the one the paper used: a number is only ever called
    reproduced against a number made the same way.
    """
    from refbench.core.results import read_results
    from refbench.tables.match import lookup, main_numbers, protocol_mismatch, source

    doc = read_results(path)
    if doc.kind != "eval":
        raise RefbenchError(f"{path}: only `refbench eval` results can be verified (this is a {doc.kind!r} file)")
    if doc.partial:
        raise RefbenchError(f"{path}: the run is {doc.identity.partial_text()} sentences (--limit or skipped images); "
                            "only a complete split can be compared with a published number")
    unknown = [m for m in metrics if m not in doc.metrics]
    if unknown:
        raise RefbenchError(f"--metric {unknown[0]!r}: the run reports no such metric (it has "
                            f"{', '.join(doc.metrics)})")
    numbers = main_numbers()
    checks, notes = [], []
    for metric, value in doc.metrics.items():
        if metrics and metric not in metrics:
            continue
        pub = lookup(doc, metric, numbers)
        if pub is None:
            continue
        why = protocol_mismatch(doc, pub)
        if why is not None:
            raise RefbenchError(f"{path}: {why}; re-run the evaluation with --protocol "
                                f"{why.rsplit('reports protocol ', 1)[1].split(' ')[0]} to verify it")
        delta = None if value is None else value - pub.value
        checks.append(Check(metric, pub.value, source(pub), value, delta, doc.ci.get(metric),
                            delta is not None and abs(delta) <= tolerance + 1e-9))
    if not checks:
        ident = doc.identity
        raise RefbenchError(f"{path}: no published number for model {ident.model!r} (variant {ident.variant!r}) on "
                            f"{ident.split_name}; see `refbench table --list` for what the papers report")
    notes.append(f"protocol {doc.protocol.name} [{doc.protocol_hash}], the protocol of the published numbers")
    return checks, notes


def format_checks(checks: list[Check], tolerance: float) -> str:
    rows = [("metric", "published", "reproduced", "delta", "95% CI", "within ±%g" % tolerance)]
    for c in checks:
        ci = "–" if not c.ci or c.ci[0] is None else f"[{c.ci[0]:.2f}, {c.ci[1]:.2f}]"
        rows.append((c.metric, f"{c.published:.2f} ({c.source})", "–" if c.reproduced is None else f"{c.reproduced:.2f}",
                     "–" if c.delta is None else f"{c.delta:+.2f}", ci, "yes" if c.ok else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows)
