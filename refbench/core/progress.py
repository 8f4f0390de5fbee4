"""How library code talks to the user: messages and progress, rendered by the command line.

Library functions take a :class:`Reporter` (default: :data:`SILENT`, which only logs) and never
print; ``refbench.commands`` passes one that writes messages to stdout and draws progress bars
on stderr.  Anything that can run longer than a few seconds reports progress.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger("refbench")

#: advance(n, info): n more items done; info is a short status text ("12.3 samples/s  mIoU 41.2")
Advance = Callable[[int, str], None]


class Reporter:
    """Messages and progress of a long-running library call.  The base class logs and draws nothing."""

    def message(self, text: str) -> None:
        """A line for the user (results tables, 'wrote …', notes)."""
        log.info(text)

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Advance]:
        """A context yielding ``advance(n, info)`` for ``total`` items."""
        log.debug("%s: %d items", label, total)
        yield lambda n, info="": None


SILENT = Reporter()
