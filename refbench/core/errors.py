"""The single exception type refbench raises for problems a user can act on.

The CLI prints ``error: <message>`` on one line and exits with code 2.  Messages name
the file or field at fault and say what to do about it.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class RefbenchError(Exception):
    """A user-facing error: bad input, missing file, unknown name.  One line, actionable."""


def suggest(name: str, valid: Iterable[str], what: str) -> RefbenchError:
    """Error for an unknown ``name`` that lists the valid choices and the closest match."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return RefbenchError(f"unknown {what} {name!r}.{hint} Valid: {', '.join(valid)}")
