"""The Ref-ZOM training order: zero-target sentences spread evenly among the others.

Official ``Refzom_DistributedSampler`` (``data/dataset_zom.py``; spec §3.4): shuffle the
one/many-target sentences ("others") and the zero-target ones, then with
``block = len(others) // len(zeros)`` emit, for each zero sentence i, the block
``others[i·block : (i+1)·block]`` followed by zero sentence i, and finally the leftover others.
Each process takes every ``num_replicas``-th index starting at its rank.

As in the official code the order is drawn once, when the sampler is built, and every epoch
repeats it (the official ``set_epoch`` has no effect on it).  ``reshuffle_each_epoch=True`` draws
a new order per epoch from (seed, epoch) instead.  Differences, both in cases the official code
does not handle: with no zero sentence the order is the shuffled others (the official code
divides by zero), and when zero sentences outnumber the others the roles swap so the others are
spread among the zeros (the official code would emit every zero sentence first).
"""
from __future__ import annotations

import random
from typing import Iterator, Sequence, TypeVar

from torch.utils.data import Sampler

from refbench.core.errors import RefbenchError
from refbench.core.records import TYPES

T = TypeVar("T")


def insert_evenly(minority: Sequence[T], majority: Sequence[T]) -> list[T]:
    """Blocks of ``len(majority) // len(minority)`` majority items, each followed by one minority item,
    then the leftover majority items (official ``insert_evenly``; requires len(minority) <= len(majority))."""
    if len(minority) > len(majority):
        raise ValueError("insert_evenly: the minority list is longer than the majority list")
    if not minority:
        return list(majority)
    block = len(majority) // len(minority)
    out: list[T] = []
    for i, item in enumerate(minority):
        out.extend(majority[i * block:(i + 1) * block])
        out.append(item)
    out.extend(majority[len(minority) * block:])
    return out


def refzom_order(types: Sequence[str], seed: int = 0, shuffle: bool = True) -> list[int]:
    """Dataset indices in the Ref-ZOM order for samples of the given target types.

    Args:
        types: per dataset index, ``"zero"``, ``"one"`` or ``"many"``.
        seed: seed of the shuffles (a :class:`random.Random` of its own; no global state).
        shuffle: shuffle both groups first (official default) or keep dataset order.
    """
    bad = sorted({t for t in types if t not in TYPES})
    if bad:
        raise RefbenchError(f"Ref-ZOM sampler: sample types must be 'zero', 'one' or 'many', got {bad[:3]}")
    zeros = [i for i, t in enumerate(types) if t == "zero"]
    others = [i for i, t in enumerate(types) if t != "zero"]
    if shuffle:
        rng = random.Random(seed)
        rng.shuffle(others)   # official order of the shuffles: the one/many list, then the zero list
        rng.shuffle(zeros)
    if len(zeros) <= len(others):
        return insert_evenly(zeros, others)
    return insert_evenly(others, zeros)


class RefZOMSampler(Sampler[int]):
    """Yields this process's share of :func:`refzom_order` (every ``num_replicas``-th index from ``rank``).

    Args:
        types: target type per dataset index (``Sample.type`` of each sample).
        seed, shuffle: see :func:`refzom_order`.
        num_replicas, rank: data-parallel world size and this process's rank.
        reshuffle_each_epoch: False (official) repeats the first order every epoch; True draws
            the order of epoch e from seed + e after :meth:`set_epoch`.
    """

    def __init__(self, types: Sequence[str], seed: int = 0, shuffle: bool = True, num_replicas: int = 1,
                 rank: int = 0, reshuffle_each_epoch: bool = False) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise RefbenchError(f"Ref-ZOM sampler: rank {rank} is not in [0, {num_replicas})")
        self.types = list(types)
        self.seed, self.shuffle = seed, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.reshuffle_each_epoch = reshuffle_each_epoch
        self.epoch = 0
        self._order = refzom_order(self.types, seed, shuffle)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.reshuffle_each_epoch:
            self._order = refzom_order(self.types, self.seed + epoch, self.shuffle)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order[self.rank::self.num_replicas])

    def __len__(self) -> int:
        return len(self._order[self.rank::self.num_replicas])
