"""Published RIS results as data: one bundle per paper, loaded by one generic loader.

    import leaderboards
    df = leaderboards.published("magnet", "1")          # pandas DataFrame, one number per row
    nums = leaderboards.numbers("magnet", "1")          # list[PublishedNumber], paper order
    lay = leaderboards.layout("magnet", "1")            # Layout: columns, marks, caption, reproduction rules
    leaderboards.papers()                               # {'dmmi': 'DMMI: ...', ...}
    leaderboards.tables("meres")                        # ['1', '2', '3', '4a', …, '7']
    leaderboards.reproduced_runs()                      # results files of runs shipped in reproduced/

A bundle is a folder ``papers/<paper>/`` holding ``numbers.csv`` (every number of the paper's
results tables, one per line, the metric of every number explicit) and ``tables.json`` (the
paper's title, each table's layout and its reproduction rules); SCHEMA.md documents both.  The
files are package data: the API works from an installed package as from a source checkout.  A
malformed file raises :class:`LeaderboardError` naming the file, line and field.  This package
holds data: it imports nothing of refbench.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path

from leaderboards.errors import LeaderboardError, unknown
from leaderboards.layout import Column, Layout, ReproductionRules, layout_from_json
from leaderboards.numbers import (COLUMNS, DATASETS, METRICS, SPLITS, WORD_METRICS, PublishedNumber, parse_csv,
                                  parse_setting)

BUNDLE_SCHEMA = "refbench.paper"
REPRODUCED_SCHEMA = "refbench.reproduced"


@dataclass(frozen=True)
class PaperBundle:
    """One paper's data: title, numbers (paper, table and row order) and table layouts."""

    paper: str
    title: str
    source: str                       # "paper" (a publication) or "reference" (refbench's own runs)
    numbers: tuple[PublishedNumber, ...]
    layouts: tuple[Layout, ...]


def _files(*parts: str):
    return resources.files(__name__).joinpath(*parts)


def _read(rel: str) -> str:
    try:
        return _files(*rel.split("/")).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise LeaderboardError(f"leaderboards/{rel} is missing from the installed package; reinstall refbench") \
            from None


@lru_cache(maxsize=None)
def _bundle_names() -> tuple[str, ...]:
    root = _files("papers")
    return tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath("tables.json").is_file()))


def _table_sort_key(table: str) -> tuple[int, str]:
    digits = "".join(c for c in table if c.isdigit())
    return (int(digits) if digits else 0, table)


@lru_cache(maxsize=None)
def bundle(paper: str) -> PaperBundle:
    """The bundle of ``paper`` (read and validated once)."""
    if paper not in _bundle_names():
        raise unknown(paper, _bundle_names(), "paper")
    source = f"leaderboards/papers/{paper}/tables.json"
    try:
        doc = json.loads(_read(f"papers/{paper}/tables.json"))
    except json.JSONDecodeError as e:
        raise LeaderboardError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != BUNDLE_SCHEMA or doc.get("schema_version") != 1:
        raise LeaderboardError(f"{source}: expected schema {BUNDLE_SCHEMA!r} version 1")
    if doc.get("paper") != paper or doc.get("source") not in ("paper", "reference"):
        raise LeaderboardError(f"{source}: 'paper' must be {paper!r} and 'source' 'paper' or 'reference'")
    layouts = tuple(layout_from_json(paper, t, source) for t in doc.get("tables", []))
    nums = parse_csv(_read(f"papers/{paper}/numbers.csv"), paper, f"leaderboards/papers/{paper}/numbers.csv")
    nums = sorted(nums, key=lambda n: (_table_sort_key(n.table), n.row))
    have = {lay.table for lay in layouts}
    stray = sorted({n.table for n in nums} - have)
    if stray:
        raise LeaderboardError(f"{source}: numbers.csv has table {stray[0]!r} but tables.json no layout for it")
    return PaperBundle(paper, str(doc.get("title", paper)), doc["source"], tuple(nums),
                       tuple(sorted(layouts, key=lambda lay: _table_sort_key(lay.table))))


def papers(source: str | None = None) -> dict[str, str]:
    """``{paper: title}`` of every bundle (``source="paper"``: publications only; ``"reference"``: refbench's)."""
    out = {}
    for name in _bundle_names():
        b = bundle(name)
        if source is None or b.source == source:
            out[name] = b.title
    return out


