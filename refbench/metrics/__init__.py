"""Exact RIS metrics: streaming accumulators, protocol families, uncertainty.

    from refbench.metrics import RISMetrics
    acc = RISMetrics("lavt"); acc.update(pred_masks, gt_masks, ids); acc.compute()
    -> {'oIoU': …, 'mIoU': …, 'P@0.5': …, …}   (percent)

See refbench.metrics.definitions for the exact definition of every number.
"""
from refbench.metrics.accumulator import MetricReport, RISMetrics, intersection_union
from refbench.core.binarize import as_binary_mask, binarize
from refbench.metrics.definitions import contributions, metric_names
from refbench.metrics.distributed import all_gather_metrics
from refbench.core.records import TYPES, SampleRecords
from refbench.metrics.stats import Interval, PairedResult, bootstrap_ci, paired_test

__all__ = [
    "RISMetrics", "MetricReport", "intersection_union", "binarize", "as_binary_mask", "contributions",
    "metric_names", "all_gather_metrics", "SampleRecords", "TYPES", "bootstrap_ci", "paired_test",
    "Interval", "PairedResult",
]
