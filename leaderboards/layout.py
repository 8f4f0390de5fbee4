"""How each published table is laid out, and the rules for reproducing it, as read from tables.json.

The numbers and the rows (in paper order) come from the bundle's ``numbers.csv``; a
:class:`Layout` adds what the numbers cannot say: which numbers go into which column and under
which header, which descriptive fields the paper prints in front of the numbers, whether it marks
the best number in bold (and the second best underlined), within which groups of rows, whether
it prints differences to a reference row, the caption, the protocol text, and how
``refbench reproduce`` treats the table's rows (:class:`ReproductionRules`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leaderboards.errors import LeaderboardError

MARKS = ("none", "bold", "bold+underline")
KINDS = ("main", "ablation", "statistics")


@dataclass(frozen=True)
class Column:
    """A value column: the numbers it holds and its header.

    ``dataset``/``split``/``metric`` = None match any value (e.g. MERES Table 1, whose
    row blocks are mIoU and oIoU under the same columns); ``subset`` must match exactly.
    """

    label: str
    group: str = ""
    dataset: str | None = None
    split: str | None = None
    metric: str | None = None
    subset: str | None = None

    def holds(self, dataset: str, split: str, subset: str | None, metric: str) -> bool:
        return ((self.dataset is None or self.dataset == dataset) and (self.split is None or self.split == split)
                and self.subset == subset and (self.metric is None or self.metric == metric))


@dataclass(frozen=True)
class ReproductionRules:
    """How ``refbench reproduce`` evaluates a table's rows.

    A row is a refbench model when its ``method_key`` is a registered model name (its first
    variant) or ``<model>-<variant>``.  Each cell is evaluated under the protocol the model
    declares for that variant and dataset, unless ``protocol`` names one for the whole table.

    Attributes:
        protocol: one protocol for every row (refbench's own reference table), or None.
        row_variants: method_key -> variant, for rows that are another variant than the key says
            (MERES Table 2's own row is the ``clip`` variant, trained on seen categories).
        unreproducible_rows: method_key -> reason, for rows that name a refbench model in a
            configuration refbench does not have (skipped under ``--rows all`` with the reason).
    """

    protocol: str | None = None
    row_variants: dict[str, str] = field(default_factory=dict)
    unreproducible_rows: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """One published table.

    Attributes:
        paper, table: ids as in the data files (``magnet``, ``3a``).
        caption: the paper's caption, shortened, plus what a reader needs to interpret it.
        protocol: how the numbers were produced (stated under every rendering).
        columns: the value columns, left to right.
        labels: (header, field) of the descriptive columns before the values; field is a
            PublishedNumber attribute (``method`` renders with its †/‡ mark), ``row``
            (the row number) or ``setting:<key>``.
        section_header: show the row sections as a first column with this header;
            None = sections are separated by a rule only.
        marks: ``none``, ``bold`` (best) or ``bold+underline`` (best, second best), as the paper.
        groups: row numbers ranked together (and the reference group of ``delta``);
            default: each section, or the whole table.
        delta: ``first``/``last``: print each value's difference to that row of its group,
            as the paper does; None = no differences.
        kind: ``main`` (comparisons), ``ablation`` or ``statistics``; only ``main`` tables are
            searched when a reproduced run is matched without ``--against``.
        reproduce: the table's :class:`ReproductionRules`.
        notes: remarks on the table as a whole (printed under it).
    """

    paper: str
    table: str
    caption: str
    protocol: str
    columns: tuple[Column, ...]
    labels: tuple[tuple[str, str], ...] = (("Method", "method"),)
    section_header: str | None = None
    marks: str = "none"
    groups: tuple[tuple[int, ...], ...] = ()
    delta: str | None = None
    kind: str = "main"
    reproduce: ReproductionRules = field(default_factory=ReproductionRules)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.marks not in MARKS:
            raise LeaderboardError(f"{self.key}: marks must be one of {MARKS}")
        if self.kind not in KINDS:
            raise LeaderboardError(f"{self.key}: kind must be one of {KINDS}")
        if self.delta not in (None, "first", "last"):
            raise LeaderboardError(f"{self.key}: delta must be null, 'first' or 'last'")

    @property
    def key(self) -> str:
        """``paper:table``, the form ``--against`` takes."""
        return f"{self.paper}:{self.table}"


def _strings(value: Any, where: str, n: int | None = None) -> tuple:
    if not isinstance(value, list) or (n is not None and len(value) != n) or \
            not all(isinstance(v, str) for v in value):
        raise LeaderboardError(f"{where}: expected a list of {n or 'some'} strings")
    return tuple(value)


def layout_from_json(paper: str, doc: dict, source: str) -> Layout:
    """One entry of ``tables.json`` -> :class:`Layout` (every field checked; errors name ``source``)."""
    where = f"{source}: table {doc.get('table')!r}"
    known = {"table", "kind", "caption", "protocol_text", "columns", "labels", "section_header", "marks", "groups",
             "delta", "notes", "reproduce"}
    extra = set(doc) - known
    if extra:
        raise LeaderboardError(f"{where}: unknown field {sorted(extra)[0]!r}")
    try:
        columns = tuple(Column(**c) for c in doc["columns"])
        labels = tuple(_strings(x, f"{where} labels", 2) for x in doc.get("labels", [["Method", "method"]]))
        groups = tuple(tuple(int(r) for r in g) for g in doc.get("groups", []))
        rules = doc.get("reproduce", {})
        if set(rules) - {"protocol", "row_variants", "unreproducible_rows"}:
            raise LeaderboardError(f"{where}: unknown reproduce rule {sorted(rules)[0]!r}")
        return Layout(paper=paper, table=str(doc["table"]), caption=doc["caption"], protocol=doc["protocol_text"],
                      columns=columns, labels=labels, section_header=doc.get("section_header"),
                      marks=doc.get("marks", "none"), groups=groups, delta=doc.get("delta"),
                      kind=doc.get("kind", "main"),
                      reproduce=ReproductionRules(rules.get("protocol"), dict(rules.get("row_variants", {})),
                                                  dict(rules.get("unreproducible_rows", {}))),
                      notes=_strings(doc.get("notes", []), f"{where} notes"))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, LeaderboardError):
            raise
        raise LeaderboardError(f"{where}: malformed ({type(e).__name__}: {e})") from None
