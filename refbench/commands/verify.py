"""``refbench verify``: compare a run with the published number of its model and split."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(name="verify")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--tolerance", default=0.1, show_default=True, type=click.FloatRange(0, 100),
              help="Largest |reproduced - published| (percentage points) that counts as reproduced.")
@click.option("--metric", "metrics", multiple=True, help="Check only this metric (repeatable), e.g. --metric oIoU.")
def verify_cmd(results: Path, tolerance: float, metrics: tuple[str, ...]) -> None:
    """Say whether RESULTS.json (from `refbench eval`) reproduces the published numbers.

    Exit code 0 when every matched metric is within the tolerance, 1 otherwise.

    Example: refbench verify runs/magnet-paper/refcoco+_testB/results.json
    """
    from refbench.verify import format_checks, verify_run

    checks, notes = verify_run(results, tolerance, metrics)
    click.echo(format_checks(checks, tolerance))
    for n in notes:
        click.echo(f"note: {n}")
    ok = all(c.ok for c in checks)
    click.echo(("REPRODUCED" if ok else "NOT REPRODUCED") + f": {sum(c.ok for c in checks)}/{len(checks)} metrics "
               f"within ±{tolerance:g} points of the published values")
    sys.exit(0 if ok else 1)
