"""The error the leaderboards package raises for a malformed or missing data file or an unknown name.

``leaderboards`` holds data and imports nothing of refbench; refbench's command line prints this
error in one line like its own ``RefbenchError``.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class LeaderboardError(ValueError):
    """A data file of leaderboards/ is malformed or missing, or a paper/table name is unknown."""


def unknown(name: str, valid: Iterable[str], what: str) -> LeaderboardError:
    """``unknown <what> 'x'. Did you mean 'y'? Valid: ...``"""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return LeaderboardError(f"unknown {what} {name!r}.{hint} Valid: {', '.join(valid)}")
