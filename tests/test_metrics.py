"""Hand-computed cases for every metric and protocol family."""
import math

import numpy as np
import pytest
import torch

from refbench.core.errors import RefbenchError
from refbench.metrics import RISMetrics, SampleRecords, binarize, intersection_union
from refbench.core.protocols import get_protocol


def masks(*pairs, size=8):
    """Build (pred, gt) batches from lists of flat pixel indices."""
    pred = torch.zeros(len(pairs), size * size, dtype=torch.bool)
    gt = torch.zeros_like(pred)
    for b, (p, g) in enumerate(pairs):
        pred[b, list(p)] = True
        gt[b, list(g)] = True
    return pred.view(-1, size, size), gt.view(-1, size, size)


# a: pred 4 px, gt 6 px, overlap 3 -> I 3, U 7.  b: perfect 10 px.  c: empty GT, 2 px false positive.
A = (range(0, 4), range(1, 7))
B = (range(20, 30), range(20, 30))
C = (range(40, 42), ())


def acc_for(protocol, pairs=(A, B, C), types=("one", "many", "zero"), pred_nt=None):
    acc = RISMetrics(protocol)
    pred, gt = masks(*pairs)
    acc.update(pred, gt, [f"s{i}" for i in range(len(pairs))], list(types), pred_nt)
    return acc


def test_intersection_union_counts():
    pred, gt = masks(A, B, C)
    I, U, P, G = intersection_union(pred, gt).tolist()
    assert I == [3, 10, 0] and U == [7, 10, 2] and P == [4, 10, 2] and G == [6, 10, 0]


@pytest.mark.parametrize("n,h,w", [(20, 480, 480), (3, 1000, 1001), (7, 31, 33)])
def test_intersection_union_matches_naive_counts_across_cpu_chunks(n, h, w):
    """Batches larger than the CPU chunk (20 x 480 x 480 > 4 MiB, last chunk partial) count exactly."""
    g = torch.Generator().manual_seed(n)
    pred, gt = torch.rand(n, h, w, generator=g) > 0.7, torch.rand(n, h, w, generator=g) > 0.4
    got = intersection_union(pred, gt)
    flat_p, flat_g = pred.reshape(n, -1), gt.reshape(n, -1)
    want = torch.stack([(flat_p & flat_g).sum(1), (flat_p | flat_g).sum(1), flat_p.sum(1), flat_g.sum(1)])
    assert torch.equal(got, want)


