"""The command line's :class:`~refbench.core.progress.Reporter`: messages to stdout, progress bars to stderr."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from refbench.core.progress import Advance, Reporter


class ClickReporter(Reporter):
    """Prints messages with click; draws a click progress bar on stderr when it is a terminal or asked to."""

    def __init__(self, bars: bool | None = None) -> None:
        self.bars = sys.stderr.isatty() if bars is None else bars

    def message(self, text: str) -> None:
        click.echo(text)

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Advance]:
        if total <= 0:
            yield lambda n, info="": None
            return
        if not self.bars:
            click.echo(f"{label}: {total} item(s)", err=True)
            yield lambda n, info="": None
            return
        state = {"info": ""}
        with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True,
                               item_show_func=lambda _: state["info"]) as bar:
            def advance(n: int, info: str = "") -> None:
                state["info"] = info
                bar.update(n)

            yield advance


CLI = ClickReporter()
