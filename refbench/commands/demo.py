"""``refbench demo``: the README's first command, end to end on the synthetic benchmark."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(path_type=Path),
              help="Directory for everything the demo writes.")
@click.option("--data-root", default=None, help="Use the synthetic benchmark under this root (default: build it "
                                                "once into the cache).")
def demo(out: Path, data_root: str | None) -> None:
    """Evaluate the shipped tiny models on the synthetic benchmark: table (Markdown, LaTeX) + figures.

    No download, no training, CPU only.
    """
    from refbench.commands.reporting import CLI
    from refbench.demo import run_demo

    run_demo(out, data_root=data_root, reporter=CLI)
