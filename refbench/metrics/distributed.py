"""Cross-process reduction of metric state (torch.distributed, any backend: nccl, gloo).

Each process scores a disjoint shard of the samples.  :func:`all_gather_metrics` gathers
every process's records onto every process (``all_gather_object``) and all-reduces the
integer sums (count, sum I, sum U) as a consistency check: the merged records must add up
to the reduced sums, and no sample may appear twice.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from refbench.core.errors import RefbenchError
from refbench.metrics.accumulator import RISMetrics
from refbench.core.records import SampleRecords


def all_gather_metrics(acc: RISMetrics, device: torch.device | str | None = None) -> RISMetrics:
    """A new accumulator holding the records of all processes (every rank gets it).

    Without an initialised process group this returns ``acc`` itself.
    ``device`` is where the sum tensor lives for the all-reduce (``cuda`` for nccl).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return acc
    if device is None:
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    local = acc.records
    sums = torch.tensor([len(local), int(local.I.sum()), int(local.U.sum())], dtype=torch.int64, device=device)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    merged = RISMetrics(acc.protocol)
    merged.add_records(SampleRecords.concat(parts))  # raises on a sample scored by two ranks
    rec = merged.records
    got = (len(rec), int(rec.I.sum()), int(rec.U.sum()))
    want = tuple(int(x) for x in sums.tolist())
    if got != want:
        raise RefbenchError(f"distributed reduce mismatch: gathered records give (n, sum I, sum U) = {got}, "
                            f"all-reduced sums give {want}")
    return merged
