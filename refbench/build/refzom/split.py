"""Train / test split by image: no image (hence no ref, object or sentence) is in both.

Images are split per stratum (zero-target images, target images), each shuffled by its
own seeded generator, with ``round(n * test_fraction)`` of every stratum in test, so
both splits get one-to-zero and one/many images in the same proportion.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from refbench.core.errors import RefbenchError

SPLITS = ("train", "test")


def split_images(strata: Mapping[str, Sequence[int]], test_fraction: float, seed: int) -> dict[int, str]:
    """{image_id: "train" | "test"} for every image of every stratum (image ids unique overall)."""
    if not 0.0 < test_fraction < 1.0:
        raise RefbenchError(f"--test-fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    out: dict[int, str] = {}
    for k, (name, ids) in enumerate(sorted(strata.items())):
        ids = sorted(int(i) for i in ids)
        order = np.random.default_rng([seed, 7, k]).permutation(len(ids))
        n_test = int(round(len(ids) * test_fraction))
        for rank, idx in enumerate(order):
            iid = ids[int(idx)]
            if iid in out:
                raise ValueError(f"image {iid} is in two strata ({name})")
            out[iid] = "test" if rank < n_test else "train"
    return out
