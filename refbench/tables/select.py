"""Choosing published tables by name: ``--paper/--table`` and ``paper:table`` references."""
from __future__ import annotations

import leaderboards
from leaderboards import Layout
from refbench.core.errors import RefbenchError, suggest


def _no_table(paper: str, table: str, valid: list[str]) -> RefbenchError:
    err = suggest(table, valid, "table")
    return RefbenchError(f"paper {paper!r} has no table {table!r}.{str(err).split('.', 1)[1]}")


def check_paper(paper: str) -> str:
    if paper not in leaderboards.papers():
        raise suggest(paper, leaderboards.papers(), "paper")
    return paper


def get_layout(paper: str, table: str) -> Layout:
    """The layout of ``paper`` table ``table``; a RefbenchError naming the valid tables otherwise."""
    check_paper(paper)
    if table not in leaderboards.tables(paper):
        raise _no_table(paper, table, leaderboards.tables(paper))
    return leaderboards.layout(paper, table)


def resolve_tables(paper: str, table: str | None) -> list[Layout]:
    """Layouts for ``--table``: an exact id (``3a``, ``3(a)``), a parent id (``3`` = 3a–3f) or None = all."""
    mine = leaderboards.layouts(check_paper(paper))
    if table is None:
        return mine
    wanted = table.strip().replace("(", "").replace(")", "").replace(" ", "").lower()
    exact = [lay for lay in mine if lay.table == wanted]
    if exact:
        return exact
    children = [lay for lay in mine if lay.table.rstrip("abcdefghij") == wanted]
    if children:
        return children
    valid = {lay.table for lay in mine} | {lay.table.rstrip("abcdefghij") for lay in mine}
    raise _no_table(paper, table, sorted(valid))


def parse_table_ref(ref: str) -> Layout:
    """``paper:table`` (e.g. ``magnet:1``, ``meres:4a``) -> its Layout."""
    paper, sep, table = ref.partition(":")
    if not sep or not paper or not table:
        raise RefbenchError(f"table reference {ref!r}: use paper:table, e.g. magnet:1 or meres:2")
    layouts = resolve_tables(paper.strip().lower(), table)
    if len(layouts) != 1:
        raise RefbenchError(f"table reference {ref!r} names {len(layouts)} tables "
                            f"({', '.join(lay.key for lay in layouts)}); name one of them")
    return layouts[0]
