"""The split grammar: ``<dataset>/<split>[:seen|:unseen]``.

Canonical names: ``refcoco/val``, ``refcoco+/testB``, ``refcocog-umd/test``,
``refcocog-google/val``, ``ref-zom/test``, ``grefcoco/val``, ``synth/val``,
``synth-zom/testA``, ``synth-grefcoco/val``, with an optional generalization subset
(``refcocog-umd/val:unseen``).  Accepted aliases: ``refcocog`` / ``g-ref`` / ``gref``
-> ``refcocog-umd``, underscores for dashes, any letter case, and the papers' table
names ``G-Ref val(U)``, ``test(U)``, ``val(G)`` (also ``refcocog/val(G)``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from refbench.data.catalog import DATASETS, DatasetDef
from refbench.core.errors import RefbenchError, suggest

SUBSETS = ("seen", "unseen")

DATASET_ALIASES: dict[str, str] = {
    "refcoco": "refcoco", "refcoco+": "refcoco+", "refcocoplus": "refcoco+", "refcoco_plus": "refcoco+",
    "refcocog": "refcocog-umd", "refcocog-umd": "refcocog-umd", "refcocog-google": "refcocog-google",
    "g-ref": "refcocog-umd", "gref": "refcocog-umd", "g-ref-umd": "refcocog-umd", "g-ref-google": "refcocog-google",
    "ref-zom": "ref-zom", "refzom": "ref-zom", "grefcoco": "grefcoco", "synth": "synth", "synth-zom": "synth-zom",
    "synth-grefcoco": "synth-grefcoco",
}
# The papers' G-Ref column suffixes: (U) = UMD partition, (G) = Google partition.
PARTITION_SUFFIX = {"u": "refcocog-umd", "umd": "refcocog-umd", "g": "refcocog-google", "google": "refcocog-google"}


@dataclass(frozen=True)
class SplitName:
    """A parsed split name; ``str()`` gives the canonical form."""

    dataset: str
    split: str
    subset: str | None = None

    def __str__(self) -> str:
        return f"{self.dataset}/{self.split}" + (f":{self.subset}" if self.subset else "")

    @property
    def definition(self) -> DatasetDef:
        return DATASETS[self.dataset]


def valid_split_names(include_subsets: bool = False) -> list[str]:
    """Every canonical ``dataset/split`` (and ``:seen``/``:unseen`` forms if asked)."""
    out = []
    for d in DATASETS.values():
        for s in d.splits:
            out.append(f"{d.key}/{s}")
            if include_subsets and d.generalization:
                out.extend(f"{d.key}/{s}:{sub}" for sub in (SUBSETS if s != "train" else ("seen",)))
    return out


def _norm_dataset(text: str) -> str | None:
    key = text.strip().lower().replace("_", "-").replace(" ", "")
    return DATASET_ALIASES.get(key)


def _norm_split(d: DatasetDef, text: str) -> str | None:
    lowered = {s.lower(): s for s in d.splits}
    return lowered.get(text.strip().lower())


def _unknown(name: str, valid: list[str]) -> RefbenchError:
    err = suggest(name, valid, "split")
    return RefbenchError(f"{err} (append :seen or :unseen for the generalization subsets of refcoco, refcoco+, "
                         f"refcocog-umd, refcocog-google and synth)")


def parse_split(name: str) -> SplitName:
    """Parse a split name (see module doc); unknown names get the valid list and the closest one."""
    if not isinstance(name, str) or not name.strip():
        raise RefbenchError("empty split name; use e.g. refcoco/val (see `refbench data check` for what is present)")
    text = name.strip()
    subset = None
    if ":" in text:
        text, subset = text.rsplit(":", 1)
        subset = subset.strip().lower()
    m = re.fullmatch(r"\s*(.+?)\s*[/ ]\s*([A-Za-z]+)\s*(?:\(\s*([A-Za-z]+)\s*\))?\s*", text)
    if m is None:
        raise _unknown(text, valid_split_names())
    ds_text, split_text, partition = m.groups()
    dataset = _norm_dataset(ds_text)
    if partition is not None:
        part = PARTITION_SUFFIX.get(partition.lower())
        if part is None or dataset not in ("refcocog-umd", "refcocog-google"):
            raise _unknown(text, valid_split_names())
        dataset = part
    if dataset is None:
        raise _unknown(text, valid_split_names())
    d = DATASETS[dataset]
    split = _norm_split(d, split_text)
    if split is None:
        raise _unknown(text, [f"{dataset}/{s}" for s in d.splits])
    if subset is not None:
        if subset not in SUBSETS:
            raise RefbenchError(f"unknown subset {subset!r} in split {name!r}; valid subsets: seen, unseen")
        if not d.generalization:
            raise RefbenchError(f"split {name!r}: :seen/:unseen subsets are defined for refcoco, refcoco+, "
                                f"refcocog-umd, refcocog-google and synth only")
        if split == "train" and subset == "unseen":
            raise RefbenchError(f"split {name!r}: the generalization setting trains on seen categories only; "
                                f"use {dataset}/train:seen")
    return SplitName(dataset, split, subset)


def canonical_split(name: str) -> str:
    """The canonical form of any accepted split name (``'G-Ref val(U)'`` -> ``'refcocog-umd/val'``)."""
    return str(parse_split(name))


_PAPER_DATASETS = {"refcoco": "refcoco", "refcoco+": "refcoco+", "g-ref": "g-ref", "gref": "g-ref",
                   "refcocog": "g-ref", "ref-zom": "ref-zom", "refzom": "ref-zom", "grefcoco": "grefcoco"}


def paper_split(dataset: str, column: str) -> str:
    """Canonical split name for a paper table's dataset header and column.

    ``paper_split("G-Ref", "val(U)") == "refcocog-umd/val"``, ``paper_split("G-Ref", "val(G)")
    == "refcocog-google/val"``, ``paper_split("RefCOCO+", "testA") == "refcoco+/testA"``.
    A G-Ref column without (U)/(G) means the UMD partition (JMCELN, MagNet's "G-Ref").
    """
    ds = _PAPER_DATASETS.get(dataset.strip().lower().replace(" ", "").replace("_", "-"))
    if ds is None:
        raise suggest(dataset, ["RefCOCO", "RefCOCO+", "G-Ref", "RefCOCOg", "Ref-ZOM", "gRefCOCO"], "paper dataset name")
    col = column.strip().replace(" ", "").replace("_", "").replace(".", "")
    return canonical_split(f"{ds}/{col}")
