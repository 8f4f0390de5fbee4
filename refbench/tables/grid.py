"""A rendered table as plain data, and how a published table becomes one.

:class:`Table` is what every renderer (``latex``, ``markdown``, ``csv_out``) consumes:
descriptive label columns, value columns under optional header groups, cells with their
best/second-best mark, and the caption and notes.  :func:`build_published` lays out a
paper's numbers with its :class:`leaderboards.Layout`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import leaderboards
from leaderboards import WORD_METRICS, Layout, PublishedNumber, parse_setting
from refbench.core.errors import RefbenchError

EMPTY = "-"


@dataclass
class Cell:
    """One value cell.

    text: the value as printed (``-`` when the paper has none); mark: ``best``/``second``/None;
    delta: a derived difference shown after the value, e.g. ``(+1.44)`` (not written to CSV);
    extra: more information that belongs to the value, e.g. a reproduced number.
    """

    text: str = EMPTY
    mark: str | None = None
    delta: str = ""
    extra: str = ""
    number: PublishedNumber | None = None


@dataclass
class Row:
    labels: list[str]
    cells: list[Cell]
    rule_above: bool = False
    key: str = ""                       # method_key of a published row
    numbers: list[PublishedNumber] = field(default_factory=list)


@dataclass
class Table:
    """A table ready to render.  ``groups`` are (text, span) header groups over the value columns."""

    key: str
    title: str
    caption: str
    label_headers: list[str]
    column_headers: list[str]
    rows: list[Row]
    groups: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_values(self) -> int:
        return len(self.column_headers)

    def flat_headers(self) -> list[str]:
        """Value column headers with their group prefixed (``RefCOCO val``), for one-line headers."""
        if not self.groups:
            return list(self.column_headers)
        out, j = [], 0
        for group, span in self.groups:
            out.extend(f"{group} {h}".strip() for h in self.column_headers[j:j + span])
            j += span
        return out


def method_display(method: str, mark: str) -> str:
    """``MagNet (Ours)`` + ``‡`` -> ``MagNet‡ (Ours)``: the mark goes after the name, as printed."""
    if not mark:
        return method
    name, sep, rest = method.partition(" (")
    return f"{name}{mark}{sep}{rest}"


def _label(num: PublishedNumber, fld: str) -> str:
    if fld == "method":
        return method_display(num.method, num.extra_data)
    if fld == "row":
        return str(num.row)
    if fld.startswith("setting:"):
        return parse_setting(num.setting).get(fld.split(":", 1)[1], "")
    value = getattr(num, fld)
    return "" if value is None else str(value)


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _group_header(columns) -> list[tuple[str, int]]:
    groups: list[tuple[str, int]] = []
    for col in columns:
        if groups and groups[-1][0] == col.group:
            groups[-1] = (col.group, groups[-1][1] + 1)
        else:
            groups.append((col.group, 1))
    return [] if all(g == "" for g, _ in groups) else groups


def metric_statement(numbers: list[PublishedNumber]) -> str:
    """``Metric: oIoU (%); in the paper: caption 'using the oIoU metric'.``"""
    metrics = list(dict.fromkeys(n.metric for n in numbers))
    unit = "words" if all(m in WORD_METRICS for m in metrics) else "%"
    text = f"{'Metric' if len(metrics) == 1 else 'Metrics'}: {', '.join(metrics)} ({unit})"
    quoted: dict[str, list[str]] = {}
    for heading in dict.fromkeys(n.metric_heading for n in numbers if n.metric_heading):
        m = re.fullmatch(r"([\w ]+): '(.*)'", heading)
        kind, words = (m.group(1), f"'{m.group(2)}'") if m else (heading, "")
        quoted.setdefault(kind, []).append(words)
    if quoted:
        parts = [(f"{kind}s " if len(w) > 1 else f"{kind} " if w[0] else kind) + ", ".join(x for x in w if x)
                 for kind, w in quoted.items()]
        text += "; in the paper: " + "; ".join(p.strip() for p in parts)
    return text + "."


def build_published(layout: Layout, numbers: list[PublishedNumber]) -> Table:
    """Lay out one table's numbers (all of them, paper order) as the paper prints them."""
    if not numbers:
        raise RefbenchError(f"no published numbers for {layout.key}")
    by_row: dict[int, list[PublishedNumber]] = {}
    for n in numbers:
        by_row.setdefault(n.row, []).append(n)
    header = ([layout.section_header] if layout.section_header is not None else []) + [h for h, _ in layout.labels]
    rows: list[Row] = []
    previous_section: str | None = None
    for r in sorted(by_row):
        nums = by_row[r]
        first = nums[0]
        cells = [Cell() for _ in layout.columns]
        for n in nums:
            hits = [j for j, col in enumerate(layout.columns) if col.holds(n.dataset, n.split, n.subset, n.metric)]
            if len(hits) != 1:
                raise RefbenchError(f"{layout.key} row {r}: {n.split_name} {n.metric} fits {len(hits)} columns of "
                                    "the layout (expected exactly one); fix the table's columns in leaderboards/papers/"
                                    f"{layout.paper}/tables.json")
            if cells[hits[0]].number is not None:
                raise RefbenchError(f"{layout.key} row {r}: two numbers for column {layout.columns[hits[0]].label!r}")
            cells[hits[0]] = Cell(text=n.text, number=n)
        labels = [_label(first, fld) for _, fld in layout.labels]
        new_section = previous_section is not None and first.section != previous_section
        if layout.section_header is not None:
            labels.insert(0, first.section if first.section != previous_section else "")
        rows.append(Row(labels, cells, rule_above=new_section, key=first.method_key, numbers=nums))
        previous_section = first.section
    groups = _row_groups(layout, rows)
    if layout.marks != "none":
        _mark(rows, groups, second=layout.marks == "bold+underline")
    if layout.delta:
        _deltas(rows, groups, layout.delta)
    title = f"{leaderboards.bundle(layout.paper).title.split(':')[0]} Table {layout.table}"
    marks = {"none": "", "bold": " Bold: best",
             "bold+underline": " Bold: best, underlined: second best"}[layout.marks]
    if marks:
        marks += " (recomputed from the values, as the paper marks them)."
    in_column_order = sorted(numbers, key=lambda n: next(j for j, c in enumerate(layout.columns)
                                                         if c.holds(n.dataset, n.split, n.subset, n.metric)))
    caption = f"{layout.caption} {metric_statement(in_column_order)}{marks} Protocol: {layout.protocol}"
    notes = list(layout.notes)
    return Table(layout.key.replace(":", "-"), title, caption, header, [c.label for c in layout.columns], rows,
                 _group_header(layout.columns), notes)


