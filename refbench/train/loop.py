"""``refbench train``: the papers' recipes, resumable, data-parallel, with validation.

The loop is plain PyTorch:

* data order: a permutation per epoch from ``torch.Generator`` seeded by (seed, epoch); under
  ``torchrun`` each process takes every world-th index (equal shares, remainder dropped);
  micro-batches of ``batch_size / (world * accum)``; gradients accumulated to the global batch.
* AdamW with the recipe's decay / no-decay groups, polynomial decay per optimizer step.
* bf16 / fp16 autocast on GPU (fp16 with a GradScaler), fp32 on CPU by default.
* every ``save_every`` optimizer steps and at each epoch end, ``OUT/state.pt`` holds model,
  optimizer, schedule, RNG states and the position in the epoch.  ``--resume`` restores all
  of it and skips the consumed micro-batches, so a killed and resumed run ends with the same
  weights as an uninterrupted one (bitwise on CPU with the same thread count).
* validation every ``eval_every_epochs`` on the recipe's split; ``OUT/best.pt`` keeps the best
  checkpoint by the recipe's metric, ``OUT/last.pt`` the last one; ``OUT/log.jsonl`` has every
  step's loss terms and every validation; ``OUT/loss_curve.png`` plots them.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from refbench.core.errors import RefbenchError
from refbench.core.outdir import MARKER, check_output, is_refbench_output, mark_output, remove_stale_files
from refbench.core.processes import dataloader_worker_init
from refbench.core.progress import SILENT, Reporter
from refbench.eval.device import autocast, device_description, precision_warning, resolve_device
from refbench.eval.distributed import init_from_env
from refbench.metrics.accumulator import RISMetrics
from refbench.core.models import RISModel, get_model_info
from refbench.core.protocols import get_protocol
from refbench.core.results import write_json_atomic
from refbench.train.optim import build_optimizer, poly_lambda
from refbench.train.pretrained import require_pretrained
from refbench.train.recipes import TrainRecipe, get_recipe


@dataclass
class TrainConfig:
    """Everything ``refbench train`` takes; recipe fields can be overridden."""

    model: str
    out: Path
    dataset: str = "synth/train"
    val: str | None = None            # default: <dataset>'s val split
    variant: str = "paper"
    data_root: str | None = None
    data_root_explicit: bool = True
    device: str | None = None
    precision: str = "fp32"
    seed: int = 0
    resume: bool = False
    micro_batch: int | None = None    # per-process batch; default: recipe batch / world
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    input_size: int | None = None
    max_steps: int | None = None      # stop after this many optimizer steps (smoke runs, tests)
    save_every: int = 200
    val_limit: int | None = None
    workers: int = 0
    init_checkpoint: str | None = None
    from_scratch: bool = False        # a paper recipe without its pretrained parts: only when asked for
    log_every: int = 10
    find_unused_parameters: bool = False
    model_args: dict = field(default_factory=dict)  # builder keyword arguments (config fields, ablations)


class _LossModule(nn.Module):
    """Wraps a model so that DistributedDataParallel sees ``loss(batch)`` as its forward."""

    def __init__(self, model: RISModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.model.loss(batch)


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
          "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
          "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
          "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_version"], tuple(st["python"]), st["python_gauss"]))
    np.random.set_state(("MT19937", st["numpy"].numpy().astype(np.uint32), st["numpy_pos"], 0, 0.0))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _build_for_training(info, variant: str, recipe: TrainRecipe, model_args: dict) -> RISModel:
    """The model at the recipe's input size with the recipe's training-only overrides (those the
    variant's config has; e.g. ``ce_class_weights`` exists for LAVT/DMMI/JMCELN, not for MagNet) and
    the user's ``--model-arg`` settings (passed as given)."""
    fields = info.config_fields(variant)
    extra = {k: v for k, v in recipe.model_overrides if k in fields and k not in model_args}
    return info.build(variant, input_size=recipe.input_size, **model_args, **extra)


def epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    """The sample order of one epoch: a permutation seeded by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _to_device(batch: dict, dev: torch.device) -> dict:
    return {k: (v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _resolve_recipe(cfg: TrainConfig) -> TrainRecipe:
    r = get_recipe(cfg.model, cfg.variant)
    changes = {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "input_size") if getattr(cfg, k) is not None}
    return r.replace(**changes) if changes else r


def validate(model: RISModel, split, protocol, tokenizer, dev, precision: str, batch_size: int,
             limit: int | None) -> dict:
    """mIoU/oIoU/P@X of ``model`` on ``split`` (first ``limit`` samples) under ``protocol``."""
    from refbench.data import RISDataset, collate
    from refbench.eval.predict import gt_on_device, predict_batches

    idx = list(range(len(split.samples)))[:limit]
    ds = RISDataset(split, protocol, tokenizer=tokenizer, input_size=model.input_size)
    loader = DataLoader(ds, batch_sampler=[idx[k:k + batch_size] for k in range(0, len(idx), batch_size)],
                        collate_fn=collate, num_workers=0)
    acc = RISMetrics(protocol)
    for batch, pred in predict_batches(model, loader, protocol, dev, precision):
        acc.update(pred, gt_on_device(batch, dev), batch["sample_id"], batch["type"])
    return acc.compute()


def check_out(cfg: TrainConfig) -> Path:
    """Refuse, before any work, an --out that is a file, unwritable, overlaps the inputs, holds another
    training run (without --resume) or holds files refbench did not make."""
    out = Path(cfg.out)
    check_output(out, "--out", inputs=[cfg.data_root, cfg.init_checkpoint])
    state_path = out / "state.pt"
    if state_path.exists() and not cfg.resume:
        raise RefbenchError(f"{out} already holds a training run; pass --resume to continue it or choose a new --out")
    if cfg.resume and not state_path.exists():
        raise RefbenchError(f"--resume: {state_path} does not exist; start without --resume")
    if not cfg.resume and out.is_dir() and any(out.iterdir()) and not is_refbench_output(out):
        raise RefbenchError(f"--out {out} holds files refbench did not make (no {MARKER}); choose a new --out")
    remove_stale_files(out, ["state.pt", "last.pt", "best.pt", "config.json", "train.json", "log.jsonl"])
    return out


def train(cfg: TrainConfig, reporter: Reporter = SILENT) -> dict:
    """Train ``cfg.model`` with its paper recipe; returns the summary written to OUT/train.json."""
    from refbench.core.checkpoint import save_checkpoint
    from refbench.core.tokenize import get_tokenizer
    from refbench.data import RISDataset, collate
    from refbench.eval.splits import open_eval_split

    out = check_out(cfg)
    if not cfg.resume:  # a resumed run continues from its saved state, whatever it started from
        info = get_model_info(cfg.model)
        require_pretrained(info, info.check_variant(cfg.variant), cfg.model_args, cfg.from_scratch,
                           cfg.init_checkpoint)
    state_path = out / "state.pt"
    dev = resolve_device(cfg.device)
    ctx = init_from_env(dev.type == "cuda")
    if ctx.world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
    try:
        recipe = _resolve_recipe(cfg)
        info = get_model_info(cfg.model)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        model = _build_for_training(info, cfg.variant, recipe, cfg.model_args)
        notes: list[str] = []
        slow = precision_warning(dev, cfg.precision)
        if slow:
            notes.append(slow)
            reporter.message(f"note: {slow}")
        if cfg.init_checkpoint:
            notes += list(model.load_checkpoint(cfg.init_checkpoint, strict=False) or [])
        model.to(dev).train()

        base_protocol = get_protocol(info.protocol_for(cfg.variant, None)).resolve(model.binarize_rule)
        train_protocol = base_protocol.replace(input_size=model.input_size, canvas=model.input_size)
        train_split = open_eval_split(cfg.dataset, cfg.data_root, cfg.data_root_explicit, reporter)
        val_name = cfg.val or f"{train_split.dataset}/{recipe.select_split}"
        val_split = open_eval_split(val_name, cfg.data_root, cfg.data_root_explicit, reporter)
        tokenizer = get_tokenizer(model.text_encoder_kind, recipe.token_length)
        train_ds = RISDataset(train_split, train_protocol, tokenizer=tokenizer, input_size=model.input_size)

        types = [smp.type for smp in train_ds.samples]
        world = ctx.world
        micro = cfg.micro_batch or max(1, recipe.batch_size // world)
        if recipe.batch_size % (world * micro):
            raise RefbenchError(f"global batch {recipe.batch_size} is not a multiple of {world} process(es) x "
                                f"micro-batch {micro}; choose --micro-batch accordingly")
        accum = recipe.batch_size // (world * micro)
        n = len(train_ds)
        per_rank = n // world
        steps_per_epoch = per_rank // (micro * accum)
        if steps_per_epoch == 0:
            raise RefbenchError(f"{cfg.dataset} has {n} samples, fewer than one global batch of {recipe.batch_size}")
        total_steps = steps_per_epoch * recipe.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)

        optimizer, opt_summary = build_optimizer(model, recipe)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(steps_per_epoch * recipe.epochs,
                                                                              recipe.poly_power))
        scaler = torch.amp.GradScaler(dev.type, enabled=cfg.precision == "fp16")
        wrapped: nn.Module = _LossModule(model)
        if world > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                wrapped, device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)

        step, epoch, micro_in_epoch, best = 0, 0, 0, None
        history: list[dict] = []
        if cfg.resume:
            st = torch.load(state_path, map_location="cpu", weights_only=True)
            if st["config_key"] != _config_key(cfg, recipe, world, micro):
                raise RefbenchError(f"cannot --resume {out}: the recipe/settings differ from the saved run "
                                    f"({st['config_key']} vs {_config_key(cfg, recipe, world, micro)})")
            model.load_state_dict(st["model"])
            optimizer.load_state_dict(st["optimizer"])
            scheduler.load_state_dict(st["scheduler"])
            scaler.load_state_dict(st["scaler"])
            step, epoch, micro_in_epoch, best = st["step"], st["epoch"], st["micro_in_epoch"], st["best"]
            _set_rng_state(st["rng"])
            history = _read_log(out / "log.jsonl", step)
            notes.append(f"resumed at optimizer step {step} (epoch {epoch}, micro-batch {micro_in_epoch})")
        else:
            out.mkdir(parents=True, exist_ok=True)
            if ctx.is_main and not is_refbench_output(out):
                mark_output(out, "train-run", model=cfg.model, variant=cfg.variant)
            (out / "log.jsonl").write_text("")
        if ctx.is_main:
            write_json_atomic(out / "config.json", {"config": _jsonable(asdict(cfg)), "recipe": recipe.to_dict(),
                                                    "world_size": world, "micro_batch": micro, "accum": accum,
                                                    "optimizer": opt_summary, "device": device_description(dev)})
        log = open(out / "log.jsonl", "a") if ctx.is_main else None

        def save_state() -> None:
            if not ctx.is_main:
                return
            _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
                          "epoch": epoch, "micro_in_epoch": micro_in_epoch, "best": best, "rng": _rng_state(),
                          "config_key": _config_key(cfg, recipe, world, micro)}, state_path)
            save_checkpoint(model, out / "last.pt", step=step, epoch=epoch, recipe=recipe.source)

        def run_validation(best: dict | None) -> dict | None:
            """Validate on the recipe's split; keep OUT/best.pt by the recipe's metric (main process)."""
            if not ctx.is_main:
                return best
            metrics = validate(model, val_split, base_protocol, tokenizer, dev, cfg.precision, max(1, micro),
                               cfg.val_limit)
            row = {"step": step, "epoch": epoch, "val": metrics}
            history.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            score = metrics.get(recipe.select_metric)
            reporter.message(f"step {step} epoch {epoch}: val " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()
                                                                 if v is not None))
            if score is not None and (best is None or score > best["score"]):
                best = {"score": score, "metric": recipe.select_metric, "epoch": epoch, "step": step,
                        "metrics": metrics}
                save_checkpoint(model, out / "best.pt", step=step, epoch=epoch, val=metrics, recipe=recipe.source)
            return best

        t0 = time.perf_counter()
        done = step >= total_steps
        while not done and epoch < recipe.epochs:
            order = model.training_order(types, epoch, cfg.seed) or epoch_order(n, epoch, cfg.seed)
            order = order[ctx.rank::world][: steps_per_epoch * micro * accum]
            batches = [order[k:k + micro] for k in range(0, len(order), micro)]
            loader = DataLoader(train_ds, batch_sampler=batches[micro_in_epoch:], collate_fn=collate,
                                num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed),
                                pin_memory=dev.type == "cuda",
                                worker_init_fn=dataloader_worker_init if cfg.workers else None)
            terms_sum: dict[str, float] = {}
            for batch in loader:
                sync = (micro_in_epoch + 1) % accum == 0
                batch = _to_device(batch, dev)
                ctx_sync = wrapped.no_sync() if (world > 1 and not sync) else _nullctx()
                with ctx_sync:
                    with autocast(dev, cfg.precision):
                        terms = wrapped(batch)
                    loss = terms["total"].float() / accum
                    if not torch.isfinite(loss):
                        raise RefbenchError(f"training loss became {loss.item()} at step {step}; lower --lr or use fp32")
                    scaler.scale(loss).backward()
                for k, v in terms.items():
                    terms_sum[k] = terms_sum.get(k, 0.0) + float(v.detach()) / accum
                micro_in_epoch += 1
                if not sync:
                    continue
                if recipe.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                row = {"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                       **{k: round(v, 6) for k, v in terms_sum.items()}}
                terms_sum = {}
                history.append(row)
                if log is not None:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if ctx.is_main and (step % cfg.log_every == 0 or step == 1):
                    rate = step / max(1e-9, time.perf_counter() - t0)
                    reporter.message(f"step {step}/{total_steps} epoch {epoch} " +
                         " ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("step", "epoch", "lr")) +
                         f" lr {row['lr']:.2e} ({rate:.2f} steps/s)")
                if step % cfg.save_every == 0:
                    save_state()
                if step >= total_steps:
                    done = True
                    break
            if micro_in_epoch >= len(batches):
                epoch, micro_in_epoch = epoch + 1, 0
                if epoch % recipe.eval_every_epochs == 0 or done or epoch == recipe.epochs:
                    best = run_validation(best)
                save_state()
                ctx.barrier()
        if not history or "val" not in history[-1]:  # stopped mid-epoch (--max-steps): validate the final weights
            best = run_validation(best)
        if ctx.is_main:
            save_state()
            if log is not None:
                log.close()
            _plot_curves(history, out / "loss_curve.png", f"{cfg.model} ({cfg.variant}) on {cfg.dataset}")
            summary = {"model": cfg.model, "variant": cfg.variant, "dataset": train_split.name, "val": val_split.name,
                       "steps": step, "epochs_completed": epoch, "best": best, "recipe": recipe.to_dict(),
                       "wall_time_s": round(time.perf_counter() - t0, 1), "device": device_description(dev),
                       "world_size": world, "notes": notes}
            write_json_atomic(out / "train.json", summary)
            return summary
        return {}
    finally:
        ctx.close()


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _config_key(cfg: TrainConfig, recipe: TrainRecipe, world: int, micro: int) -> str:
    return json.dumps({"model": cfg.model, "variant": cfg.variant, "dataset": cfg.dataset, "seed": cfg.seed,
                       "recipe": recipe.to_dict(), "world": world, "micro": micro, "precision": cfg.precision,
                       "model_args": cfg.model_args}, sort_keys=True, default=str)


def _jsonable(d: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _read_log(path: Path, upto_step: int) -> list[dict]:
    """Log rows up to the resumed step (later rows of the killed run are dropped and rewritten)."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("step", 0) <= upto_step:
                rows.append(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss terms per optimizer step and validation metrics per epoch (PNG, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in history if "val" not in r]
    vals = [r for r in history if "val" in r]
    if not steps:
        return
    fig, axes = plt.subplots(1, 2 if vals else 1, figsize=(11 if vals else 6, 4), squeeze=False)
    ax = axes[0, 0]
    keys = [k for k in steps[0] if k not in ("step", "epoch", "lr")]
    x = [r["step"] for r in steps]
    for k in keys:
        y = np.array([r.get(k, math.nan) for r in steps], float)
        w = max(1, len(y) // 50)
        ys = np.convolve(y, np.ones(w) / w, mode="valid") if len(y) >= w else y
        ax.plot(x[w - 1:] if len(y) >= w else x, ys, label=k)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (moving average)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    if vals:
        ax2 = axes[0, 1]
        for k in ("mIoU", "oIoU"):
            ax2.plot([r["epoch"] for r in vals], [r["val"].get(k) for r in vals], marker="o", label=f"val {k}")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("%")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
