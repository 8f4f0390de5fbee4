"""``refbench build-dataset``: dataset builders (``synth``; Ref-ZOM later)."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("build-dataset")
def build_dataset() -> None:
    """Build datasets in the REFER / Ref-ZOM / gRefCOCO formats."""


@build_dataset.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output data root (must not exist, or --force).")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives byte-identical files.")
@click.option("--size", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True,
              help="tiny: 40 images (tests), small: 800 (default benchmark), full: 7200.")
@click.option("--workers", type=int, default=None, help="Rendering processes (default: up to 2; output is identical).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def synth(out: Path, seed: int, size: str, workers: int | None, force: bool) -> None:
    """The synthetic RIS benchmark: shapes with attributes, positions, relations; one, many and
    no-target sentences; written as REFER, Ref-ZOM and gRefCOCO datasets with a sha256 manifest.

    Example: refbench build-dataset synth --out data/synth --size small
    """
    from refbench.build.synth import build_synth

    manifest = build_synth(out, seed=seed, size=size, workers=workers, force=force, echo=click.echo)
    for dataset, splits in manifest["counts"].items():
        parts = []
        for split, c in splits.items():
            types = "/".join(str(c[t]) for t in ("zero", "one", "many"))
            parts.append(f"{split} {c['images']} img {c['refs']} refs {c['sentences']} sent ({types})")
        click.echo(f"  {dataset:15s} " + "; ".join(parts))
    click.echo(f"  sentences by type are (zero/one/many); manifest: {out / 'manifest.json'}")
    click.echo(f"  use it: refbench data check --data-root {out}   (or REFBENCH_DATA={out})")
