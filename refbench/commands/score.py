"""``refbench score``: score saved PNG predictions against GT masks."""
from __future__ import annotations

from pathlib import Path

import click

from refbench.metrics.stats import bootstrap_ci
from refbench.protocols import PROTOCOLS
from refbench.report import metrics_table
from refbench.results import results_document, write_json_atomic, write_records_jsonl
from refbench.score import score_directories


@click.command()
@click.option("--pred", "pred_dir", required=True, type=click.Path(path_type=Path),
              help="Directory of predicted masks <sample_id>.png (nonzero = foreground).")
@click.option("--gt", "gt", required=True, help="Directory of GT masks <sample_id>.png (all-zero = no target).")
@click.option("--protocol", default="lavt", show_default=True,
              help=f"Metric protocol: {', '.join(sorted(PROTOCOLS))}.")
@click.option("--types", "types_file", type=click.Path(path_type=Path),
              help='JSON {sample_id: "zero"|"one"|"many"}; default: empty GT = zero, else one.')
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the results JSON here.")
@click.option("--records", "records_out", type=click.Path(path_type=Path), help="Write per-sample records (JSONL) here.")
@click.option("--bootstrap", default=1000, show_default=True, help="Bootstrap resamples for the 95% CI (0 = none).")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--batch-size", default=32, show_default=True, help="Masks scored per batch.")
def score(pred_dir: Path, gt: str, protocol: str, types_file: Path | None, json_out: Path | None,
          records_out: Path | None, bootstrap: int, seed: int, batch_size: int) -> None:
    """Score saved predictions against ground truth (no model run).

    Example: refbench score --pred preds/ --gt gt/ --protocol refzom --json results.json
    """
    acc, notes = score_directories(pred_dir, gt, protocol, types_file, batch_size=batch_size)
    report = acc.report()
    report.notes.extend(notes)
    ci = bootstrap_ci(acc.records, acc.protocol, n_resamples=bootstrap, seed=seed) if bootstrap > 0 else None
    click.echo(metrics_table(report, ci, title=f"refbench score: {pred_dir} vs {gt}"))
    if records_out:
        write_records_jsonl(records_out, acc.records)
    if json_out:
        method = f"percentile bootstrap over sentences, {bootstrap} resamples, seed {seed}" if ci else None
        doc = results_document(report, "score", ci, method, pred_dir=str(pred_dir), gt=str(gt))
        write_json_atomic(json_out, doc)
        click.echo(f"wrote {json_out}")
