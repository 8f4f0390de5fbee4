"""``refbench analyze``: a run's metrics by slice (target type, length, size, category, seen/unseen, words,
ambiguity) with 95 % CIs; two runs compared per slice with a paired test."""
from __future__ import annotations

from pathlib import Path

import click

from refbench.commands.options import BOOTSTRAP, SEED


@click.command(name="analyze")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for slices.md, slices.tex, slices.csv, slices.png and slices.json.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Write the analysis (every metric of every slice, definitions) as JSON here.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv"]), default="markdown",
              show_default=True, help="What is printed.")
@click.option("--data-root", default=None,
              help="Data root holding the run's split (default: the one recorded in the run).")
@click.option("--bootstrap", type=BOOTSTRAP, default=1000, show_default=True,
              help="Bootstrap resamples for each slice's 95% CI (0 = none).")
@click.option("--permutations", type=click.IntRange(0, 1_000_000), default=10000, show_default=True,
              help="Permutations of the paired test (two runs).")
@click.option("--seed", type=SEED, default=0, show_default=True)
def analyze_cmd(runs: tuple[Path, ...], out: Path | None, json_out: Path | None, fmt: str, data_root: str | None,
                bootstrap: int, permutations: int, seed: int) -> None:
    """Break RUN's metrics down by slice; with RUN2 (same samples), the per-slice difference and paired test.

    RUN is an eval run directory (or its results.json; a `refbench score --gt SPLIT` results file works too).
    Slice definitions: docs/results-analysis.md (also written into every output).

    Example: refbench analyze runs/lavt-tiny/synth_val runs/magnet-tiny/synth_val --out analysis/
    """
    from refbench.analysis import analyze
    from refbench.analysis.analyze import resolve_results
    from refbench.analysis.render import tables, to_json, write_outputs
    from refbench.commands.reporting import CLI
    from refbench.core.errors import RefbenchError
    from refbench.core.outdir import check_output
    from refbench.core.results import write_json_atomic
    from refbench.tables import render

    if len(runs) > 2:
        raise RefbenchError(f"give one run, or two runs to compare (got {len(runs)})")
    results = [resolve_results(r) for r in runs]
    inputs = [r.parent for r in results]
    if out is not None:
        check_output(out, "--out", inputs=inputs)
    if json_out is not None:
        check_output(json_out, "--json", folder=False, inputs=inputs)
    a = analyze(results, data_root=data_root, bootstrap=bootstrap, permutations=permutations, seed=seed, reporter=CLI)
    CLI.message(render(tables(a), fmt))
    if out is not None:
        paths = write_outputs(a, out)
        CLI.message("wrote " + ", ".join(str(p) for p in paths.values()))
    if json_out is not None:
        write_json_atomic(json_out, to_json(a))
        CLI.message(f"wrote {json_out}")
