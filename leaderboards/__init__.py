"""Published RIS results as data, and the index of reproduced runs.

    import leaderboards
    nums = leaderboards.published("magnet", "1")      # list[PublishedNumber], paper order
    nums[0].method, nums[0].dataset, nums[0].split, nums[0].metric, nums[0].value
    leaderboards.tables("meres")                       # ['1', '2', '3', '4a', …, '7']
    leaderboards.reproduced_runs()                     # paths of results files in reproduced/

One CSV per paper under ``published/`` holds every number of the paper's results tables in
long format (one number per line) with the metric of every number explicit; the columns are
documented in ``SCHEMA.md`` next to this file.  The files are package data, so the API works
from an installed package as well as from a source checkout.  Every row is validated on load;
a malformed file raises :class:`refbench.core.errors.RefbenchError` naming the file, line and field.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path

from refbench.core.errors import RefbenchError, suggest

PAPERS: dict[str, str] = {
    "magnet": "MagNet: Mask Grounding for Referring Image Segmentation (CVPR 2024)",
    "dmmi": "DMMI: Beyond One-to-One: Rethinking the Referring Image Segmentation (ICCV 2023)",
    "meres": "MERES: Visual Expression for Referring Expression Segmentation",
    "jmceln": "JMCELN: Joint Mask and Contextual Embedding Learning Network (EMNLP 2023)",
}
#: refbench's own reference numbers (tiny models trained by refbench on its synthetic benchmark,
#: evaluated with the shipped checkpoints); tables like the papers', so that `refbench reproduce`
#: and the demo can regenerate them
REFERENCE: dict[str, str] = {
    "refbench": "refbench reference runs: tiny models trained by refbench on its synthetic benchmark",
}
#: every source of published numbers: the four papers and refbench's reference runs
SOURCES: dict[str, str] = {**PAPERS, **REFERENCE}
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
REPRODUCED_SCHEMA = "refbench.reproduced"


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
            raise RefbenchError(f"setting {setting!r}: part {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _package_file(*parts: str):
    return resources.files(__name__).joinpath(*parts)


def _parse_row(raw: dict, where: str, paper: str) -> PublishedNumber:
    def bad(field: str, msg: str) -> RefbenchError:
        return RefbenchError(f"{where}: field {field!r} {msg}")

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
        raise RefbenchError(f"{source}: header must be exactly {','.join(COLUMNS)}")
    out: list[PublishedNumber] = []
    seen: dict[tuple, int] = {}
    row_info: dict[tuple, tuple] = {}
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(v is None for v in raw.values()):
            raise RefbenchError(f"{source}:{line}: wrong number of fields (expected {len(COLUMNS)})")
        num = _parse_row(raw, f"{source}:{line}", paper)
        key = (num.table, num.row, num.dataset, num.split, num.subset, num.metric)
        if key in seen:
            raise RefbenchError(f"{source}:{line}: duplicate of line {seen[key]} (same table, row, split and metric)")
        seen[key] = line
        info = tuple(getattr(num, f) for f in ROW_FIELDS)
        first = row_info.setdefault((num.table, num.row), info)
        if first != info:
            diff = next(f for f, a, b in zip(ROW_FIELDS, first, info) if a != b)
            raise RefbenchError(f"{source}:{line}: field {diff!r} differs from earlier numbers of table "
                                f"{num.table} row {num.row}; a row's descriptive fields must agree")
        out.append(num)
    return out


@lru_cache(maxsize=None)
def _load_paper(paper: str) -> tuple[PublishedNumber, ...]:
    name = f"published/{paper}.csv"
    try:
        text = _package_file("published", f"{paper}.csv").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RefbenchError(f"leaderboards/{name} is missing from the installed package; reinstall refbench") from None
    nums = parse_csv(text, paper, f"leaderboards/{name}")
    return tuple(sorted(nums, key=lambda n: (_table_sort_key(n.table), n.row)))


def _table_sort_key(table: str) -> tuple[int, str]:
    digits = "".join(c for c in table if c.isdigit())
    return (int(digits) if digits else 0, table)


def check_paper(paper: str) -> str:
    """``paper`` if known (one of SOURCES), else a RefbenchError listing them."""
    if paper not in SOURCES:
        raise suggest(paper, SOURCES, "paper")
    return paper


def published(paper: str | None = None, table: str | None = None) -> list[PublishedNumber]:
    """Published numbers, in paper, table and row order; filtered by paper and table."""
    papers = [check_paper(paper)] if paper is not None else list(SOURCES)
    out = [n for p in papers for n in _load_paper(p)]
    if table is not None:
        if paper is None:
            raise RefbenchError("published(): a table filter needs a paper")
        if table not in tables(paper):
            raise RefbenchError(f"paper {paper!r} has no table {table!r}. Valid: {', '.join(tables(paper))}")
        out = [n for n in out if n.table == table]
    return out


def tables(paper: str) -> list[str]:
    """The table ids of a paper in paper order (``'3a'`` … for sub-tables)."""
    ids = dict.fromkeys(n.table for n in _load_paper(check_paper(paper)))
    return sorted(ids, key=_table_sort_key)


@dataclass(frozen=True)
class ReproducedRun:
    """An entry of ``reproduced/index.json``: a results file shipped with refbench."""

    results: str        # path relative to leaderboards/reproduced/
    description: str

    def path(self) -> Path:
        """Filesystem path of the results file (inside the installed package)."""
        return Path(str(_package_file("reproduced", self.results)))


def reproduced_runs() -> list[ReproducedRun]:
    """Runs listed in ``reproduced/index.json`` (schema ``refbench.reproduced`` v1)."""
    source = "leaderboards/reproduced/index.json"
    try:
        doc = json.loads(_package_file("reproduced", "index.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RefbenchError(f"{source} is missing from the installed package; reinstall refbench") from None
    except json.JSONDecodeError as e:
        raise RefbenchError(f"{source}: not valid JSON ({e})") from None
    if doc.get("schema") != REPRODUCED_SCHEMA or doc.get("schema_version") != 1:
        raise RefbenchError(f"{source}: expected schema {REPRODUCED_SCHEMA!r} version 1")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise RefbenchError(f"{source}: 'runs' must be a list")
    out = []
    names = {f.name for f in fields(ReproducedRun)}
    for i, entry in enumerate(runs):
        if not isinstance(entry, dict) or not isinstance(entry.get("results"), str) or set(entry) - names:
            raise RefbenchError(f"{source}: runs[{i}] must be {{\"results\": <path>, \"description\": <text>}}")
        out.append(ReproducedRun(entry["results"], str(entry.get("description", ""))))
    return out


__all__ = ["PAPERS", "REFERENCE", "SOURCES", "CheckpointEntry", "checkpoint_manifest", "checkpoints_for", "DATASETS", "SPLITS", "METRICS", "WORD_METRICS", "COLUMNS", "PublishedNumber", "ReproducedRun",
           "published", "tables", "reproduced_runs", "parse_csv", "parse_setting", "check_paper"]


# ---- checkpoint manifest ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointEntry:
    """Which checkpoint file serves (model, variant) on a dataset, and where it comes from.

    ``file`` may contain ``{dataset}`` (refbench-trained weights, one file per dataset);
    ``source`` says where to get it (or the ``refbench train`` command that produces it).
    """

    model: str
    variant: str
    dataset: str
    file: str
    source: str
    note: str

    @property
    def official(self) -> bool:
        return "official" in self.note


@lru_cache(maxsize=None)
def checkpoint_manifest() -> tuple[CheckpointEntry, ...]:
    """Every (model, variant, dataset) -> checkpoint file entry of ``checkpoints.csv``."""
    name = "leaderboards/checkpoints.csv"
    try:
        text = _package_file("checkpoints.csv").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RefbenchError(f"{name} is missing from the installed package; reinstall refbench") from None
    reader = csv.DictReader(io.StringIO(text))
    want = ("model", "variant", "datasets", "file", "source", "note")
    if tuple(reader.fieldnames or ()) != want:
        raise RefbenchError(f"{name}: header must be exactly {','.join(want)}")
    out = []
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(v is None for v in raw.values()) or not raw["file"] or not raw["datasets"]:
            raise RefbenchError(f"{name}:{line}: expected {len(want)} non-empty fields")
        for ds in raw["datasets"].split(";"):
            ds = ds.strip()
            out.append(CheckpointEntry(raw["model"], raw["variant"], ds, raw["file"].replace("{dataset}", ds),
                                       raw["source"].replace("{dataset}", ds), raw["note"]))
    return tuple(out)


def checkpoints_for(model: str, variant: str, dataset: str) -> list[CheckpointEntry]:
    """Manifest entries that serve ``model``/``variant`` on ``dataset`` (official first)."""
    hits = [e for e in checkpoint_manifest() if (e.model, e.variant, e.dataset) == (model, variant, dataset)]
    return sorted(hits, key=lambda e: not e.official)