def _row_groups(layout: Layout, rows: list[Row]) -> list[list[int]]:
    """Indices into ``rows`` of each group ranked (and delta'd) together."""
    row_index = {row.numbers[0].row: i for i, row in enumerate(rows)}
    if layout.groups:
        return [[row_index[r] for r in group] for group in layout.groups]
    sections: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        sections.setdefault(row.numbers[0].section, []).append(i)
    return list(sections.values())


def _mark(rows: list[Row], groups: list[list[int]], second: bool) -> None:
    """Bold the best (highest) value of each column within each group; underline the second."""
    n_cols = len(rows[0].cells) if rows else 0
    for group in groups:
        for j in range(n_cols):
            vals = [rows[i].cells[j].number.value for i in group if rows[i].cells[j].number is not None]
            if len(vals) < 2:
                continue
            ranked = sorted(set(vals), reverse=True)
            for i in group:
                cell = rows[i].cells[j]
                if cell.number is None:
                    continue
                if cell.number.value == ranked[0]:
                    cell.mark = "best"
                elif second and len(ranked) > 1 and cell.number.value == ranked[1]:
                    cell.mark = "second"


def _deltas(rows: list[Row], groups: list[list[int]], which: str) -> None:
    """Difference of each value to the group's first/last row, with the printed precision."""
    for group in groups:
        ref = rows[group[0] if which == "first" else group[-1]]
        for i in group:
            if rows[i] is ref:
                continue
            for cell, ref_cell in zip(rows[i].cells, ref.cells):
                if cell.number is None or ref_cell.number is None:
                    continue
                digits = max(_decimals(cell.text), _decimals(ref_cell.text))
                d = round(cell.number.value - ref_cell.number.value, digits) + 0.0  # no "-0.00"
                cell.delta = f"({d:+.{digits}f})"
