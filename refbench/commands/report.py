"""``refbench report``: one self-contained HTML page about one or more runs."""
from __future__ import annotations

from pathlib import Path

import click

from refbench.commands.options import BOOTSTRAP, SEED


@click.command(name="report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The HTML file to write (report.html).")
@click.option("--data-root", default=None,
              help="Data root holding the runs' splits (default: the one each run recorded).")
@click.option("--gallery", type=click.IntRange(0, 50), default=4, show_default=True,
              help="Samples per gallery row (worst, best, random) for runs with saved masks; 0 = no gallery.")
@click.option("--bootstrap", type=BOOTSTRAP, default=1000, show_default=True,
              help="Bootstrap resamples for the slice CIs (and for runs whose file has no CI).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the bootstrap and the random gallery.")
@click.option("--title", default="refbench report", show_default=True, help="Title of the page.")
def report_cmd(runs: tuple[Path, ...], out: Path, data_root: str | None, gallery: int, bootstrap: int, seed: int,
               title: str) -> None:
    """Write one self-contained HTML page (no network) about RUN...: metrics with CIs, published vs reproduced,
    slices, P@X curve and IoU histogram, a gallery of overlays and a sortable per-sample table.

    RUN is an eval run directory (or its results.json).  Runs evaluated with --save-masks get a gallery.

    Example: refbench report runs/lavt-tiny/synth_val runs/magnet-tiny/synth_val --out report.html
    """
    from refbench.commands.reporting import CLI
    from refbench.report.build import build_report

    build_report(list(runs), out, data_root=data_root, gallery=gallery, seed=seed, bootstrap=bootstrap, title=title,
                 reporter=CLI)
