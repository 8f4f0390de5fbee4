#!/usr/bin/env python
"""Evaluation throughput: refbench's prediction loop vs a batch-1 "official-style" baseline loop.

For each model, the same samples of a split go through the same model object twice:

* **refbench**: the one prediction loop of refbench (:func:`refbench.eval.predict.predict_batches`,
  as ``refbench eval`` runs it): a DataLoader with ``--workers`` workers and the batches of
  ``--batch-size`` (default: the runner's choice, 8 on CPU, the largest that fits on a GPU),
  forward under ``--precision``, binarized on the protocol canvas, scored by the batched
  accumulator (:class:`refbench.metrics.RISMetrics`);
* **baseline** (:func:`baseline_batch1_loop`): what the official test scripts do: one sample
  at a time in the main process, batch 1, fp32, per-sample I/U with numpy.

Both sides are timed as a loop only (the model is built and its weights loaded once, before
either), after an untimed warm-up of ``--warmup`` samples through each (imports, kernels, file
cache); the refbench time includes its DataLoader's worker start-up.  Both produce one IoU per
sentence, which are compared: the number of sentences whose IoU differs is printed (in fp32 a
handful, where batched kernels round differently and flip boundary pixels; more under bf16).
Prints samples/s and the speed-up; on CUDA also refbench's peak GPU memory.

    python benchmarks/eval_throughput.py                       # tiny variants on CPU, synth/val
    python benchmarks/eval_throughput.py --limit 512 --write-results
    python benchmarks/eval_throughput.py --device cuda --variant paper --precision bf16 \\
        --models lavt magnet dmmi --split synth/val --limit 512

``--write-results`` writes the figures into benchmarks/RESULTS.md, section ``eval_throughput``
(``eval_throughput_<precision>_<device>`` for another precision or device).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from refbench.core.errors import RefbenchError  # noqa: E402


def baseline_batch1_loop(model, dataset, indices: list[int], device: torch.device, protocol
                         ) -> tuple[dict[str, float], float]:
    """The baseline being compared against: batch 1, fp32, numpy I/U, one sample at a time.

    Deliberately not refbench's loop: forward of one sample, binarize on the canvas, then
    ``I = sum(pred & gt)``, ``U = sum(pred | gt)``, ``IoU = 0 if U == 0`` per sample, as the
    official LAVT/DMMI ``test.py`` scripts do.  Returns per-sentence IoU and the loop's seconds.
    """
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


def refbench_loop(model, dataset, indices: list[int], batch_size: int, workers: int, device: torch.device,
                  protocol, precision: str) -> tuple[dict[str, float], float]:
    """refbench's side: DataLoader batches through :func:`predict_batches`, scored by ``RISMetrics``.

    Returns per-sentence IoU and the loop's seconds (DataLoader worker start-up included).
    """
    from torch.utils.data import DataLoader

    from refbench.data import collate
    from refbench.eval.predict import gt_on_device, predict_batches
    from refbench.metrics import RISMetrics

    batches = [indices[k:k + batch_size] for k in range(0, len(indices), batch_size)]
    acc = RISMetrics(protocol)
    t0 = time.perf_counter()
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=workers,
                        pin_memory=device.type == "cuda")
    for batch, pred in predict_batches(model, loader, protocol, device, precision):
        acc.update(pred, gt_on_device(batch, device), batch["sample_id"], batch["type"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    rec = acc.records
    return dict(zip(rec.ids, (float(x) for x in rec.iou()))), dt


def measure(name: str, args: argparse.Namespace, split, dev: torch.device) -> dict:
    """Build ``name``'s model once, warm both loops up, time both; returns the row's figures."""
    from refbench.core.models import get_model_info
    from refbench.core.protocols import get_protocol
    from refbench.core.tokenize import get_tokenizer
    from refbench.data import RISDataset
    from refbench.eval.device import auto_batch_size, autocast

    info = get_model_info(name)
    variant = info.check_variant(args.variant)
    model = info.build(variant)
    ckpt = info.shipped_checkpoint(variant)
    if ckpt is not None:
        model.load_checkpoint(str(ckpt))
    model.eval().to(dev)
    protocol = get_protocol(info.protocol_for(variant, split.definition.format)).resolve(model.binarize_rule)
    ds = RISDataset(split, protocol, tokenizer=get_tokenizer(model.text_encoder_kind, model.token_length),
                    input_size=model.input_size)
    batch_size = args.batch_size
    if batch_size is None:  # the runner's rule (refbench.eval.runner._choose_batch_size)
        s, ids = model.input_size, torch.zeros(1, model.token_length, dtype=torch.long, device=dev)

        def try_batch(b: int) -> None:
            with torch.no_grad(), autocast(dev, args.precision):
                model(torch.zeros(b, 3, s, s, device=dev), ids.expand(b, -1), torch.ones_like(ids).expand(b, -1))

        batch_size = auto_batch_size(dev, try_batch)
    indices = list(range(min(args.limit, len(ds))))
    warm = indices[: args.warmup]
    refbench_loop(model, ds, warm, batch_size, args.workers, dev, protocol, args.precision)
    baseline_batch1_loop(model, ds, warm, dev, protocol)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    batched, t_rb = refbench_loop(model, ds, indices, batch_size, args.workers, dev, protocol, args.precision)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    loop, t_loop = baseline_batch1_loop(model, ds, indices, dev, protocol)
    n = len(loop)
    if set(batched) != set(loop):
        raise RefbenchError(f"{name}: the two loops scored different sentences")
    return {"model": name, "variant": model.variant, "weights": "shipped" if ckpt else "random",
            "protocol": protocol.name, "batch": batch_size, "n": n, "refbench_s": t_rb, "baseline_s": t_loop,
            "differ": sum(abs(batched[k] - v) > 1e-12 for k, v in loop.items()),
            "miou_refbench": 100 * sum(batched.values()) / n, "miou_baseline": 100 * sum(loop.values()) / n,
            "peak_gib": peak}


def main() -> int:
    from refbench.eval.device import resolve_device
    from refbench.eval.splits import open_eval_split

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="*", default=["lavt", "magnet", "dmmi", "meres", "jmceln"])
    ap.add_argument("--variant", default="tiny")
    ap.add_argument("--split", default="synth/val")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--limit", type=int, default=256, help="samples per model (the first N of the split)")
    ap.add_argument("--warmup", type=int, default=16, help="untimed samples through each loop first")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                    help="refbench's side (the baseline is always fp32)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="refbench's batch (default: the runner's choice: 8 on CPU, the largest that fits on GPU)")
    ap.add_argument("--workers", type=int, default=2, help="refbench's DataLoader workers")
    ap.add_argument("--write-results", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = ap.parse_args()
    try:
        for opt in ("limit", "batch_size"):
            v = getattr(args, opt)
            if v is not None and v < 1:
                raise RefbenchError(f"--{opt.replace('_', '-')} must be >= 1, got {v}")
        dev = resolve_device(args.device)
        split = open_eval_split(args.split, args.data_root, explicit=args.data_root is not None)
        print(f"eval throughput: {split.name}, first {args.limit} samples, device {dev}, refbench precision "
              f"{args.precision}, torch threads {torch.get_num_threads()}")
        rows = []
        for name in args.models:
            r = measure(name, args, split, dev)
            mem = f", peak GPU memory {r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else ""
            print(f"{name:7s} {r['variant']}: refbench {r['n'] / r['refbench_s']:8.1f} samples/s (batch {r['batch']}, "
                  f"{args.precision}) | baseline batch-1 fp32 loop {r['n'] / r['baseline_s']:8.1f} samples/s | "
                  f"speed-up {r['baseline_s'] / r['refbench_s']:5.2f}x | sentences with different IoU: "
                  f"{r['differ']}/{r['n']}, mIoU {r['miou_refbench']:.2f} vs {r['miou_baseline']:.2f}{mem}")
            rows.append(r)
    except RefbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.write_results:
        write(rows, args, split.name, dev)
    return 0


def write(rows: list[dict], args: argparse.Namespace, split_name: str, dev: torch.device) -> None:
    from results_md import markdown_table, write_results

    headers = ["model", "weights", "protocol", "refbench (samples/s)", "batch", "baseline batch-1 fp32 (samples/s)",
               "speed-up", "sentences with different IoU", "mIoU refbench / baseline"]
    if dev.type == "cuda":
        headers.append("refbench peak GPU memory")
    table = []
    for r in rows:
        line = [f"{r['model']} ({r['variant']})", r["weights"], r["protocol"], f"{r['n'] / r['refbench_s']:.1f}",
                r["batch"], f"{r['n'] / r['baseline_s']:.1f}", f"{r['baseline_s'] / r['refbench_s']:.2f}x",
                f"{r['differ']}/{r['n']}", f"{r['miou_refbench']:.2f} / {r['miou_baseline']:.2f}"]
        if dev.type == "cuda":
            line.append(f"{r['peak_gib']:.2f} GiB")
        table.append(line)
    name = "eval_throughput" if (args.precision, dev.type) == ("fp32", "cpu") else \
        f"eval_throughput_{args.precision}_{dev.type}"
    write_results(name, f"Evaluation throughput: refbench's prediction loop vs a batch-1 loop "
                        f"({args.precision}, {dev.type})",
                  [markdown_table(headers, table, "lll" + "r" * (len(headers) - 3))],
                  [f"First {rows[0]['n'] if rows else 0} sentences of {split_name} per model. refbench: "
                   f"`predict_batches` over a DataLoader with {args.workers} worker(s), {args.precision}, batched "
                   "`RISMetrics`; baseline: one sample at a time in the main process, fp32, numpy I/U. Both time the "
                   f"loop only, after {args.warmup} untimed warm-up samples each, on the same model object. "
                   "A sentence counts as different when its IoU differs by more than 1e-12."])


if __name__ == "__main__":
    sys.exit(main())