def check_paper(paper: str) -> str:
    """``paper`` if a bundle has that name, else a LeaderboardError listing them."""
    if paper not in _bundle_names():
        raise unknown(paper, _bundle_names(), "paper")
    return paper


def tables(paper: str) -> list[str]:
    """The table ids of a paper in paper order (``'3a'`` … for sub-tables)."""
    return [lay.table for lay in bundle(check_paper(paper)).layouts]


def numbers(paper: str | None = None, table: str | None = None) -> list[PublishedNumber]:
    """Published numbers in paper, table and row order; filtered by paper and table."""
    if table is not None and paper is None:
        raise LeaderboardError("numbers(): a table filter needs a paper")
    names = [check_paper(paper)] if paper is not None else list(_bundle_names())
    out = [n for p in names for n in bundle(p).numbers]
    if table is not None:
        if table not in tables(paper):
            raise LeaderboardError(f"paper {paper!r} has no table {table!r}. Valid: {', '.join(tables(paper))}")
        out = [n for n in out if n.table == table]
    return out


def published(paper: str | None = None, table: str | None = None):
    """The published numbers as a pandas DataFrame (one row per number, the columns of numbers.csv with
    ``value`` a float, ``text`` the number as printed and ``split_name`` in refbench's split grammar)."""
    import pandas as pd

    rows = [{**{f.name: getattr(n, f.name) for f in fields(PublishedNumber)}, "split_name": n.split_name}
            for n in numbers(paper, table)]
    return pd.DataFrame(rows, columns=[f.name for f in fields(PublishedNumber)] + ["split_name"])


def layout(paper: str, table: str) -> Layout:
    """The layout of ``paper`` table ``table``."""
    for lay in bundle(check_paper(paper)).layouts:
        if lay.table == table:
            return lay
    raise unknown(table, tables(paper), f"table of paper {paper!r}")


def layouts(paper: str | None = None) -> list[Layout]:
    """Every layout (of one paper, or of all bundles)."""
    names = [check_paper(paper)] if paper is not None else list(_bundle_names())
    return [lay for p in names for lay in bundle(p).layouts]


@dataclass(frozen=True)
class ReproducedRun:
    """An entry of ``reproduced/index.json``: a results file shipped with refbench."""

    results: str        # path relative to leaderboards/reproduced/
    description: str

    def path(self) -> Path:
        """Filesystem path of the results file (inside the installed package)."""
        return Path(str(_files("reproduced", *self.results.split("/"))))


def reproduced_index() -> dict:
    """The parsed ``reproduced/index.json`` (schema ``refbench.reproduced`` v1)."""
    source = "leaderboards/reproduced/index.json"
    try:
        doc = json.loads(_read("reproduced/index.json"))
    except json.JSONDecodeError as e:
        raise LeaderboardError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != REPRODUCED_SCHEMA or doc.get("schema_version") != 1:
        raise LeaderboardError(f"{source}: expected schema {REPRODUCED_SCHEMA!r} version 1")
    return doc


def reproduced_runs() -> list[ReproducedRun]:
    """Runs listed in ``reproduced/index.json``."""
    source = "leaderboards/reproduced/index.json"
    runs = reproduced_index().get("runs")
    if not isinstance(runs, list):
        raise LeaderboardError(f"{source}: 'runs' must be a list")
    out = []
    names = {f.name for f in fields(ReproducedRun)}
    for i, entry in enumerate(runs):
        if not isinstance(entry, dict) or not isinstance(entry.get("results"), str) or set(entry) - names:
            raise LeaderboardError(f"{source}: runs[{i}] must be {{\"results\": <path>, \"description\": <text>}}")
        out.append(ReproducedRun(entry["results"], str(entry.get("description", ""))))
    return out


__all__ = ["LeaderboardError", "PaperBundle", "PublishedNumber", "Layout", "Column", "ReproductionRules",
           "ReproducedRun", "COLUMNS", "DATASETS", "SPLITS", "METRICS", "WORD_METRICS", "bundle", "papers",
           "check_paper", "tables", "numbers", "published", "layout", "layouts", "reproduced_runs",
           "reproduced_index", "parse_csv", "parse_setting"]
