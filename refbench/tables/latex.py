"""LaTeX rendering of a :class:`~refbench.tables.grid.Table`: booktabs, bold best, underlined second.

Tables stay legible: nothing is ever scaled down.  A table that fits the text width (estimated
from its longest entries) is one ``tabular``; a wider table of published numbers is split into
consecutive column blocks (whole header groups where possible), each repeating the row labels;
a table with reproduced values beside the published ones is written in a long layout, one line
per value (``longtable``, which may break across pages).  The output needs
``\\usepackage{booktabs}`` (and ``longtable`` for the long layout); ``standalone=True`` gives a
complete document that compiles with pdflatex.  Inline code in captions (```refbench train```)
becomes ``\\texttt``.

Every string of a table (labels, cells, caption, notes: they may come from a results file a
stranger sent) goes through :func:`escape` or, in ``%`` comment lines, :func:`comment`: the
ten special characters are escaped and no raw line break or other control character reaches
the output, so a string cannot end a comment or a command and run TeX of its own.
"""
from __future__ import annotations

import re

from refbench.tables.grid import Cell, Table

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "†": r"\textsuperscript{\dag}", "‡": r"\textsuperscript{\ddag}", "✓": r"$\surd$", "✗": r"$\times$",
            "×": r"$\times$", "–": "--", "—": "---", "Δ": r"$\Delta$", "≥": r"$\geq$", "≤": r"$\leq$",
            "±": r"$\pm$", "−": "-", "'": "'", "<": r"$<$", ">": r"$>$", "|": r"$|$"}
TEXT_WIDTH_EM = 48.0  # \\textwidth of a one-column article at 10 pt with 2 cm margins (17 cm), in em


# Line breaks and every other control character (C0, DEL, C1; Unicode line/paragraph separators):
# TeX ends a comment at a line break, and a control character in text is never what a table means.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def flatten(text: object) -> str:
    """``text`` on one line: runs of line breaks and control characters become one space."""
    return _CONTROL.sub(" ", str(text))


def escape(text: object) -> str:
    """Text -> LaTeX source on one line: the ten special characters ``# $ % & ~ _ ^ \\ { }`` and
    the symbols used in the tables are replaced, line breaks and control characters become spaces."""
    text = flatten(text).replace(">=", "≥").replace("<=", "≤")
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def comment(text: object) -> str:
    """Text for a ``%`` comment line: on one line (a line break would end the comment and the rest
    would be run as TeX)."""
    return flatten(text)


def _label(key: str) -> str:
    """A ``\\label`` key: letters, digits and ``:-.`` only (anything else becomes ``-``)."""
    return re.sub(r"[^A-Za-z0-9:.\-]", "-", flatten(key))


def _cell(cell: Cell) -> str:
    text = escape(cell.text)
    if cell.mark == "best":
        text = rf"\textbf{{{text}}}"
    elif cell.mark == "second":
        text = rf"\underline{{{text}}}"
    if cell.delta:
        text += r" {\scriptsize " + escape(cell.delta) + "}"
    if cell.extra:
        text += " " + escape(cell.extra)
    return text