def test_lavt_hand_computed():
    m = acc_for("lavt").compute()
    assert m["oIoU"] == pytest.approx(100 * 13 / 19, abs=1e-12)
    assert m["mIoU"] == pytest.approx(100 * (3 / 7 + 1 + 0) / 3, abs=1e-12)
    assert m["P@0.5"] == pytest.approx(100 / 3)
    assert m["P@0.9"] == pytest.approx(100 / 3)
    assert list(m) == ["oIoU", "mIoU", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9"]


def test_lavt_empty_gt_empty_pred_scores_zero():
    acc = acc_for("lavt", pairs=[((), ())], types=["zero"])
    m = acc.compute()
    assert m["mIoU"] == 0.0 and m["P@0.5"] == 0.0
    assert m["oIoU"] is None  # sum U == 0: nothing to measure
    acc2 = acc_for("lavt", pairs=[((), ()), B], types=["zero", "one"])
    assert acc2.compute()["mIoU"] == 50.0 and acc2.compute()["oIoU"] == 100.0


def test_lavt_perfect_disjoint_batch_of_one():
    assert acc_for("lavt", pairs=[B], types=["one"]).compute()["mIoU"] == 100.0
    m = acc_for("lavt", pairs=[(range(0, 5), range(10, 15))], types=["one"]).compute()
    assert m["mIoU"] == 0.0 and m["oIoU"] == 0.0 and m["P@0.5"] == 0.0


def test_p_at_x_uses_greater_or_equal_under_lavt_and_strict_under_cris():
    half = (range(0, 2), range(0, 4))  # I 2, U 4: IoU exactly 0.5
    assert acc_for("lavt", pairs=[half], types=["one"]).compute()["P@0.5"] == 100.0
    m = acc_for("cris", pairs=[half], types=["one"]).compute()
    assert m["P@0.5"] == 0.0
    assert m["mIoU"] == pytest.approx(100 * 2 / (4 + 1e-6), abs=1e-12)


def test_refzom_hand_computed():
    m = acc_for("refzom").compute()
    assert m["oIoU"] == pytest.approx(100 * 13 / 17)
    assert m["mIoU"] == pytest.approx(100 * (3 / 7 + 1) / 2)
    assert m["Acc"] == 0.0  # the zero-target sample has a false positive
    m2 = acc_for("refzom", pairs=(A, B, ((), ())), types=("one", "many", "zero")).compute()
    assert m2["Acc"] == 100.0  # empty GT + empty prediction is a correct no-target
    assert m2["oIoU"] == m["oIoU"]


def test_gres_hand_computed_from_empty_masks():
    acc = acc_for("gres")
    r = acc.report()
    m = r.metrics
    assert m["gIoU"] == pytest.approx(100 * (3 / 7 + 1 + 0) / 3)
    assert m["cIoU"] == pytest.approx(100 * 13 / 19)  # missed no-target adds its 2 px to U
    assert m["N-acc"] == 0.0 and m["T-acc"] == 100.0
    assert m["P@0.7"] == 50.0 and list(m)[-3:] == ["P@0.7", "P@0.8", "P@0.9"]
    assert any("empty predicted mask" in n for n in r.notes)


def test_gres_with_no_target_flags():
    # c flagged no-target (TP), b flagged no-target though it has a target (FP: I forced to 0)
    m = acc_for("gres", pred_nt=torch.tensor([False, True, True])).compute()
    assert m["gIoU"] == pytest.approx(100 * (3 / 7 + 0 + 1) / 3)
    assert m["cIoU"] == pytest.approx(100 * 3 / (7 + 10 + 0))
    assert m["N-acc"] == 100.0 and m["T-acc"] == 50.0
    assert m["P@0.7"] == 0.0


def test_gres_empty_gt_empty_prediction_is_correct_no_target():
    m = acc_for("gres", pairs=[((), ()), B], types=["zero", "one"]).compute()
    assert m["gIoU"] == 100.0 and m["N-acc"] == 100.0 and m["cIoU"] == 100.0


def test_gres_without_no_target_samples_reports_no_nacc():
    m = acc_for("gres", pairs=[A, B], types=["one", "one"]).compute()
    assert m["N-acc"] is None and m["T-acc"] is None
    lavt = acc_for("lavt", pairs=[A, B], types=["one", "one"]).compute()
    assert m["gIoU"] == pytest.approx(lavt["mIoU"]) and m["cIoU"] == pytest.approx(lavt["oIoU"])


def test_types_default_from_gt():
    acc = RISMetrics("refzom")
    pred, gt = masks(A, C)
    acc.update(pred, gt, ["a", "c"])
    assert acc.report().counts == {"total": 2, "zero": 1, "one": 1, "many": 0}


def test_binarize_rules():
    l2 = torch.tensor([[[[0.0, 1.0, 2.0]]], [[[0.0, 2.0, 1.0]]]]).view(1, 2, 1, 3)
    assert binarize(l2, "argmax").tolist() == [[[False, True, False]]]  # tie -> background
    assert torch.equal(binarize(l2, "argmax"), l2.argmax(1).bool())
    l1 = torch.tensor([[[-1.0, 0.0, 0.1, -0.5]]])
    assert binarize(l1, "sigmoid>0.5").tolist() == [[[False, False, True, False]]]
    assert binarize(l1, "sigmoid>0.35").tolist() == [[[False, True, True, True]]]
    with pytest.raises(RefbenchError, match="NaN"):
        binarize(torch.tensor([[[float("nan")]]]), "sigmoid>0.5")
    with pytest.raises(RefbenchError, match=r"\(B, 2, H, W\)"):
        binarize(l1[:, None], "argmax")


def test_update_logits_uses_protocol_rule():
    acc = RISMetrics(get_protocol("lavt").resolve("argmax"))
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1, :2] = 1.0
    gt = torch.zeros(1, 4, 4, dtype=torch.bool)
    gt[0, :1] = True
    acc.update_logits(logits, gt, ["x"])
    assert acc.compute()["mIoU"] == 50.0


