"""CSV rendering: one header line (group and column header joined), values as printed, no marks."""
from __future__ import annotations

import csv
import io

from refbench.tables.grid import Table


def render_csv(table: Table) -> str:
    """The table as CSV; derived differences (deltas) are left out, extra information is kept."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.label_headers + table.flat_headers())
    for row in table.rows:
        w.writerow(row.labels + [c.text + (f" {c.extra}" if c.extra else "") for c in row.cells])
    return buf.getvalue()
