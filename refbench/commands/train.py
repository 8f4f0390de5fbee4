"""``refbench train``: train a registered model with its paper's recipe."""
from __future__ import annotations

import os
from pathlib import Path

import click

from refbench.commands.options import POSITIVE_FLOAT


@click.command(name="train")
@click.option("--model", required=True, help="Registered model name (see `refbench models`).")
@click.option("--variant", default="paper", show_default=True, help="paper | tiny | …")
@click.option("--dataset", default="synth/train", show_default=True, help="Training split, e.g. refcoco/train.")
@click.option("--val", default=None, help="Validation split for the best checkpoint (default: DATASET's val).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--data-root", default=None, help="Data root (default: $REFBENCH_DATA).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1))
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last saved state.")
@click.option("--micro-batch", type=click.IntRange(min=1), default=None,
              help="Per-process batch; gradients are accumulated up to the recipe's global batch.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the recipe's global batch size.")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="Override the recipe's learning rate.")
@click.option("--input-size", type=click.IntRange(32, 4096), default=None, help="Override the recipe's input size.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many optimizer steps.")
@click.option("--save-every", default=200, show_default=True, type=click.IntRange(min=1), help="Save the resumable state every N steps.")
@click.option("--val-limit", type=click.IntRange(min=1), default=None, help="Validate on the first N samples only.")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(0, 64), help="DataLoader worker processes.")
@click.option("--init-checkpoint", default=None, help="Start from these weights (e.g. pretrained parts).")
@click.option("--from-scratch", is_flag=True,
              help="Train from random weights. Without it a paper variant needs the pretrained parts its paper starts "
                   "from (e.g. --model-arg swin_path=swin_base_patch4_window12_384_22k.pth --model-arg "
                   "bert_path=bert-base-uncased/; `refbench models` lists them).")
@click.option("--model-arg", "model_args", multiple=True,
              help="KEY=VALUE passed to the model builder (a config field or an ablation), e.g. "
                   "--model-arg ablation=ve_only or --model-arg ce_class_weights=[0.5,2.0]; VALUE is JSON or a string.")
def train_cmd(model, variant, dataset, val, out, data_root, device, precision, seed, resume, micro_batch, epochs,
              batch_size, lr, input_size, max_steps, save_every, val_limit, workers, init_checkpoint,
              from_scratch, model_args) -> None:
    """Train MODEL with its paper's recipe (AdamW, poly decay, epochs, batch) on DATASET.

    Example: refbench train --model lavt --variant tiny --dataset synth/train --out runs/lavt-tiny
    """
    from refbench.commands.reporting import CLI
    from refbench.train import TrainConfig, train

    # train() refuses a paper recipe without its pretrained parts before reading any data (--from-scratch)
    margs = parse_model_args(model_args)
    train(TrainConfig(model=model, variant=variant, dataset=dataset, val=val, out=out,
                      data_root=data_root or os.environ.get("REFBENCH_DATA"), data_root_explicit=data_root is not None,
                      device=device, precision=precision,
                      seed=seed, resume=resume, micro_batch=micro_batch, epochs=epochs, batch_size=batch_size,
                      lr=lr, input_size=input_size, max_steps=max_steps, save_every=save_every, val_limit=val_limit,
                      workers=workers, init_checkpoint=init_checkpoint, from_scratch=from_scratch, model_args=margs),
          reporter=CLI)


def parse_model_args(items: tuple[str, ...]) -> dict:
    """``("ablation=ve_only", "topk_ratio=0.1")`` -> ``{"ablation": "ve_only", "topk_ratio": 0.1}``."""
    import json

    from refbench.core.errors import RefbenchError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RefbenchError(f"--model-arg {item!r}: use KEY=VALUE, e.g. ablation=ve_only")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out
