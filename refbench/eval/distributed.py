"""Process groups for ``torchrun`` evaluation, and sharding without padding or duplicates."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the group and must destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env(use_cuda: bool) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (or run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        owns = True
    return DistContext(rank, world, local, owns)


def shard(indices: list[int], rank: int, world: int) -> list[int]:
    """Process ``rank``'s share: every world-th index, starting at rank.  The shares are
    disjoint, cover every index exactly once, and differ in size by at most one (no padding)."""
    return indices[rank::world]
