"""Markdown (GitHub pipe table) rendering: **best**, <u>second</u>, caption above, notes below.

Every string of a table (labels, cells, caption, notes: they may come from a results file)
goes through :func:`escape`: it stays on one line (a line break would end the table row or
start a block), and the characters Markdown or GitHub would act on inside a line are
backslash-escaped: ``\\ ` * _ < > | # $ ~ &`` (emphasis, code, raw HTML and autolinks, cell
borders, headings, math, strikethrough, entities) and the ``(`` of ``](`` (a link or image).
Plain brackets stay as they are: ``[81.6, 82.4]`` cannot become a link without ``](``, and
a table never has a line where a link definition could start.  So a string renders as the
text it is.
"""
from __future__ import annotations

import re

from refbench.tables.grid import Cell, Table

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ACTIVE = re.compile(r"([\\`*_<>|#$~&]|(?<=\])\()")


def escape(text: object) -> str:
    """``text`` as literal Markdown on one line (see module doc)."""
    return _ACTIVE.sub(r"\\\1", _CONTROL.sub(" ", str(text)))


_escape = escape  # the name this module used before


def _cell(cell: Cell) -> str:
    text = escape(cell.text)
    if cell.mark == "best":
        text = f"**{text}**"
    elif cell.mark == "second":
        text = f"<u>{text}</u>"
    for extra in (cell.delta, cell.extra):
        if extra:
            text += " " + escape(extra)
    return text


def render_markdown(table: Table) -> str:
    """The caption as a bold title line, the pipe table, then the notes as a list."""
    headers = [escape(h) for h in table.label_headers + table.flat_headers()]
    align = [":--"] * len(table.label_headers) + ["--:"] * table.n_values
    lines = [f"**{escape(table.title)}.** {escape(table.caption)}", "",
             "| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for row in table.rows:
        lines.append("| " + " | ".join([escape(x) for x in row.labels] + [_cell(c) for c in row.cells]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {escape(n)}" for n in table.notes)
    return "\n".join(lines) + "\n"
