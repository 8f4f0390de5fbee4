"""``refbench eval``: evaluate a registered model on a dataset split."""
from __future__ import annotations

import os
from pathlib import Path

import click

from refbench.commands.options import BATCH_SIZE, BOOTSTRAP, LIMIT, PRECISION, SEED, WORKERS


@click.command(name="eval")
@click.option("--model", required=True, help="Registered model name (see `refbench models`).")
@click.option("--variant", default=None, help="Model variant (default: the model's first, usually 'paper').")
@click.option("--split", required=True, help="DATASET/SPLIT[:seen|:unseen], e.g. refcoco+/testB, synth/val.")
@click.option("--checkpoint", default=None, help="Official or refbench checkpoint file.")
@click.option("--data-root", default=None, help="Data root (default: $REFBENCH_DATA).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--batch-size", type=BATCH_SIZE, default=None, help="Default: largest that fits on GPU; 8 on CPU.")
@click.option("--precision", type=PRECISION, default="fp32", show_default=True)
@click.option("--protocol", default=None, help="Metric protocol (default: the one the model's paper used).")
@click.option("--limit", type=LIMIT, default=None, help="Evaluate only the first N samples (quick runs; the "
              "results then say 'partial: N of M' and are never compared with a published number).")
@click.option("--workers", type=WORKERS, default=None, help="DataLoader worker processes.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: runs/MODEL-VARIANT/SPLIT).")
@click.option("--resume", is_flag=True, help="Continue a killed or finished run in --out (same identity only).")
@click.option("--bootstrap", type=BOOTSTRAP, default=1000, show_default=True,
              help="Bootstrap resamples for 95% CIs (0 = none).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--skip-missing-images", is_flag=True, help="Report and skip samples whose image file is missing.")
@click.option("--random-init", is_flag=True, help="Allow running without weights (smoke tests only).")
@click.option("--save-masks", is_flag=True,
              help="Also write every predicted mask as OUT/masks/<sample_id>.png (PNG 0/255 on the protocol canvas; "
                   "`refbench score --pred OUT/masks --gt SPLIT` reproduces the run's records). A run started "
                   "without it cannot be resumed with it (and the reverse): use a new --out.")
def eval_cmd(model, variant, split, checkpoint, data_root, device, batch_size, precision, protocol, limit,
             workers, out, resume, bootstrap, seed, skip_missing_images, random_init, save_masks) -> None:
    """Evaluate MODEL on SPLIT and write OUT/results.json + OUT/records.jsonl (+ OUT/masks/ with --save-masks).

    Example: refbench eval --model magnet --split refcoco+/testB --checkpoint magnet_refcoco+.pth
    """
    from refbench.commands.reporting import CLI
    from refbench.eval import EvalConfig, evaluate
    from refbench.eval.runner import default_out

    evaluate(EvalConfig(model=model, variant=variant, split=split, checkpoint=checkpoint,
                        data_root=data_root or os.environ.get("REFBENCH_DATA"),
                        data_root_explicit=data_root is not None, device=device,
                        batch_size=batch_size, precision=precision, protocol=protocol, limit=limit,
                        workers=workers, out=out or default_out(model, variant, split), resume=resume,
                        bootstrap=bootstrap, seed=seed, random_init=random_init,
                        skip_missing_images=skip_missing_images, save_masks=save_masks), reporter=CLI)
