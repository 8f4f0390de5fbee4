"""The distributed reduce on 2 CPU processes (gloo) equals a single-process pass."""
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from refbench.metrics import RISMetrics, all_gather_metrics


def _data():
    rng = np.random.default_rng(0)
    pred = torch.from_numpy(rng.random((11, 8, 8)) < 0.4)
    gt = torch.from_numpy(rng.random((11, 8, 8)) < 0.4)
    gt[3] = False
    return pred, gt, [f"s{i}" for i in range(11)]


def _worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        pred, gt, ids = _data()
        acc = RISMetrics("refzom")
        shard = list(range(rank, 11, world))  # uneven shards: 6 + 5
        acc.update(pred[shard], gt[shard], [ids[i] for i in shard])
        merged = all_gather_metrics(acc)
        if rank == 0:
            torch.save({"metrics": merged.compute(), "ids": sorted(merged.records.ids)}, out_file)
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_reduce_equals_single_process():
    pred, gt, ids = _data()
    single = RISMetrics("refzom")
    single.update(pred, gt, ids)
    with tempfile.TemporaryDirectory() as d:
        init, out = os.path.join(d, "init"), os.path.join(d, "out.pt")
        mp.start_processes(_worker, args=(2, init, out), nprocs=2, join=True, start_method="spawn")
        got = torch.load(out, weights_only=True)
    assert got["ids"] == sorted(ids)
    assert got["metrics"] == single.compute()


def test_without_process_group_returns_same_accumulator():
    acc = RISMetrics("lavt")
    assert all_gather_metrics(acc) is acc


@pytest.mark.parametrize("dup", [True])
def test_sample_scored_on_two_ranks_is_an_error(dup):
    from refbench.core.errors import RefbenchError

    a, b = RISMetrics("lavt"), RISMetrics("lavt")
    m = torch.zeros(1, 4, 4, dtype=torch.bool)
    a.update(m, m, ["x"])
    b.update(m, m, ["x"])
    with pytest.raises(RefbenchError, match="scored twice"):
        a.merge(b)
