"""``refbench reproduce``: regenerate a paper's table from checkpoints and data in one command."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from refbench.commands.options import BATCH_SIZE, BOOTSTRAP, LIMIT, PRECISION


@click.command(name="reproduce")
@click.argument("table_ref")
@click.option("--checkpoints", type=click.Path(path_type=Path), default=None,
              help="Directory holding checkpoint files under their official names (see `refbench models`).")
@click.option("--checkpoint", "explicit", multiple=True,
              help="ROW[@DATASET]=PATH for one row (and dataset), e.g. magnet@refcoco+=magnet_refcoco+.pth.")
@click.option("--data-root", default=None, help="Data root (default: $REFBENCH_DATA).")
@click.option("--rows", "rows", multiple=True,
              help="Table rows to reproduce (method keys such as magnet, magnet-all, lavt; 'all' = every row "
                   "that is a refbench model). Default: the paper's own model.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--precision", type=PRECISION, default="fp32", show_default=True)
@click.option("--batch-size", type=BATCH_SIZE, default=None)
@click.option("--limit", type=LIMIT, default=None,
              help="Evaluate only the first N samples of each cell (smoke runs; cells are then marked partial).")
@click.option("--bootstrap", type=BOOTSTRAP, default=1000, show_default=True, help="Bootstrap resamples for the CIs.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output directory (default: reproduce/PAPER_TABLE).")
@click.option("--save-masks", is_flag=True, help="Every cell also writes its predicted masks (as eval --save-masks); "
              "the HTML report then shows galleries.")
@click.option("--dry-run", is_flag=True, help="Print the plan (cells, checkpoints, estimated time) and stop.")
def reproduce_cmd(table_ref, checkpoints, explicit, data_root, rows, device, precision, batch_size, limit,
                  bootstrap, out, save_masks, dry_run) -> None:
    """Reproduce TABLE_REF (paper:table, e.g. magnet:1, dmmi:2, meres:2, refbench:synth).

    Example: refbench reproduce magnet:1 --checkpoints ckpt/ --data-root data/ --device cuda
    """
    from refbench.commands.reporting import CLI
    from refbench.reproduce import reproduce

    out = out or Path("reproduce") / table_ref.replace(":", "_")
    doc = reproduce(table_ref, out, checkpoints, explicit, data_root or os.environ.get("REFBENCH_DATA"), rows, device,
                    precision, batch_size, limit, bootstrap, dry_run, reporter=CLI,
                    data_root_explicit=data_root is not None, save_masks=save_masks)
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    if failed:  # the table is written; the exit code says that an evaluation went wrong
        click.echo(f"{len(failed)} cell(s) failed, e.g. {failed[0]['row']}:{failed[0]['split']}: {failed[0]['hint']}",
                   err=True)
        sys.exit(1)
