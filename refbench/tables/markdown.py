"""Markdown (GitHub pipe table) rendering: **best**, <u>second</u>, caption above, notes below."""
from __future__ import annotations

from refbench.tables.grid import Cell, Table


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(cell: Cell) -> str:
    text = _escape(cell.text)
    if cell.mark == "best":
        text = f"**{text}**"
    elif cell.mark == "second":
        text = f"<u>{text}</u>"
    for extra in (cell.delta, cell.extra):
        if extra:
            text += " " + _escape(extra)
    return text


def render_markdown(table: Table) -> str:
    """The caption as a bold title line, the pipe table, then the notes as a list."""
    headers = [_escape(h) for h in table.label_headers + table.flat_headers()]
    align = [":--"] * len(table.label_headers) + ["--:"] * table.n_values
    lines = [f"**{_escape(table.title)}.** {table.caption}", "",
             "| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for row in table.rows:
        lines.append("| " + " | ".join([_escape(x) for x in row.labels] + [_cell(c) for c in row.cells]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {n}" for n in table.notes)
    return "\n".join(lines) + "\n"
