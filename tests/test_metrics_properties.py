"""Property tests: merge order, IoU range, batched == per-sample."""
import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from refbench.metrics import RISMetrics

PROTOCOLS = ["lavt", "refzom", "gres", "cris"]


@st.composite
def batches(draw):
    n = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    pred = rng.random((n, 6, 6)) < draw(st.floats(0.0, 1.0))
    gt = rng.random((n, 6, 6)) < draw(st.floats(0.0, 1.0))
    empty = rng.random(n) < 0.3
    gt[empty] = False
    pred[rng.random(n) < 0.2] = False
    many = rng.random(n) < 0.3
    types = ["zero" if not g.any() else ("many" if m else "one") for g, m in zip(gt, many)]
    return torch.from_numpy(pred), torch.from_numpy(gt), types


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(PROTOCOLS), st.lists(st.integers(0, 12), max_size=4))
def test_merge_in_any_split_order_equals_one_pass(batch, protocol, cuts):
    pred, gt, types = batch
    n = len(types)
    ids = [f"id{i}" for i in range(n)]
    whole = RISMetrics(protocol)
    whole.update(pred, gt, ids, types)
    bounds = sorted({0, n, *[c % (n + 1) for c in cuts]})
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        acc = RISMetrics(protocol)
        acc.update(pred[a:b], gt[a:b], ids[a:b], types[a:b])
        parts.append(acc)
    merged = RISMetrics(protocol)
    for acc in reversed(parts):  # any order
        merged.merge(acc)
    assert merged.compute() == whole.compute()  # exactly equal, not approximately
    assert merged.report().counts == whole.report().counts


@settings(max_examples=60, deadline=None)
@given(batches())
def test_iou_in_unit_interval_and_metrics_in_percent(batch):
    pred, gt, types = batch
    acc = RISMetrics("lavt")
    acc.update(pred, gt, [str(i) for i in range(len(types))], types)
    iou = acc.records.iou()
    assert ((iou >= 0) & (iou <= 1)).all()
    assert (acc.records.I <= acc.records.U).all()
    for v in acc.compute().values():
        assert v is None or 0.0 <= v <= 100.0


@settings(max_examples=40, deadline=None)
@given(batches(), st.sampled_from(PROTOCOLS))
def test_batched_equals_per_sample(batch, protocol):
    pred, gt, types = batch
    ids = [str(i) for i in range(len(types))]
    batched = RISMetrics(protocol)
    batched.update(pred, gt, ids, types)
    single = RISMetrics(protocol)
    for i in range(len(ids)):
        single.update(pred[i:i + 1], gt[i:i + 1], ids[i:i + 1], types[i:i + 1])
    listed = RISMetrics(protocol)
    listed.update(list(pred), list(gt), ids, types)
    assert batched.compute() == single.compute() == listed.compute()
