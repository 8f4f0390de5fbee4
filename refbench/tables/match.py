"""Which published number a run reproduces, and under which protocol the paper produced it.

A table row is a refbench model when its ``method_key`` is a registered model name (that model's
first variant) or ``<model>-<variant>`` (``magnet-all``), unless the table's reproduction rules
say otherwise (``row_variants``, ``unreproducible_rows``).  The protocol behind a published number
of such a row is the table's own (``reproduce.protocol``), else the one the model declares for
that variant on that dataset's format (:meth:`ModelInfo.protocol_for`): one fact, in one place.
"""
from __future__ import annotations

import leaderboards
from leaderboards import Layout, PublishedNumber
from refbench.core.models import get_model_info, registry
from refbench.core.protocols import Protocol, get_protocol
from refbench.core.results import ResultsDoc


def row_model(method_key: str, layout: Layout | None = None) -> tuple[str, str] | None:
    """(model, variant) for a table row that is a registered model, else None."""
    if layout is not None and method_key in layout.reproduce.unreproducible_rows:
        return None
    names = registry()
    found: tuple[str, str] | None = None
    if method_key in names:
        found = (method_key, get_model_info(method_key).variants[0])
    else:
        model, _, variant = method_key.rpartition("-")
        if model in names and variant in get_model_info(model).variants:
            found = (model, variant)
    if found is not None and layout is not None and method_key in layout.reproduce.row_variants:
        found = (found[0], layout.reproduce.row_variants[method_key])
    return found


def dataset_format(dataset: str) -> str | None:
    """The annotation format of a dataset name (``refer``, ``refzom``, ``grefcoco``), None if unknown."""
    from refbench.data.catalog import DATASETS

    d = DATASETS.get(dataset)
    return d.format if d is not None else None


def expected_protocol_name(layout: Layout, method_key: str, dataset: str) -> str | None:
    """The protocol behind ``layout``'s numbers of row ``method_key`` on ``dataset`` (None = not a model row)."""
    mv = row_model(method_key, layout)
    if mv is None:
        return None
    if layout.reproduce.protocol is not None:
        return layout.reproduce.protocol
    return get_model_info(mv[0]).protocol_for(mv[1], dataset_format(dataset))


def expected_protocol(layout: Layout, method_key: str, dataset: str) -> Protocol | None:
    """:func:`expected_protocol_name` resolved with the model's own binarization (hash-comparable)."""
    name = expected_protocol_name(layout, method_key, dataset)
    if name is None:
        return None
    model, _ = row_model(method_key, layout)  # type: ignore[misc]
    return get_protocol(name).resolve(get_model_info(model).binarize)


def comparable(run_protocol: Protocol, expected: Protocol) -> bool:
    """Whether a run scored under ``run_protocol`` is comparable with numbers made under ``expected``.

    They must agree on every field that changes a number; a protocol that differs only in its
    name, version or description (e.g. a user's copy of ``lavt`` under another name) is comparable.
    A run that scored given masks (``refbench score``: binarization ``nonzero``, or none recorded)
    is compared on every other field.
    """
    strip = dict(name="", version=0, description="")
    if run_protocol.binarize in (None, "nonzero"):
        strip["binarize"] = None
    return run_protocol.replace(**strip) == expected.replace(**strip)


def method_keys(doc: ResultsDoc) -> list[str]:
    """Published ``method_key`` values a run stands for, most specific first."""
    ident = doc.identity
    if ident.model is None:
        return []
    return ([f"{ident.model}-{ident.variant}"] if ident.variant else []) + [ident.model]


def lookup(doc: ResultsDoc, metric: str, numbers: list[PublishedNumber]) -> PublishedNumber | None:
    """The published number for the run's model, split and ``metric`` (own paper first, then paper/table order)."""
    ident = doc.identity
    if ident.split_name is None:
        return None
    for key in method_keys(doc):
        hits = [n for n in numbers if n.method_key == key and n.dataset == ident.dataset and n.split == ident.split
                and n.subset == ident.subset and n.metric == metric]
        if hits:
            own = [n for n in hits if n.paper == ident.model]
            return (own or hits)[0]
    return None


def main_numbers() -> list[PublishedNumber]:
    """Every number of the ``main`` tables (the ones a run is matched against without --against)."""
    kinds = {lay.key: lay.kind for lay in leaderboards.layouts()}
    return [n for n in leaderboards.numbers() if kinds[f"{n.paper}:{n.table}"] == "main"]


def source(n: PublishedNumber) -> str:
    return f"{n.paper}:{n.table}"


def protocol_mismatch(doc: ResultsDoc, number: PublishedNumber) -> str | None:
    """Why ``doc`` is not comparable with ``number`` (another protocol), or None when it is."""
    layout = leaderboards.layout(number.paper, number.table)
    expected = expected_protocol(layout, number.method_key, number.dataset)
    if expected is None or comparable(doc.protocol, expected):
        return None
    return (f"scored with protocol {doc.protocol.name} [{doc.protocol_hash}]; {source(number)} reports protocol "
            f"{expected.name} [{expected.hash()}]")
