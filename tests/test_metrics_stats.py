"""Bootstrap confidence intervals and the paired significance test."""
import numpy as np
import pytest

from refbench.core.errors import RefbenchError
from refbench.metrics import SampleRecords, bootstrap_ci, paired_test


def records(ious, size=100, prefix="s", types=None):
    """Records whose IoU is exactly the given values (U = size)."""
    I = np.round(np.asarray(ious) * size).astype(np.int64)
    n = len(I)
    t = np.ones(n, np.int8) if types is None else np.asarray(types, np.int8)
    return SampleRecords([f"{prefix}{i}" for i in range(n)], I, np.full(n, size, np.int64), I.copy(),
                         np.full(n, size, np.int64), t, np.full(n, -1, np.int8))


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    rec = records(rng.uniform(0, 1, 300))
    ci = bootstrap_ci(rec, "lavt", n_resamples=500, seed=1)
    point = 100 * rec.iou().mean()
    assert ci["mIoU"].low < point < ci["mIoU"].high
    # standard error of a mean of U(0,1) over 300 samples is ~1.67 points: 95% CI ~ +-3.3
    assert 4.5 < ci["mIoU"].high - ci["mIoU"].low < 8.5
    assert bootstrap_ci(rec, "lavt", n_resamples=500, seed=1)["oIoU"].to_list() == ci["oIoU"].to_list()


def test_bootstrap_degenerate_when_all_equal():
    ci = bootstrap_ci(records([0.5] * 50), "lavt", n_resamples=200)
    assert ci["mIoU"].low == ci["mIoU"].high == pytest.approx(50.0)
    assert ci["P@0.5"].low == 100.0 and ci["P@0.6"].high == 0.0


def test_bootstrap_metric_without_samples_gives_none():
    ci = bootstrap_ci(records([0.5] * 10), "refzom", n_resamples=50)
    assert ci["Acc"].low is None  # no zero-target sample


def test_paired_identical_runs_not_significant():
    rec = records(np.linspace(0, 1, 100))
    res = {r.metric: r for r in paired_test(rec, rec, "lavt", n_permutations=500, n_resamples=200)}
    assert res["mIoU"].delta == 0.0 and res["mIoU"].p_value == 1.0


def test_paired_clear_improvement_is_significant():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, 400)
    a = records(np.clip(base + 0.05, 0, 1))
    b = records(base)
    res = {r.metric: r for r in paired_test(a, b, "lavt", n_permutations=2000, n_resamples=500)}
    assert res["mIoU"].delta == pytest.approx(5.0, abs=0.3)
    assert res["mIoU"].p_value < 0.001
    assert res["oIoU"].p_value < 0.001
    assert res["mIoU"].ci.low > 4.0


def test_paired_noise_only_difference_is_not_significant():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.2, 0.8, 400)
    a = records(np.clip(base + rng.normal(0, 0.05, 400), 0, 1))
    b = records(np.clip(base + rng.normal(0, 0.05, 400), 0, 1))
    res = {r.metric: r for r in paired_test(a, b, "lavt", n_permutations=2000, n_resamples=200)}
    assert res["mIoU"].p_value > 0.05


def test_paired_order_independent_and_requires_same_samples():
    rng = np.random.default_rng(3)
    a = records(rng.uniform(0, 1, 50))
    b = records(rng.uniform(0, 1, 50))
    shuffled = b.take(rng.permutation(50))
    r1 = paired_test(a, b, "lavt", n_permutations=300, n_resamples=100, seed=5)
    r2 = paired_test(a, shuffled, "lavt", n_permutations=300, n_resamples=100, seed=5)
    assert [r.to_dict() for r in r1] == [r.to_dict() for r in r2]
    with pytest.raises(RefbenchError, match="same samples"):
        paired_test(a, records([0.5] * 50, prefix="t"), "lavt")
