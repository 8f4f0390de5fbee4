"""``refbench eval``: batched, resumable, distributed evaluation with full provenance.

One call = one (model, split, protocol).  Samples are processed in fixed batches (the same
partition on every run with the same settings), each finished batch's per-sample records are
appended to ``OUT/records.jsonl``; ``--resume`` skips finished batches; under ``torchrun`` the
samples are sharded without padding, the records gathered, and one results file written.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import click
import torch
from torch.utils.data import DataLoader

from refbench.core.errors import RefbenchError
from refbench.eval.device import auto_batch_size, autocast, device_description, resolve_device
from refbench.eval.distributed import DistContext, init_from_env, shard
from refbench.eval.postprocess import masks_on_canvas
from refbench.eval.store import RunStore
from refbench.metrics.accumulator import RISMetrics
from refbench.metrics.distributed import all_gather_metrics
from refbench.metrics.stats import bootstrap_ci
from refbench.core.models import RISModel, get_model_info, shipped_checkpoint
from refbench.core.protocols import get_protocol
from refbench.core.provenance import sha256_file
from refbench.report import metrics_table
from refbench.core.results import results_document


@dataclass
class EvalConfig:
    """Everything ``refbench eval`` takes (see the CLI help for each option)."""

    model: str
    split: str
    out: Path
    variant: str | None = None
    checkpoint: str | None = None
    data_root: str | None = None
    device: str | None = None
    batch_size: int | None = None
    precision: str = "fp32"
    protocol: str | None = None
    limit: int | None = None
    workers: int | None = None
    resume: bool = False
    bootstrap: int = 1000
    seed: int = 0
    random_init: bool = False
    skip_missing_images: bool = False
    extra_notes: list[str] = field(default_factory=list)


def _load_weights(model: RISModel, cfg: EvalConfig, info) -> tuple[str | None, str | None, list[str]]:
    """Load the checkpoint (explicit, or the model's shipped default); returns path, sha256, notes."""
    path = cfg.checkpoint
    notes: list[str] = []
    if path is None and not cfg.random_init:
        path = shipped_checkpoint(cfg.model, model.variant)
        if path is not None:
            notes.append(f"checkpoint: refbench's shipped {cfg.model}/{model.variant} weights ({path.name})")
    if path is None:
        if cfg.random_init:
            return None, None, ["RANDOM WEIGHTS: no checkpoint loaded (--random-init); numbers are meaningless"]
        ckpts = ", ".join(info.checkpoints) or "a refbench checkpoint"
        raise RefbenchError(f"model {cfg.model!r} variant {model.variant!r} needs --checkpoint (official files: {ckpts})")
    if not Path(path).is_file():
        raise RefbenchError(f"--checkpoint {path}: no such file")
    notes += list(model.load_checkpoint(str(path)) or [])
    return str(path), sha256_file(path), notes


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[k:k + size] for k in range(0, len(indices), size)]


