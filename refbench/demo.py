"""The demo behind ``make demo``: generated masks scored with every protocol.

Writes GT and prediction PNGs for a small set of generated scenes, then scores three
predictors (a noisy copy of the GT, the empty mask, the full image) with ``refbench
score``'s code path and prints the tables.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from refbench.metrics.stats import bootstrap_ci
from refbench.report import metrics_table
from refbench.results import results_document, write_json_atomic
from refbench.score import score_directories


def _ellipse(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    ry, rx = rng.uniform(0.05, 0.3) * h, rng.uniform(0.05, 0.3) * w
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def write_generated_masks(root: Path, n: int = 60, size: int = 120, seed: int = 0) -> dict[str, str]:
    """GT masks (one in six empty) and three predictors' masks; returns sample types."""
    rng = np.random.default_rng(seed)
    dirs = {k: root / k for k in ("gt", "noisy", "empty", "full")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    types = {}
    for i in range(n):
        sid = f"s{i:04d}"
        if i % 6 == 0:
            gt = np.zeros((size, size), bool)
            types[sid] = "zero"
        else:
            k = 1 if i % 4 else 2
            gt = np.zeros((size, size), bool)
            for _ in range(k):
                gt |= _ellipse(size, size, rng)
            types[sid] = "one" if k == 1 else "many"
        noisy = gt ^ (rng.random((size, size)) < 0.03) if i % 6 else np.zeros_like(gt)
        for name, m in (("gt", gt), ("noisy", noisy), ("empty", np.zeros_like(gt)), ("full", np.ones_like(gt))):
            Image.fromarray(m.astype(np.uint8) * 255).save(dirs[name] / f"{sid}.png")
    return types


def run_demo(out: Path, seed: int = 0, echo: Callable[[str], None] = print) -> None:
    import json

    out = Path(out)
    masks = out / "masks"
    types = write_generated_masks(masks, seed=seed)
    (out / "types.json").write_text(json.dumps(types, indent=1))
    for predictor in ("noisy", "empty", "full"):
        for protocol in ("lavt", "refzom"):
            acc, notes = score_directories(masks / predictor, masks / "gt", protocol, out / "types.json")
            report = acc.report()
            report.notes.extend(notes)
            ci = bootstrap_ci(acc.records, acc.protocol, n_resamples=500, seed=seed)
            echo(metrics_table(report, ci, title=f"\n== predictor {predictor!r}, protocol {protocol} =="))
            doc = results_document(report, "score", ci, "percentile bootstrap, 500 resamples",
                                   pred_dir=str(masks / predictor), gt=str(masks / "gt"))
            write_json_atomic(out / f"score_{predictor}_{protocol}.json", doc)
    echo(f"\nwrote results to {out}/")
