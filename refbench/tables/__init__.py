"""Published tables as data, regenerated as LaTeX / Markdown / CSV, compared with reproduced runs.

    from refbench.tables import published_tables, render
    print(render(published_tables("magnet", "1"), "latex"))

Table layouts and numbers are data (``leaderboards/papers/<paper>/``); ``select`` picks tables
by name, ``grid``
(the renderable Table and how a published table becomes one), ``latex`` / ``markdown`` /
``csv_out`` (renderers), ``compare`` (published vs reproduced, CIs, paired tests),
``conflicts`` (numbers the papers report under different metrics), ``plots`` (PNG figures).
"""
from __future__ import annotations

from refbench.core.errors import RefbenchError
from refbench.tables.grid import Table, build_published
from refbench.tables.select import get_layout, parse_table_ref, resolve_tables

FORMATS = ("markdown", "latex", "csv")


def published_tables(paper: str, table: str | None = None) -> list[Table]:
    """The paper's table(s) laid out as printed (``table=None``: all; ``"3"``: 3a–3f)."""
    import leaderboards

    return [build_published(lay, leaderboards.numbers(lay.paper, lay.table)) for lay in resolve_tables(paper, table)]


def render(tables: list[Table], fmt: str, standalone: bool = False) -> str:
    """Render tables in ``fmt`` (markdown, latex, csv); ``standalone`` = a full LaTeX document."""
    from refbench.tables.csv_out import render_csv
    from refbench.tables.latex import latex_document, render_latex
    from refbench.tables.markdown import render_markdown

    if fmt not in FORMATS:
        raise RefbenchError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "latex":
        return latex_document(tables) if standalone else "\n".join(render_latex(t) for t in tables)
    if fmt == "markdown":
        return "\n".join(render_markdown(t) for t in tables)
    return "\n".join(render_csv(t) for t in tables)


__all__ = ["FORMATS", "Table", "build_published", "get_layout", "parse_table_ref",
           "published_tables", "render", "resolve_tables"]
