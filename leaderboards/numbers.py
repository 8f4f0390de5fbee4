"""One published number per CSV line: the columns, their validation and the parsed record.

Every paper bundle's ``numbers.csv`` (``leaderboards/papers/<paper>/``) has the columns in
:data:`COLUMNS`; SCHEMA.md documents each.  :func:`parse_csv` validates every line and raises
:class:`~leaderboards.errors.LeaderboardError` naming ``file:line`` and the field.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from leaderboards.errors import LeaderboardError

DATASETS = ("refcoco", "refcoco+", "refcocog-umd", "refcocog-google", "ref-zom", "grefcoco", "synth", "synth-zom",
            "synth-grefcoco")
SPLITS = ("train", "val", "testA", "testB", "test")
SUBSETS = ("", "seen", "unseen")
METRICS = ("oIoU", "mIoU", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "Acc", "gIoU", "cIoU", "N-acc", "T-acc",
           "words-max", "words-min", "words-mean")
#: metrics that are dataset statistics (expression length in words), not percentages
WORD_METRICS = ("words-max", "words-min", "words-mean")
COLUMNS = ("paper", "table", "row", "section", "method_key", "method", "extra_data", "venue", "backbone",
           "text_encoder", "setting", "dataset", "split", "subset", "metric", "metric_heading", "value", "note")
#: the fields that describe a table row (shared by every number of that row)
ROW_FIELDS = ("section", "method_key", "method", "extra_data", "venue", "backbone", "text_encoder", "setting")
EXTRA_DATA_MARKS = ("", "†", "‡")


@dataclass(frozen=True)
class PublishedNumber:
    """One number of a paper's results table.

    ``value`` is the number as a float (percent, or words for ``words-*`` metrics);
    ``text`` is the number exactly as printed (``"65.7"`` keeps its one decimal).
    ``subset`` is ``None``, ``"seen"`` or ``"unseen"``.  See SCHEMA.md for every field.
    """

    paper: str
    table: str
    row: int
    section: str
    method_key: str
    method: str
    extra_data: str
    venue: str
    backbone: str
    text_encoder: str
    setting: str
    dataset: str
    split: str
    subset: str | None
    metric: str
    metric_heading: str
    value: float
    text: str
    note: str

    @property
    def split_name(self) -> str:
        """``dataset/split[:subset]`` in refbench's split grammar, e.g. ``refcocog-umd/val:seen``."""
        return f"{self.dataset}/{self.split}" + (f":{self.subset}" if self.subset else "")

    def settings(self) -> dict[str, str]:
        """The ``setting`` column parsed: ``"Bi-D=✓; MS="`` -> ``{"Bi-D": "✓", "MS": ""}``."""
        return parse_setting(self.setting)


def parse_setting(setting: str) -> dict[str, str]:
    """``key=value; key=value`` -> dict (values may be empty: a blank cell in the paper)."""
    out: dict[str, str] = {}
    for part in setting.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise LeaderboardError(f"setting {setting!r}: part {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _parse_row(raw: dict, where: str, paper: str) -> PublishedNumber:
    def bad(field: str, msg: str) -> LeaderboardError:
        return LeaderboardError(f"{where}: field {field!r} {msg}")

    if raw.get("paper") != paper:
        raise bad("paper", f"is {raw.get('paper')!r}; every row of {paper}.csv must say {paper!r}")
    if not raw.get("table"):
        raise bad("table", "is empty; give the table number as printed (e.g. 1, 3a)")
    try:
        row = int(raw["row"])
        if row < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise bad("row", f"is {raw.get('row')!r}; use the 1-based row position in the paper's table") from None
    if raw["dataset"] not in DATASETS:
        raise bad("dataset", f"{raw['dataset']!r} is not one of {', '.join(DATASETS)}")
    if raw["split"] not in SPLITS:
        raise bad("split", f"{raw['split']!r} is not one of {', '.join(SPLITS)}")
    if raw["subset"] not in SUBSETS:
        raise bad("subset", f"{raw['subset']!r} must be empty, 'seen' or 'unseen'")
    if raw["metric"] not in METRICS:
        raise bad("metric", f"{raw['metric']!r} is not one of {', '.join(METRICS)} (map the paper's heading to these)")
    if raw["extra_data"] not in EXTRA_DATA_MARKS:
        raise bad("extra_data", f"{raw['extra_data']!r} must be empty, '†' or '‡' (the mark as printed)")
    text = raw["value"].strip()
    try:
        value = float(text)
    except ValueError:
        raise bad("value", f"{text!r} is not a number; leave numbers the paper does not print "
                           "out of the file") from None
    if raw["metric"] not in WORD_METRICS and not 0.0 <= value <= 100.0:
        raise bad("value", f"{text} is not a percentage in [0, 100]")
    parse_setting(raw["setting"])
    return PublishedNumber(
        paper=paper, table=raw["table"], row=row, section=raw["section"], method_key=raw["method_key"],
        method=raw["method"], extra_data=raw["extra_data"], venue=raw["venue"], backbone=raw["backbone"],
        text_encoder=raw["text_encoder"], setting=raw["setting"], dataset=raw["dataset"], split=raw["split"],
        subset=raw["subset"] or None, metric=raw["metric"], metric_heading=raw["metric_heading"], value=value,
        text=text, note=raw["note"])


def parse_csv(text: str, paper: str, source: str) -> list[PublishedNumber]:
    """Validate and parse one paper's CSV text (``source`` names it in errors)."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise LeaderboardError(f"{source}: header must be exactly {','.join(COLUMNS)}")
    out: list[PublishedNumber] = []
    seen: dict[tuple, int] = {}
    row_info: dict[tuple, tuple] = {}
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(v is None for v in raw.values()):
            raise LeaderboardError(f"{source}:{line}: wrong number of fields (expected {len(COLUMNS)})")
        num = _parse_row(raw, f"{source}:{line}", paper)
        key = (num.table, num.row, num.dataset, num.split, num.subset, num.metric)
        if key in seen:
            raise LeaderboardError(f"{source}:{line}: duplicate of line {seen[key]} (same table, row, split and metric)")
        seen[key] = line
        info = tuple(getattr(num, f) for f in ROW_FIELDS)
        first = row_info.setdefault((num.table, num.row), info)
        if first != info:
            diff = next(f for f, a, b in zip(ROW_FIELDS, first, info) if a != b)
            raise LeaderboardError(f"{source}:{line}: field {diff!r} differs from earlier numbers of table "
                                f"{num.table} row {num.row}; a row's descriptive fields must agree")
        out.append(num)
    return out


