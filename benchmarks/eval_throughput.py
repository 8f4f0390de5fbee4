#!/usr/bin/env python
"""End-to-end evaluation throughput: refbench's batched runner vs the official batch-1 loop.

For each model, the same samples of a split are evaluated twice in one process:

* **refbench**: ``refbench eval``'s runner (DataLoader with workers, batched forward under the
  chosen precision, batched metric accumulation, per-batch records);
* **official-style loop**: batch 1, fp32, one sample at a time through the same model and
  dataset, metrics accumulated per sample with numpy (the official test scripts' way).

Both produce per-sample IoUs, which are compared: the number of sentences whose IoU differs is
printed (in fp32 a handful, where batched kernels round differently and flip boundary pixels;
more under bf16).  An untimed warm-up run per model (imports, tokenizer, file cache) comes first;
the refbench time is the wall time of the whole run (model build, checkpoint, DataLoader start-up
included), the loop's only the loop.  Prints samples/s and the speed-up; on CUDA also the peak GPU
memory.

    python benchmarks/eval_throughput.py                       # tiny variants on CPU, synth/val
    python benchmarks/eval_throughput.py --device cuda --variant paper --precision bf16 \\
        --models lavt magnet dmmi --split synth/val --limit 512
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def official_loop(model, dataset, indices, device, protocol) -> tuple[dict[str, float], float]:
    """Batch-1 fp32 loop over ``indices``; returns per-sample IoU and seconds."""
    from refbench.eval.postprocess import masks_on_canvas

    ious = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in indices:
            item = dataset[i]
            logits = model(item["image"][None].to(device), item["input_ids"][None].to(device),
                           item["attention_mask"][None].to(device))
            pred = masks_on_canvas(logits, protocol)[0].cpu().numpy()
            gt = item["mask"].numpy().astype(bool)
            inter, union = np.logical_and(pred, gt).sum(), np.logical_or(pred, gt).sum()
            ious[item["sample_id"]] = 0.0 if union == 0 else inter / union
    if device.type == "cuda":
        torch.cuda.synchronize()
    return ious, time.perf_counter() - t0


def main() -> None:
    from refbench.data import RISDataset, open_split
    from refbench.core.tokenize import get_tokenizer
    from refbench.eval import EvalConfig, evaluate
    from refbench.eval.device import resolve_device
    from refbench.core.models import get_model_info, shipped_checkpoint
    from refbench.core.protocols import get_protocol
    from refbench.core.results import read_records_jsonl

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=["lavt", "magnet", "dmmi", "meres", "jmceln"])
    ap.add_argument("--variant", default="tiny")
    ap.add_argument("--split", default="synth/val")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--limit", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch-size", type=int, default=None, help="default: runner's choice (largest that fits on GPU)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    print(f"eval throughput: {args.split}, first {args.limit} samples, device {dev}, precision {args.precision}, "
          f"torch threads {torch.get_num_threads()}")
    split = open_split(args.split, args.data_root)
    for name in args.models:
        info = get_model_info(name)
        ckpt = shipped_checkpoint(name, args.variant)
        def run(out: Path, limit: int) -> dict:
            return evaluate(EvalConfig(model=name, variant=args.variant, split=args.split, out=out,
                                       checkpoint=str(ckpt) if ckpt else None, random_init=ckpt is None,
                                       data_root=args.data_root, device=args.device, precision=args.precision,
                                       batch_size=args.batch_size, limit=limit, workers=args.workers,
                                       bootstrap=0), echo=lambda s: None)

        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp) / "warm-up", 16)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            doc = run(Path(tmp) / "run", args.limit)
            t_rb = time.perf_counter() - t0
            rec, _ = read_records_jsonl(Path(tmp) / "run" / "records.jsonl")
            mem = f", peak GPU memory {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB" if dev.type == "cuda" else ""
        batched = dict(zip(rec.ids, rec.iou()))
        model = info.build(args.variant)
        if ckpt:
            model.load_checkpoint(str(ckpt))
        model.eval().to(dev)
        protocol = get_protocol(doc["protocol"]["name"]).resolve(model.binarize_rule)
        ds = RISDataset(split, protocol, tokenizer=get_tokenizer(model.text_encoder_kind, model.token_length),
                        input_size=model.input_size)
        loop_ious, t_loop = official_loop(model, ds, list(range(min(args.limit, len(ds)))), dev, protocol)
        differ = sum(abs(batched[k] - v) > 1e-12 for k, v in loop_ious.items())
        n = len(loop_ious)
        miou_rb = 100 * sum(batched[k] for k in loop_ious) / n
        miou_loop = 100 * sum(loop_ious.values()) / n
        print(f"{name:7s} {args.variant}: refbench {n / t_rb:8.1f} samples/s (batch {doc['batch_size']}, "
              f"{args.precision}, wall incl. start-up) | batch-1 fp32 loop {n / t_loop:8.1f} samples/s | "
              f"speed-up {t_loop / t_rb:5.2f}x | sentences with different IoU: {differ}/{n}, mIoU {miou_rb:.2f} vs "
              f"{miou_loop:.2f}{mem}")


if __name__ == "__main__":
    main()
