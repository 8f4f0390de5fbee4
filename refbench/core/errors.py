"""The single exception type refbench raises for problems a user can act on.

The CLI prints ``error: <message>`` on one line and exits with code 2.  Messages name
the file or field at fault and say what to do about it.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable

# What torch's DataLoader makes of an exception raised in a worker process: it re-raises
# ``type(e)("Caught <Type> in DataLoader worker process N.\nOriginal Traceback ...\n<module>.<Type>: <message>")``.
_WORKER_WRAPPED = re.compile(r"\ACaught \w+ in DataLoader worker process \d+\.\nOriginal Traceback", re.S)


class RefbenchError(Exception):
    """A user-facing error: bad input, missing file, unknown name.  One line, actionable.

    Raised inside a DataLoader worker, it reaches the main process with the worker's traceback
    folded into its message; the constructor recovers the original one-line message, so the user
    sees exactly what ``--workers 0`` would show.
    """

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if _WORKER_WRAPPED.match(text):
            last = text.rstrip("\n").rsplit("\n", 1)[-1]
            text = last.split("RefbenchError: ", 1)[1] if "RefbenchError: " in last else last
        super().__init__(text)


def suggest(name: str, valid: Iterable[str], what: str) -> RefbenchError:
    """Error for an unknown ``name`` that lists the valid choices and the closest match."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return RefbenchError(f"unknown {what} {name!r}.{hint} Valid: {', '.join(valid)}")
