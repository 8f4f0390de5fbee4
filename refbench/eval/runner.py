"""``refbench eval``: batched, resumable, distributed evaluation with full provenance.

One call = one (model, split, protocol), in four steps:

1. **check** the output folder and every option before any work;
2. **prepare**: open the split, build the model, load its weights, resolve the protocol, choose the
   samples and the batch size, and write down the run's :class:`~refbench.core.results.RunIdentity`;
3. **score**: samples go through the one prediction loop (:mod:`refbench.eval.predict`) in fixed
   batches (the same partition on every run with the same identity); each finished batch's
   per-sample records are appended to ``OUT/records.jsonl`` (with ``--save-masks`` after the
   batch's predicted masks are written to ``OUT/masks/<sample_id>.png``,
   :mod:`refbench.eval.masks_out`); ``--resume`` skips finished batches and refuses a run whose
   identity (or mask setting) differs; under ``torchrun`` the samples are sharded without
   padding and the records gathered;
4. **finish**: one results document (schema ``refbench.results`` v2) with CIs.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from refbench.core.errors import RefbenchError
from refbench.core.models import ModelInfo, RISModel, get_model_info
from refbench.core.outdir import check_output
from refbench.core.processes import dataloader_worker_init
from refbench.core.progress import SILENT, Reporter
from refbench.core.protocols import Protocol, get_protocol
from refbench.core.provenance import sha256_file
from refbench.core.results import ResultsDoc, RunIdentity, new_results
from refbench.eval.device import auto_batch_size, autocast, device_description, precision_warning, resolve_device
from refbench.eval import masks_out
from refbench.eval.distributed import DistContext, init_from_env, shard
from refbench.eval.predict import gt_on_device, predict_batches
from refbench.eval.store import RunStore
from refbench.metrics.accumulator import RISMetrics
from refbench.metrics.distributed import all_gather_metrics
from refbench.metrics.stats import bootstrap_ci
from refbench.metrics.text import results_table

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class EvalConfig:
    """Everything ``refbench eval`` takes (see the CLI help for each option).

    ``data_root_explicit``: the data root was given by the user for this command (``--data-root``),
    so a synthetic split it lacks is an error rather than the cached default benchmark.
    """

    model: str
    split: str
    out: Path
    variant: str | None = None
    checkpoint: str | None = None
    data_root: str | None = None
    data_root_explicit: bool = True
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
    restart_on_mismatch: bool = False   # --resume of a run with another identity: start over (reproduce) or refuse
    save_masks: bool = False            # write every predicted mask to OUT/masks/<sample_id>.png
    extra_notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Range-check the numbers (the library API gets the same one-line errors as the CLI)."""
        if self.precision not in PRECISIONS:
            raise RefbenchError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        for name, low in (("batch_size", 1), ("limit", 1), ("workers", 0), ("bootstrap", 0), ("seed", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise RefbenchError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise RefbenchError(f"--checkpoint {self.checkpoint}: no such file")


@dataclass
class PreparedRun:
    """Everything step 2 decides; step 3 only executes it."""

    info: ModelInfo
    model: RISModel
    split: object
    protocol: Protocol
    checkpoint: str | None
    indices: list[int]
    batch_size: int
    identity: RunIdentity
    notes: list[str]
    skip_missing_images: bool


# ---- step 2: prepare ----------------------------------------------------------------------------------
def _load_weights(model: RISModel, cfg: EvalConfig, info: ModelInfo) -> tuple[str | None, str | None, list[str]]:
    """Load the checkpoint (explicit, or the model's shipped default); returns path, sha256, notes."""
    path = cfg.checkpoint
    notes: list[str] = []
    if path is None and not cfg.random_init:
        path = info.shipped_checkpoint(model.variant)
        if path is not None:
            notes.append(f"checkpoint: refbench's shipped {cfg.model}/{model.variant} weights ({path.name})")
    if path is None:
        if cfg.random_init:
            return None, None, ["RANDOM WEIGHTS: no checkpoint loaded (--random-init); numbers are meaningless"]
        official = [c.file for c in info.checkpoints if c.variant == model.variant and c.kind == "official"]
        raise RefbenchError(f"model {cfg.model!r} variant {model.variant!r} needs --checkpoint (official files: "
                            f"{', '.join(official) or 'none released; train one with refbench train'})")
    notes += list(model.load_checkpoint(str(path)) or [])
    return str(path), sha256_file(path), notes


def _choose_batch_size(model: RISModel, cfg: EvalConfig, dev: torch.device) -> int:
    if cfg.batch_size is not None:
        return cfg.batch_size
    s = model.input_size
    ids = torch.zeros(1, model.token_length, dtype=torch.long, device=dev)

    def try_batch(b: int) -> None:
        with torch.no_grad(), autocast(dev, cfg.precision):
            model(torch.zeros(b, 3, s, s, device=dev), ids.expand(b, -1), torch.ones_like(ids).expand(b, -1))

    return auto_batch_size(dev, try_batch)


def prepare(cfg: EvalConfig, dev: torch.device, world: int, reporter: Reporter = SILENT) -> PreparedRun:
    """Open the split, build and load the model, choose samples and batch size, fix the identity."""
    from refbench.eval.splits import open_eval_split

    info = get_model_info(cfg.model)
    variant = info.check_variant(cfg.variant)
    split = open_eval_split(cfg.split, cfg.data_root, cfg.data_root_explicit, reporter)
    model = info.build(variant)
    protocol = get_protocol(cfg.protocol or info.protocol_for(model.variant, split.definition.format))
    ckpt_path, ckpt_sha, notes = _load_weights(model, cfg, info)
    notes = list(cfg.extra_notes) + notes
    slow = precision_warning(dev, cfg.precision)
    if slow:
        notes.append(slow)
        reporter.message(f"note: {slow}")
    protocol = protocol.resolve(model.binarize_rule)
    model.eval().to(dev)

    samples = split.samples
    indices = list(range(len(samples)))
    if cfg.limit is not None:
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
    if not indices:
        raise RefbenchError(f"{split.name}: no sample left to evaluate")
    from refbench.data.dataset import check_image_headers

    check_image_headers(split, [samples[i] for i in indices])  # sizes from the headers, before any work
    batch_size = _choose_batch_size(model, cfg, dev)
    identity = RunIdentity(
        model=cfg.model, variant=model.variant, checkpoint_sha256=ckpt_sha, dataset=split.dataset, split=split.split,
        subset=split.subset, data_root=str(Path(split.data_root).resolve()) if split.data_root else None,
        annotation_sha256={k: sha256_file(p) for k, p in split.annotation_files.items()},
        protocol_hash=protocol.hash(), limit=cfg.limit, skipped_samples=len(missing), n_samples=len(indices),
        split_samples=len(samples), precision=cfg.precision, batch_size=batch_size, world_size=world,
        input_size=model.input_size)
    return PreparedRun(info, model, split, protocol, ckpt_path, indices, batch_size, identity, notes, bool(missing))


# ---- step 3: score --------------------------------------------------------------------------------------
def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[k:k + size] for k in range(0, len(indices), size)]


def score(run: PreparedRun, cfg: EvalConfig, ctx: DistContext, dev: torch.device, store: RunStore,
          done_batches: set[int], acc: RISMetrics, reporter: Reporter = SILENT,
          save_masks: bool = False) -> tuple[int, float]:
    """Evaluate the batches not done yet; returns (samples scored now, loop seconds).

    With ``save_masks`` each batch's predicted masks are on disk (``OUT/masks``) before its records
    are appended, so a finished batch always has its masks.
    """
    from refbench.core.tokenize import get_tokenizer
    from refbench.data import RISDataset, collate

    my_batches = _batches(shard(run.indices, ctx.rank, ctx.world), run.batch_size)
    todo = [k for k in range(len(my_batches)) if k not in done_batches and -1 not in done_batches]
    tokenizer = get_tokenizer(run.model.text_encoder_kind, run.model.token_length)
    dataset = RISDataset(run.split, run.protocol, tokenizer=tokenizer, input_size=run.model.input_size,
                         skip_missing_images=run.skip_missing_images)
    workers = cfg.workers if cfg.workers is not None else min(4, max(1, (torch.get_num_threads() or 2)))
    loader = DataLoader(dataset, batch_sampler=[my_batches[k] for k in todo], collate_fn=collate,
                        num_workers=workers, pin_memory=dev.type == "cuda", persistent_workers=False,
                        worker_init_fn=dataloader_worker_init if workers else None)
    n_todo = sum(len(my_batches[k]) for k in todo)
    t0, n_now = time.perf_counter(), 0
    label = f"eval {cfg.model} on {run.split.name}"
    writer = masks_out.MaskWriter(cfg.out) if save_masks else None
    with (reporter.progress(n_todo, label) if ctx.is_main else SILENT.progress(n_todo, label)) as advance:
        try:
            for k, (batch, pred) in zip(todo, predict_batches(run.model, loader, run.protocol, dev, cfg.precision)):
                part = RISMetrics(run.protocol)
                part.update(pred, gt_on_device(batch, dev), batch["sample_id"], batch["type"])
                if writer is not None:
                    writer.write_batch(batch["sample_id"], pred)
                store.append_batch(k, part.records)
                acc.add_records(part.records)
                n_now += len(part.records)
                advance(len(part.records), _progress_text(acc, n_now, t0))
        finally:
            store.close()
            if writer is not None:
                writer.close()
    return n_now, time.perf_counter() - t0


def _progress_text(acc: RISMetrics, n_now: int, t0: float) -> str:
    dt = time.perf_counter() - t0
    r = acc.running()
    rate = f"{n_now / dt:.1f} samples/s" if dt > 0 and n_now else ""
    return f"{rate}  oIoU {r['oIoU']:.2f}  mIoU {r['mIoU']:.2f}"


# ---- step 4: finish -------------------------------------------------------------------------------------
def finish(run: PreparedRun, cfg: EvalConfig, acc: RISMetrics, dev: torch.device, n_now: int, loop_s: float,
           wall_s: float) -> ResultsDoc:
    rec = acc.records
    report = acc.report()
    report.notes.extend(run.notes)
    if run.model.input_size != (run.protocol.canvas or run.model.input_size):
        report.notes.append(f"model input {run.model.input_size}x{run.model.input_size}; logits resized bilinearly "
                            f"(align_corners=True) to the {run.protocol.canvas}x{run.protocol.canvas} canvas")
    ci = bootstrap_ci(rec, run.protocol, n_resamples=cfg.bootstrap, seed=cfg.seed) if cfg.bootstrap > 0 else None
    provenance = {"checkpoint": run.checkpoint, "split_name": run.split.name,
                  "annotation_files": {k: str(p) for k, p in run.split.annotation_files.items()},
                  "expected_sentences": run.split.expected_sentences, "device": device_description(dev),
                  "wall_time_s": round(wall_s, 3),
                  "samples_per_s": round(n_now / loop_s, 3) if loop_s > 0 and n_now else None,
                  "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}}
    method = f"percentile bootstrap over sentences, {cfg.bootstrap} resamples, seed {cfg.seed}" if ci else None
    return new_results(report, "eval", run.identity, ci, method, provenance)


def _finished_with(store: RunStore, identity: RunIdentity) -> ResultsDoc | None:
    """The run's results when it finished with exactly ``identity`` (and its records are there), else None."""
    from refbench.core.results import first_difference, read_results

    if not store.results_json.is_file() or not store.records_jsonl.is_file():
        return None
    doc = read_results(store.results_json)
    return doc if first_difference(doc.identity, identity) is None else None


def evaluate(cfg: EvalConfig, reporter: Reporter = SILENT) -> ResultsDoc | None:
    """Run one evaluation; returns the results document on the main process (None elsewhere)."""
    t_start = time.perf_counter()
    cfg.check()
    check_output(cfg.out, "--out", inputs=[cfg.data_root, cfg.checkpoint])
    store_probe = RunStore(cfg.out)
    store_probe.check(cfg.resume)
    save_masks = cfg.save_masks
    masks_why = masks_out.resume_conflict(cfg.out, save_masks) if cfg.resume else None
    if masks_why is not None and cfg.restart_on_mismatch and not save_masks:
        save_masks, masks_why = True, None  # reproduce: a run that saves masks keeps saving them
    if masks_why is not None and not cfg.restart_on_mismatch:
        raise RefbenchError(f"cannot --resume {cfg.out}: {masks_why}")
    dev = resolve_device(cfg.device)
    ctx = init_from_env(dev.type == "cuda")
    try:
        if ctx.world > 1 and dev.type == "cuda":
            dev = torch.device("cuda", ctx.local_rank)
        run = prepare(cfg, dev, ctx.world, reporter)
        store = RunStore(cfg.out, ctx.rank, ctx.world)
        resume = cfg.resume
        if resume and cfg.restart_on_mismatch and ctx.world == 1:
            finished = _finished_with(store, run.identity)
            if finished is not None and masks_why is None:
                return finished  # reproduce: a cell finished with exactly this identity is used as it is
        if resume and cfg.restart_on_mismatch:
            why = store.mismatch(run.identity) or ("no saved masks (it was started without --save-masks)"
                                                   if masks_why else None)
            if why is not None:
                ctx.barrier()
                if ctx.is_main:
                    store.clear()
                    masks_out.clear(cfg.out)
                    reporter.message(f"{cfg.out}: the earlier run had {why}; starting over")
                    run.notes.append(f"restarted: the earlier run in this folder had {why}")
                resume, save_masks = False, cfg.save_masks
                ctx.barrier()
        if save_masks and ctx.is_main:
            masks_out.remove_temporaries(cfg.out)  # before any process writes (they all wait in store.start)
        done, done_batches, resume_notes = store.start(run.identity, resume, ctx.barrier)
        run.notes += resume_notes
        if save_masks:
            if ctx.is_main:
                masks_out.mark_saving(cfg.out, run.protocol.canvas)
            ctx.barrier()
        acc = RISMetrics(run.protocol)
        acc.add_records(done)
        n_now, loop_s = score(run, cfg, ctx, dev, store, done_batches, acc, reporter, save_masks)
        merged = all_gather_metrics(acc, dev if dev.type == "cuda" else "cpu")
        if len(merged.records) != len(run.indices):
            raise RefbenchError(f"scored {len(merged.records)} samples but the run has {len(run.indices)}; "
                                "the run is incomplete (re-run with --resume)")
        if not ctx.is_main:
            return None
        if save_masks:
            masks_out.check_complete(cfg.out, merged.records.ids)
        doc = finish(run, cfg, merged, dev, n_now, loop_s, time.perf_counter() - t_start)
        if save_masks:
            doc.notes.append(f"predicted masks saved: {masks_out.masks_dir(cfg.out)}/<sample_id>.png (PNG 0/255 on the "
                             + (f"{run.protocol.canvas}x{run.protocol.canvas} canvas)" if run.protocol.canvas
                                else "original image size)"))
        store.finalize(merged.records, doc)
        reporter.message(results_table(doc, title=f"{cfg.model} ({run.model.variant}) on {run.split.name}"))
        reporter.message(f"wrote {store.results_json} and {store.records_jsonl}"
                         + (f" and {len(merged.records)} masks in {masks_out.masks_dir(cfg.out)}" if save_masks else ""))
        return doc
    finally:
        ctx.close()


def default_out(model: str, variant: str | None, split: str) -> Path:
    """``runs/<model>-<variant>/<split>`` with ``/`` and ``:`` made file-name safe."""
    safe = split.replace("/", "_").replace(":", "_")
    return Path("runs") / f"{model}-{variant or 'default'}" / safe


__all__ = ["EvalConfig", "PreparedRun", "evaluate", "prepare", "score", "finish", "default_out"]