def _rich(text: object) -> str:
    """Caption text: escaped, with ``code`` spans as \\texttt (no Markdown syntax reaches the PDF)."""
    parts = flatten(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick is just a character
        return escape(text)
    return "".join(rf"\texttt{{{escape(p)}}}" if k % 2 else escape(p) for k, p in enumerate(parts))


def _chars(cell: Cell) -> int:
    return len(" ".join(x for x in (cell.text, cell.delta, cell.extra) if x))


def _column_em(chars: int) -> float:
    """Width of a column whose longest entry has ``chars`` characters (~0.5 em each) plus its padding."""
    return 0.5 * chars + 1.0


def _label_widths(table: Table) -> list[float]:
    return [_column_em(max([len(h)] + [len(r.labels[k]) for r in table.rows]))
            for k, h in enumerate(table.label_headers)]


def _value_widths(table: Table) -> list[float]:
    return [_column_em(max([len(h)] + [_chars(r.cells[j]) for r in table.rows]))
            for j, h in enumerate(table.column_headers)]


def _column_blocks(table: Table, budget: float) -> list[list[int]]:
    """Consecutive value-column index blocks that each fit ``budget`` em beside the labels."""
    widths = _value_widths(table)
    room = max(budget - sum(_label_widths(table)), max(widths))
    spans, j = [], 0
    for _, span in (table.groups or [("", 1)] * table.n_values):
        spans.append(list(range(j, j + span)))
        j += span
    blocks: list[list[int]] = []
    for group in spans:
        if blocks and sum(widths[c] for c in blocks[-1] + group) <= room:
            blocks[-1] += group
            continue
        blocks.append([])
        for c in group:  # a group wider than the room is split by columns
            if blocks[-1] and sum(widths[x] for x in blocks[-1]) + widths[c] > room:
                blocks.append([])
            blocks[-1].append(c)
    return blocks


def _tabular(table: Table, cols: list[int]) -> list[str]:
    n_lab = len(table.label_headers)
    lines = [r"\begin{tabular}{" + "l" * n_lab + "c" * len(cols) + "}", r"\toprule"]
    if table.groups:
        owner, j = [], 0
        for text, span in table.groups:
            owner += [text] * span
            j += span
        heads, rules, col, k = [""] * n_lab, [], n_lab + 1, 0
        while k < len(cols):
            text = owner[cols[k]]
            span = 1
            while k + span < len(cols) and owner[cols[k + span]] == text and cols[k + span] == cols[k] + span:
                span += 1
            heads.append(rf"\multicolumn{{{span}}}{{c}}{{{escape(text)}}}" if span > 1 else escape(text))
            if text:
                rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
            k += span
        lines.append(" & ".join(heads) + r" \\")
        if rules:
            lines.append(" ".join(rules))
    lines.append(" & ".join(escape(h) for h in table.label_headers + [table.column_headers[c] for c in cols]) + r" \\")
    lines.append(r"\midrule")
    for row in table.rows:
        if row.rule_above:
            lines.append(r"\midrule")
        lines.append(" & ".join([escape(x) for x in row.labels] + [_cell(row.cells[c]) for c in cols]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _long_layout(table: Table) -> list[str]:
    """One line per reproduced value: the row labels, the column (group and header), then the published
    value with its reproduced number (wrapped in a paragraph column); rows without a reproduced value
    are left out (the published table has them)."""
    heads = table.flat_headers()
    n_lab = len(table.label_headers)
    lines = [r"\begin{longtable}{" + "l" * n_lab + r"lp{0.36\linewidth}}",
             rf"\caption{{{escape(table.title)}. {_rich(table.caption)}}}\label{{tab:{_label(table.key)}}}\\",
             r"\toprule",
             " & ".join([escape(h) for h in table.label_headers] + ["Column", "Value"]) + r" \\",
             r"\midrule", r"\endfirsthead", r"\toprule",
             " & ".join([escape(h) for h in table.label_headers] + ["Column", "Value"]) + r" \\",
             r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot"]
    for row in table.rows:
        first = True
        for head, cell in zip(heads, row.cells):
            if not cell.extra:
                continue
            labels = [escape(x) for x in row.labels] if first else [""] * n_lab
            lines.append(" & ".join(labels + [escape(head), _cell(cell)]) + r" \\")
            first = False
        if not first:
            lines.append(r"\midrule")
    if lines[-1] == r"\midrule":
        lines.pop()
    lines.append(r"\end{longtable}")
    return lines


def render_latex(table: Table, text_width_em: float = TEXT_WIDTH_EM) -> str:
    """One table (caption with metric and protocol, label ``tab:<key>``, booktabs rules), legible at
    the document's own font size: one tabular, column blocks, or the long layout (module doc)."""
    width = sum(_label_widths(table)) + sum(_value_widths(table))
    long = any(c.extra for r in table.rows for c in r.cells) and width > text_width_em
    packages = "booktabs" + (", longtable" if long else "")
    lines = [f"% {comment(table.title)}, regenerated by refbench from leaderboards/ (needs \\usepackage{{{packages}}})"]
    if long:
        lines += _long_layout(table)
    else:
        blocks = _column_blocks(table, text_width_em) if width > text_width_em else [list(range(table.n_values))]
        lines += [r"\begin{table}[t]", r"\centering",
                  rf"\caption{{{escape(table.title)}. {_rich(table.caption)}}}", rf"\label{{tab:{_label(table.key)}}}"]
        for k, cols in enumerate(blocks):
            if k:
                lines.append(r"\par\medskip")
            lines += _tabular(table, cols)
        lines.append(r"\end{table}")
    lines.extend(f"% note: {comment(n)}" for n in table.notes)
    return "\n".join(lines) + "\n"


def latex_document(tables: list[Table]) -> str:
    """A complete article with the given tables (compiles with pdflatex + booktabs)."""
    body = "\n".join(render_latex(t) + r"\clearpage" for t in tables)
    return ("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[margin=2cm]{geometry}\n"
            "\\usepackage{booktabs}\n\\usepackage{longtable}\n"
            "\\makeatletter\\setlength{\\@fptop}{0pt}\\makeatother  % float pages start at the top\n"
            "\\begin{document}\n" + body + "\n\\end{document}\n")
