"""``refbench data check`` / ``refbench data stats``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from refbench.core.errors import RefbenchError

_ROOT_HELP = "Directory holding the datasets (refcoco/, refcocog/, ref-zom/, grefcoco/, images/ ...); default $REFBENCH_DATA."


@click.group()
def data() -> None:
    """Inspect datasets on disk: layouts, published counts, statistics."""


def _root(data_root: Path | None) -> Path:
    from refbench.data.layout import resolve_data_root

    root = resolve_data_root(data_root)
    if root is None:
        raise RefbenchError("no data root: pass --data-root DIR or set REFBENCH_DATA "
                            "(`refbench build-dataset synth --out DIR` makes one to try)")
    return root


@data.command()
@click.option("--data-root", type=click.Path(path_type=Path), help=_ROOT_HELP)
@click.option("--image-root", type=click.Path(path_type=Path), help="Image directory, if not under the data root.")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable), e.g. refcoco, ref-zom.")
@click.option("--no-images", is_flag=True, help="Skip the check that every image file exists.")
@click.option("--verify-hashes", is_flag=True, help="Synthetic benchmark: compare every file with manifest.json.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the report as JSON here.")
def check(data_root: Path | None, image_root: Path | None, datasets: tuple[str, ...], no_images: bool,
          verify_hashes: bool, json_out: Path | None) -> None:
    """Find datasets under the data root and verify them against the published counts.

    Exit status 0 when every dataset found matches, 1 when something is wrong (counts,
    missing images, malformed files) or nothing was found.

    Example: refbench data check --data-root ~/data/refer/data
    """
    from refbench.data.catalog import get_dataset
    from refbench.data.check import check_data_root, check_to_json, format_check
    from refbench.core.outdir import check_output
    from refbench.core.results import write_json_atomic

    if json_out is not None:
        check_output(json_out, "--json", folder=False, inputs=[data_root, image_root])
    keys = [get_dataset(k.lower()).key for k in datasets] or None
    results = check_data_root(_root(data_root), keys, image_root, not no_images, verify_hashes)
    click.echo(format_check(results, explain_missing=bool(datasets)))
    if json_out:
        write_json_atomic(json_out, check_to_json(results))
        click.echo(f"wrote {json_out}")
    found = [r for r in results if r.found]
    if not found or any(r.problems for r in found):
        sys.exit(1)


@data.command()
@click.argument("splits", nargs=-1, required=True)
@click.option("--data-root", type=click.Path(path_type=Path), help=_ROOT_HELP)
@click.option("--generalization-rule", type=click.Choice(["ref", "image"]), default="ref", show_default=True,
              help="How :seen/:unseen train subsets are formed (ref-level or image-level filtering).")
@click.option("--tokens/--no-tokens", default=True, show_default=True,
              help="Also count BERT word-pieces (share of sentences truncated at 20 ids).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the statistics as JSON here.")
def stats(splits: tuple[str, ...], data_root: Path | None, generalization_rule: str, tokens: bool,
          json_out: Path | None) -> None:
    """Per-split counts by type (zero/one/many), expression length and categories.

    Example: refbench data stats refcoco/val refcocog-umd/val:unseen synth-zom/val
    """
    from refbench.data import open_split
    from refbench.data.check import format_stats, split_stats
    from refbench.core.tokenize import get_tokenizer
    from refbench.core.outdir import check_output
    from refbench.core.results import write_json_atomic

    if json_out is not None:
        check_output(json_out, "--json", folder=False, inputs=[data_root])
    tok = get_tokenizer("bert", 20) if tokens else None
    out = []
    for name in splits:
        st = split_stats(open_split(name, data_root, generalization_rule=generalization_rule), tok)
        out.append(st)
        click.echo(format_stats(st))
    if json_out:
        write_json_atomic(json_out, out)
        click.echo(f"wrote {json_out}")