def evaluate(cfg: EvalConfig, echo: Callable[[str], None] = click.echo) -> dict | None:
    """Run one evaluation; returns the results document on the main process (None elsewhere)."""
    from refbench.data import RISDataset, collate, open_split
    from refbench.core.tokenize import get_tokenizer

    t_start = time.perf_counter()
    dev = resolve_device(cfg.device)
    ctx: DistContext = init_from_env(dev.type == "cuda")
    try:
        if ctx.world > 1 and dev.type == "cuda":
            dev = torch.device("cuda", ctx.local_rank)
        info = get_model_info(cfg.model)
        split = open_split(cfg.split, cfg.data_root)
        model = info.build(cfg.variant)
        protocol = get_protocol(cfg.protocol or info.protocol_for(model.variant, split.definition.format))
        ckpt_path, ckpt_sha, notes = _load_weights(model, cfg, info)
        notes = cfg.extra_notes + notes
        protocol = protocol.resolve(model.binarize_rule)
        model.eval().to(dev)

        samples = split.samples
        indices = list(range(len(samples)))
        if cfg.limit is not None:
            if cfg.limit <= 0:
                raise RefbenchError("--limit must be a positive number of samples")
            indices = indices[: cfg.limit]
            notes.append(f"--limit {cfg.limit}: only the first {len(indices)} of {len(samples)} samples")
        missing = [i for i in indices if not split.image_path(samples[i]).is_file()]
        if missing:
            first = split.image_path(samples[missing[0]])
            if not cfg.skip_missing_images:
                raise RefbenchError(f"{len(missing)} image file(s) missing, e.g. {first}; fix the image folder "
                                    "or pass --skip-missing-images to evaluate the rest")
            gone = set(missing)
            indices = [i for i in indices if i not in gone]
            notes.append(f"skipped {len(missing)} sample(s) whose image is missing (e.g. {first})")
        expected_total = len(indices)

        if cfg.batch_size is None:
            s = model.input_size
            ids = torch.zeros(1, model.token_length, dtype=torch.long, device=dev)

            def try_batch(b: int) -> None:
                with torch.no_grad(), autocast(dev, cfg.precision):
                    model(torch.zeros(b, 3, s, s, device=dev), ids.expand(b, -1), torch.ones_like(ids).expand(b, -1))

            batch_size = auto_batch_size(dev, try_batch)
        else:
            batch_size = cfg.batch_size
        if batch_size <= 0:
            raise RefbenchError("--batch-size must be positive")

        settings = {"model": cfg.model, "variant": model.variant, "split_name": split.name,
                    "checkpoint_sha256": ckpt_sha, "protocol_hash": protocol.hash(), "batch_size": batch_size,
                    "precision": cfg.precision, "limit": cfg.limit, "world_size": ctx.world,
                    "input_size": model.input_size, "sample_count": expected_total}
        store = RunStore(cfg.out, ctx.rank, ctx.world)
        done, done_batches, resume_notes = store.start(settings, cfg.resume, ctx.barrier)
        notes += resume_notes

        acc = RISMetrics(protocol)
        acc.add_records(done)
        my_batches = _batches(shard(indices, ctx.rank, ctx.world), batch_size)
        todo = [k for k in range(len(my_batches)) if k not in done_batches and -1 not in done_batches]

        tokenizer = get_tokenizer(model.text_encoder_kind, model.token_length)
        # missing images were reported and removed from `indices` above
        dataset = RISDataset(split, protocol, tokenizer=tokenizer, input_size=model.input_size,
                             skip_missing_images=bool(missing))
        workers = cfg.workers if cfg.workers is not None else min(4, max(1, (torch.get_num_threads() or 2)))
        loader = DataLoader(dataset, batch_sampler=[my_batches[k] for k in todo], collate_fn=collate,
                            num_workers=workers, pin_memory=dev.type == "cuda",
                            persistent_workers=False)
        n_todo = sum(len(my_batches[k]) for k in todo)
        t_loop = time.perf_counter()
        n_done_now = 0
        show = ctx.is_main and n_todo > 0
        bar = click.progressbar(length=n_todo, label=f"eval {cfg.model} on {split.name}", file=sys.stderr,
                                show_pos=True, item_show_func=lambda _: _progress_text(acc, n_done_now, t_loop)) \
            if show else None
        if bar is not None:
            bar.__enter__()
        try:
            with torch.no_grad():
                for k, batch in zip(todo, loader):
                    images = batch["image"].to(dev, non_blocking=True)
                    with autocast(dev, cfg.precision):
                        logits = model(images, batch["input_ids"].to(dev), batch["attention_mask"].to(dev))
                    pred = masks_on_canvas(logits, protocol, batch.get("orig_size"), batch.get("letterbox"))
                    gt = batch["mask"]
                    gt = gt.to(dev) if isinstance(gt, torch.Tensor) else [g.to(dev) for g in gt]
                    part = RISMetrics(protocol)
                    part.update(pred, gt, batch["sample_id"], batch["type"])
                    store.append_batch(k, part.records)
                    acc.add_records(part.records)
                    n_done_now += len(part.records)
                    if bar is not None:
                        bar.update(len(part.records), None)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
            store.close()
        loop_time = time.perf_counter() - t_loop

        merged = all_gather_metrics(acc, dev if dev.type == "cuda" else "cpu")
        rec = merged.records
        if len(rec) != expected_total:
            raise RefbenchError(f"scored {len(rec)} samples but the split has {expected_total}; "
                                "the run is incomplete (re-run with --resume)")
        if not ctx.is_main:
            return None
        report = merged.report()
        report.notes.extend(notes)
        if model.input_size != (protocol.canvas or model.input_size):
            report.notes.append(f"model input {model.input_size}x{model.input_size}; logits resized bilinearly "
                                f"(align_corners=True) to the {protocol.canvas}x{protocol.canvas} canvas")
        ci = bootstrap_ci(rec, protocol, n_resamples=cfg.bootstrap, seed=cfg.seed) if cfg.bootstrap > 0 else None
        wall = time.perf_counter() - t_start
        doc = results_document(
            report, "eval", ci,
            f"percentile bootstrap over sentences, {cfg.bootstrap} resamples, seed {cfg.seed}" if ci else None,
            model=cfg.model, variant=model.variant, checkpoint=ckpt_path, checkpoint_sha256=ckpt_sha,
            dataset=split.dataset, split=split.split, subset=split.subset, split_name=split.name,
            data_root=str(split.data_root) if split.data_root else None,
            annotation_files={k: str(p) for k, p in split.annotation_files.items()},
            annotation_sha256={k: sha256_file(p) for k, p in split.annotation_files.items()},
            expected_sentences=split.expected_sentences, n_samples=len(rec), limit=cfg.limit,
            device=device_description(dev), precision=cfg.precision, batch_size=batch_size,
            world_size=ctx.world, model_input_size=model.input_size,
            wall_time_s=round(wall, 3), samples_per_s=round(n_done_now / loop_time, 3) if loop_time > 0 and n_done_now else None,
            config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        )
        store.finalize(rec, doc)
        echo(metrics_table(report, ci, title=f"{cfg.model} ({model.variant}) on {split.name}"))
        echo(f"wrote {store.results_json} and {store.records_jsonl}")
        return doc
    finally:
        ctx.close()


def _progress_text(acc: RISMetrics, n_now: int, t0: float) -> str:
    dt = time.perf_counter() - t0
    r = acc.running()
    rate = f"{n_now / dt:.1f} samples/s" if dt > 0 and n_now else ""
    return f"{rate}  oIoU {r['oIoU']:.2f}  mIoU {r['mIoU']:.2f}"
