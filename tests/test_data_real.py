"""Checks against the real annotation files; skipped unless REFBENCH_DATA points at them.

    REFBENCH_DATA=/path/to/refer/data pytest -m data tests/test_data_real.py
"""
from __future__ import annotations

import pytest

from refbench.data import open_split
from refbench.data.catalog import DATASETS
from refbench.data.layout import find_dataset_files, resolve_data_root

pytestmark = pytest.mark.data

ROOT = resolve_data_root(None)


def _present(key: str) -> bool:
    return ROOT is not None and ROOT.is_dir() and find_dataset_files(ROOT, DATASETS[key]) is not None


def _need(key: str) -> None:
    if ROOT is None:
        pytest.skip("REFBENCH_DATA is not set")
    if not _present(key):
        pytest.skip(f"{key} not found under {ROOT}")


CGFORMER = [(key, split, subset) for key in ("refcoco", "refcoco+", "refcocog-umd", "refcocog-google")
            for (split, subset) in DATASETS[key].cgformer_refs]


@pytest.mark.parametrize("key,split,subset", CGFORMER)
def test_cgformer_seen_unseen_ref_counts(key, split, subset):
    """CGFormer's utils/dataset_open.py record counts (= refs) under the ref-level OVR rule."""
    _need(key)
    sd = open_split(f"{key}/{split}:{subset}", ROOT)
    assert len(sd.refs) == DATASETS[key].cgformer_refs[(split, subset)], \
        f"{sd.name}: {len(sd.refs)} refs (rule 'ref'); try generalization_rule='image' for train"


@pytest.mark.parametrize("key,split", [(k, s) for k, d in DATASETS.items() if not d.synthetic
                                       for s in d.splits if s in d.refs or s in d.sentences])
def test_published_counts(key, split):
    _need(key)
    sd = open_split(f"{key}/{split}", ROOT)
    if sd.expected_refs is not None:
        assert len(sd.refs) == sd.expected_refs
    if sd.expected_sentences is not None:
        assert len(sd.samples) == sd.expected_sentences

