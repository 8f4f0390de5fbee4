"""``refbench demo``: the README's first command, end to end on generated data."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(path_type=Path),
              help="Directory for everything the demo writes.")
@click.option("--seed", default=0, show_default=True)
def demo(out: Path, seed: int) -> None:
    """Run refbench's main job on the embedded synthetic benchmark (no download, CPU)."""
    from refbench.demo import run_demo

    run_demo(out, seed=seed, echo=click.echo)
