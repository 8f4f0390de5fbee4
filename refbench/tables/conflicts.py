"""Where the papers disagree: the same number under different metrics, or different numbers.

The papers copy each other's numbers.  :func:`metric_conflicts` finds a method's number on
a split that two papers print under *different* metric names (e.g. CRIS's RefCOCO val
70.47 is oIoU in MagNet and DMMI but mIoU in MERES); :func:`value_conflicts` finds a
method's number on a split and metric that two papers print *differently* (e.g. DMMI's
G-Ref val (U) oIoU: 63.45 in DMMI, 63.46 in MERES).  Rows of ablation tables and dataset
statistics are left out: they are each paper's own experiments.
"""
from __future__ import annotations

from dataclasses import dataclass

import leaderboards
from leaderboards import PublishedNumber
from refbench.tables.grid import Cell, Row, Table


@dataclass
class Conflict:
    """Numbers of one method on one split that disagree across papers."""

    kind: str                      # "metric" or "value"
    method_key: str
    split_name: str
    numbers: list[PublishedNumber]

    def describe(self) -> str:
        return "; ".join(f"{n.paper}:{n.table} {n.metric} {n.text}" for n in self.numbers)


def _comparable(numbers: list[PublishedNumber] | None) -> list[PublishedNumber]:
    nums = leaderboards.numbers() if numbers is None else numbers
    kinds = {lay.key: lay.kind for lay in leaderboards.layouts()}
    return [n for n in nums if kinds[f"{n.paper}:{n.table}"] == "main" and n.method_key]


def metric_conflicts(numbers: list[PublishedNumber] | None = None) -> list[Conflict]:
    """Same method, split and value printed under different metrics by different papers."""
    groups: dict[tuple, list[PublishedNumber]] = {}
    for n in _comparable(numbers):
        groups.setdefault((n.method_key, n.split_name, round(n.value, 2)), []).append(n)
    out = []
    for (key, split, _), nums in groups.items():
        if len({n.metric for n in nums}) > 1 and len({n.paper for n in nums}) > 1:
            out.append(Conflict("metric", key, split, nums))
    return out


def value_conflicts(numbers: list[PublishedNumber] | None = None) -> list[Conflict]:
    """Same method, split and metric printed with different values by different papers."""
    groups: dict[tuple, list[PublishedNumber]] = {}
    for n in _comparable(numbers):
        groups.setdefault((n.method_key, n.split_name, n.metric), []).append(n)
    out = []
    for (key, split, _), nums in groups.items():
        if len({n.value for n in nums}) > 1 and len({n.paper for n in nums}) > 1:
            out.append(Conflict("value", key, split, nums))
    return out


def conflicts_table(numbers: list[PublishedNumber] | None = None) -> Table:
    """Both kinds of disagreement as one table (metric conflicts first)."""
    rows = [Row([c.kind, c.method_key, c.split_name], [Cell(c.describe())])
            for c in metric_conflicts(numbers) + value_conflicts(numbers)]
    return Table("conflicts", "Disagreements between the papers",
                 "metric: one number printed under different metric names by different papers (which IoU is it?); "
                 "value: one method, split and metric printed with different numbers (copied, rounded or re-run).",
                 ["Kind", "Method", "Split"], ["Published as (paper:table metric value)"], rows)
