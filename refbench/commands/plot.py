"""``refbench plot``: PNG figures (headless matplotlib) from results files, records and masks."""
from __future__ import annotations

import json
from pathlib import Path

import click

from refbench.commands.options import BOOTSTRAP, SEED

from refbench.core.errors import RefbenchError

_OUT = click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
_RUNS = click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))


@click.group()
def plot() -> None:
    """Figures: published vs reproduced, IoU histogram, P@X curve, image/GT/prediction overlays."""


@plot.command("compare")
@_RUNS
@click.option("--against", help="Take published numbers from this table only, e.g. magnet:1.")
@click.option("--metric", default="oIoU", show_default=True, help="Metric to plot.")
@click.option("--bootstrap", default=1000, show_default=True, type=BOOTSTRAP,
              help="Resamples for CIs missing from a results file.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@_OUT
def compare_cmd(runs: tuple[Path, ...], against: str | None, metric: str, bootstrap: int, seed: int, out: Path) -> None:
    """Published vs reproduced per run and split (RUNS: results JSON files).

    Example: refbench plot compare runs/*/results.json --against magnet:1 --metric oIoU --out cmp.png
    """
    import leaderboards
    from refbench.tables.compare import bar_points, fill_missing_ci, load_runs
    from refbench.tables.match import main_numbers
    from refbench.tables.select import parse_table_ref
    from refbench.tables.plots import plot_published_vs_reproduced

    loaded = load_runs(list(runs))
    fill_missing_ci(loaded, bootstrap, seed)
    if against:
        layout = parse_table_ref(against)
        numbers, scope = leaderboards.numbers(layout.paper, layout.table), layout.key
    else:
        numbers, scope = main_numbers(), "main tables"
    points = bar_points(loaded, metric, numbers)
    if not points:
        have = sorted({m for r in loaded for m in r.metrics})
        raise RefbenchError(f"--metric {metric!r}: no run reports it (they report {', '.join(have)})")
    plot_published_vs_reproduced(points, metric, out, title=f"{metric}: published ({scope}) vs reproduced")
    click.echo(f"wrote {out}")


@plot.command("iou-hist")
@_RUNS
@click.option("--bins", default=20, show_default=True, help="Number of IoU bins in [0, 1].")
@_OUT
def iou_hist_cmd(runs: tuple[Path, ...], bins: int, out: Path) -> None:
    """Histogram of per-sentence IoU (RUNS: results JSON with records.jsonl beside it, or records .jsonl)."""
    from refbench.tables.compare import iou_series
    from refbench.tables.plots import plot_iou_histogram

    series, notes = iou_series(list(runs))
    plot_iou_histogram({label: iou for label, (iou, _) in series.items()}, out, bins=bins)
    for n in notes:
        click.echo(f"note: {n}")
    click.echo(f"wrote {out}")


@plot.command("pcurve")
@_RUNS
@_OUT
def pcurve_cmd(runs: tuple[Path, ...], out: Path) -> None:
    """P@X curve for X in [0, 1], P@0.5…0.9 marked (RUNS as for iou-hist)."""
    from refbench.tables.compare import iou_series
    from refbench.tables.plots import plot_precision_curve

    series, notes = iou_series(list(runs))
    plot_precision_curve(series, out)
    for n in notes:
        click.echo(f"note: {n}")
    click.echo(f"wrote {out}")


@plot.command("overlays")
@click.option("--run", "run_dir", type=click.Path(path_type=Path),
              help="An eval run directory written with --save-masks: predictions from RUN/masks, GT, images and "
                   "sentences from the run's split (replaces --gt/--pred/--images/--sentences).")
@click.option("--data-root", default=None, help="With --run: data root of the run's split (default: the recorded one).")
@click.option("--gt", "gt_dir", type=click.Path(path_type=Path), help="GT masks <id>.png.")
@click.option("--pred", "pred_dir", type=click.Path(path_type=Path), help="Predicted masks <id>.png.")
@click.option("--images", "images_dir", type=click.Path(path_type=Path),
              help="Images <id>.jpg/.png (default: masks on grey).")
@click.option("--ids", help="Comma-separated sample ids to show (default: chosen by --select).")
@click.option("--select", type=click.Choice(["worst", "best", "random"]), default="worst", show_default=True,
              help="How to choose samples when --ids is not given.")
@click.option("-n", "n", default=6, show_default=True, type=click.IntRange(1, 200),
              help="Number of samples chosen by --select.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of --select random.")
@click.option("--sentences", type=click.Path(path_type=Path), help='JSON {sample_id: "referring expression"}.')
@_OUT
def overlays_cmd(run_dir: Path | None, data_root: str | None, gt_dir: Path | None, pred_dir: Path | None,
                 images_dir: Path | None, ids: str | None, select: str, n: int, seed: int, sentences: Path | None,
                 out: Path) -> None:
    """Grid of image / GT / prediction overlays for chosen samples.

    Example: refbench plot overlays --gt gt/ --pred preds/ --images images/ --select worst -n 8 --out worst.png

    Example: refbench plot overlays --run runs/lavt-tiny/synth_val --select worst -n 8 --out worst.png
    """
    from refbench.tables.figure_io import check_png_out
    from refbench.tables.overlays import plot_overlays
    from refbench.tables.plots import load_overlay_samples

    if run_dir is not None:
        if any(x is not None for x in (gt_dir, pred_dir, images_dir, sentences)):
            raise RefbenchError("--run takes GT, images and sentences from the run's split; leave out "
                                "--gt/--pred/--images/--sentences")
        from refbench.report.gallery import open_run_samples, overlay_samples

        check_png_out(out)
        rs = open_run_samples(run_dir, data_root)
        id_list = [i.strip() for i in ids.split(",") if i.strip()] if ids else None
        samples = overlay_samples(rs, id_list, select, n, seed)
        plot_overlays(samples, out, f"{rs.doc.identity.model or ''} ({rs.doc.identity.variant or ''}) on "
                                    f"{rs.split.name}")
        click.echo(f"wrote {out} ({len(samples)} samples: {', '.join(s.sample_id for s in samples)})")
        return
    if gt_dir is None or pred_dir is None:
        raise RefbenchError("give --run RUN_DIR (an eval run with --save-masks), or both --gt and --pred")
    texts = None
    if sentences is not None:
        try:
            texts = json.loads(sentences.read_text())
        except FileNotFoundError:
            raise RefbenchError(f"--sentences file {sentences} does not exist") from None
        except json.JSONDecodeError as e:
            raise RefbenchError(f"--sentences file {sentences} is not valid JSON ({e})") from None
        if not isinstance(texts, dict):
            raise RefbenchError(f"--sentences file {sentences} must be a JSON object {{sample_id: text}}")
        texts = {str(k): str(v) for k, v in texts.items()}
    if images_dir is not None and not images_dir.is_dir():
        raise RefbenchError(f"--images directory {images_dir} does not exist")
    id_list = [i.strip() for i in ids.split(",") if i.strip()] if ids else None
    samples = load_overlay_samples(gt_dir, pred_dir, images_dir, id_list, select, n, seed, texts)
    plot_overlays(samples, out)
    click.echo(f"wrote {out} ({len(samples)} samples: {', '.join(s.sample_id for s in samples)})")
