#!/usr/bin/env python
"""Data pipeline throughput: JPEG decode + resize + normalize + GT + tokenize, per protocol.

Runs refbench.data.RISDataset over the synthetic benchmark (640x480 JPEGs, like COCO)
through a torch DataLoader and prints samples/s, plus a single-process breakdown of
where the time goes.  Tokenization happens once per split when the dataset is built
(batched); its time is included in the end-to-end figure.

    python benchmarks/data_throughput.py [--data-root DIR] [--split synth/train] [--n 1200]
        [--workers 2] [--batch 16] [--protocol lavt] [--write-results]

Without --data-root the default synthetic benchmark (small, seed 0) is built into the
cache on first use.  Target on a 2-core CPU: >= 100 samples/s at 480x480 with 2 workers.
``--write-results`` writes the figures into the ``data_throughput`` section of
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

from refbench.core.tokenize import get_tokenizer  # noqa: E402
from refbench.data import RISDataset, collate  # noqa: E402
from refbench.data.dataset import load_rgb  # noqa: E402
from refbench.eval.splits import open_eval_split  # noqa: E402
from refbench.data.transforms import resize_mask_nearest, stretch_image, to_normalized_tensor  # noqa: E402


def breakdown(split, n: int, size: int) -> dict[str, float]:
    """Milliseconds per sample for each stage, single process."""
    samples = split.samples[:n]
    t = dict.fromkeys(("decode", "resize", "normalize", "gt", "tokenize"), 0.0)
    for s in samples:
        t0 = time.perf_counter()
        img = load_rgb(split.image_path(s))
        t1 = time.perf_counter()
        small = stretch_image(img, size)
        t2 = time.perf_counter()
        to_normalized_tensor(small, "imagenet")
        t3 = time.perf_counter()
        resize_mask_nearest(split.gt_mask(s, "lavt"), size)
        t4 = time.perf_counter()
        t["decode"] += t1 - t0
        t["resize"] += t2 - t1
        t["normalize"] += t3 - t2
        t["gt"] += t4 - t3
    tok = get_tokenizer("bert", 20)
    t0 = time.perf_counter()
    tok.encode_batch([s.sentence for s in samples])
    t["tokenize"] = time.perf_counter() - t0
    return {k: 1000.0 * v / len(samples) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--split", default="synth/train")
    ap.add_argument("--protocol", default="lavt")
    ap.add_argument("--n", type=int, default=1200, help="samples to load")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--write-results", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)  # workers do the work; one intra-op thread each, as in a training loader

    split = open_eval_split(args.split, args.data_root, explicit=args.data_root is not None)
    n = min(args.n, len(split))
    t0 = time.perf_counter()
    ds = RISDataset(split, args.protocol)
    t_init = time.perf_counter() - t0
    sub = Subset(ds, range(n))
    loader = DataLoader(sub, batch_size=args.batch, num_workers=args.workers, collate_fn=collate,
                        persistent_workers=False)
    ru0_self, ru0_child = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    seen = 0
    for batch in loader:
        seen += len(batch["sample_id"])
    t_load = time.perf_counter() - t0
    del loader  # workers exit and are reaped, so their CPU time shows up in RUSAGE_CHILDREN
    ru1_self, ru1_child = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((ru0_self, ru1_self), (ru0_child, ru1_child))
              for f in ("ru_utime", "ru_stime"))
    cores = min(os.cpu_count() or 1, max(args.workers, 1))
    img = split.samples[0]
    print(f"split {split.name}: {len(split)} sentences, images {img.width}x{img.height} JPEG; "
          f"protocol {ds.protocol.name} (input {ds.input_size}x{ds.input_size}, canvas {ds.canvas})")
    print(f"dataset build (tokenize all {len(split)} sentences): {t_init:.2f} s")
    print(f"DataLoader, {args.workers} workers, batch {args.batch}: {seen} samples in {t_load:.2f} s "
          f"-> {seen / t_load:.1f} samples/s (incl. worker start-up)")
    per_tok = t_init / len(split)
    print(f"end to end incl. tokenization share: {seen / (t_load + per_tok * seen):.1f} samples/s")
    print(f"CPU time of the loader (workers + main): {1000 * cpu / seen:.2f} ms/sample -> {seen * cores / cpu:.1f} "
          f"samples/s on {cores} dedicated cores (wall figure above is lower when other jobs share the CPU; "
          f"load average now {os.getloadavg()[0]:.1f})")
    bd = breakdown(split, min(200, n), ds.input_size)
    total = sum(bd.values())
    print("single-process breakdown (ms/sample): " + ", ".join(f"{k} {v:.2f}" for k, v in bd.items())
          + f"; total {total:.2f} -> {1000 / total:.0f} samples/s per core")
    print(f"torch {torch.__version__}, numpy {np.__version__}, cpus {os.cpu_count()}")
    if args.write_results:
        from results_md import markdown_table, write_results

        rows = [("dataset build (tokenize every sentence of the split, batched)", f"{t_init:.2f} s"),
                (f"DataLoader, {args.workers} workers, batch {args.batch}, wall (incl. worker start-up)",
                 f"{seen / t_load:.1f} samples/s"),
                ("same, incl. the per-sample share of tokenization", f"{seen / (t_load + per_tok * seen):.1f} samples/s"),
                ("CPU time of the loader (workers + main process)", f"{1000 * cpu / seen:.2f} ms/sample"),
                (f"CPU-time throughput on {cores} dedicated core(s)", f"{seen * cores / cpu:.1f} samples/s")]
        rows += [(f"single process: {k}", f"{v:.2f} ms/sample") for k, v in bd.items()]
        rows.append(("single process: total", f"{total:.2f} ms/sample = {1000 / total:.0f} samples/s per core"))
        write_results("data_throughput", "Data pipeline throughput (decode, resize, normalize, GT, tokenize)",
                      [markdown_table(("stage", "measured"), rows, "ll")],
                      [f"{seen} samples of {split.name} ({len(split)} sentences, {img.width}x{img.height} JPEG), "
                       f"protocol {ds.protocol.name}: input {ds.input_size}x{ds.input_size}, canvas {ds.canvas}; "
                       f"torch intra-op threads set to 1. The wall figures share the CPU with whatever else runs "
                       f"(see the load average); the CPU-time figure does not. The single-process breakdown "
                       f"covers the first {min(200, n)} samples."])


if __name__ == "__main__":
    main()