def test_bad_inputs_are_clear_errors():
    acc = RISMetrics("lavt")
    with pytest.raises(RefbenchError, match="shape"):
        acc.update(torch.zeros(1, 4, 4, dtype=torch.bool), torch.zeros(1, 5, 4, dtype=torch.bool), ["a"])
    with pytest.raises(RefbenchError, match="not binary"):
        acc.update(torch.rand(1, 4, 4) + 0.1, torch.zeros(1, 4, 4), ["a"])
    with pytest.raises(RefbenchError, match="NaN"):
        acc.update(torch.full((1, 4, 4), float("nan")), torch.zeros(1, 4, 4), ["a"])
    with pytest.raises(RefbenchError, match="unknown protocol"):
        RISMetrics("lavtt")
    acc.update(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), ["a"])
    with pytest.raises(RefbenchError, match="scored twice"):
        acc.update(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), ["a"])
    with pytest.raises(RefbenchError, match="zero/one/many"):
        RISMetrics("lavt").update(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), ["b"], ["two"])


def test_variable_size_samples():
    acc = RISMetrics("lavt")
    p = [torch.ones(3, 5, dtype=torch.bool), torch.ones(4, 4, dtype=torch.bool)]
    g = [torch.ones(3, 5, dtype=torch.bool), torch.zeros(4, 4, dtype=torch.bool)]
    acc.update(p, g, ["a", "b"])
    assert acc.compute()["oIoU"] == pytest.approx(100 * 15 / 31)
    with pytest.raises(RefbenchError, match="size"):
        acc.update([torch.ones(3, 5)], [torch.ones(5, 3)], ["c"])


def test_records_roundtrip_and_merge_protocol_check():
    acc = acc_for("refzom")
    rec = SampleRecords.from_dicts(list(acc.records.iter_dicts()))
    again = RISMetrics("refzom")
    again.add_records(rec)
    assert again.compute() == acc.compute()
    with pytest.raises(RefbenchError, match="cannot merge"):
        RISMetrics("lavt").merge(acc)


def test_metrics_are_percent_python_floats():
    m = acc_for("lavt").compute()
    assert all(isinstance(v, float) for v in m.values())
    assert math.isclose(sum(1 for v in m.values() if 0 <= v <= 100), len(m))


def test_official_per_sample_loop_equivalence():
    """The batched accumulator equals the official test.py loop (numpy, per sentence)."""
    rng = np.random.default_rng(3)
    logits = torch.from_numpy(rng.normal(size=(12, 2, 32, 32)).astype(np.float32))
    gt = torch.from_numpy(rng.random((12, 32, 32)) < 0.3)
    gt[0] = False
    acc = RISMetrics(get_protocol("lavt").resolve("argmax"))
    acc.update_logits(logits, gt, [str(i) for i in range(12)])
    cum_I = cum_U = 0
    ious = []
    hits = {t: 0 for t in (0.5, 0.6, 0.7, 0.8, 0.9)}
    for b in range(12):
        pred = logits[b].argmax(0).numpy()
        g = gt[b].numpy()
        I = np.sum(np.logical_and(pred, g))
        U = np.sum(np.logical_or(pred, g))
        iou = 0.0 if U == 0 else I * 1.0 / U
        cum_I += I
        cum_U += U
        ious.append(iou)
        for t in hits:
            hits[t] += iou >= t
    m = acc.compute()
    assert m["oIoU"] == pytest.approx(100 * cum_I / cum_U, abs=1e-12)
    assert m["mIoU"] == pytest.approx(100 * np.mean(ious), abs=1e-12)
    for t, h in hits.items():
        assert m[f"P@{t:g}"] == pytest.approx(100 * h / 12)
