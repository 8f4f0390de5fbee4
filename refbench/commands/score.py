"""``refbench score``: score saved PNG predictions against GT masks."""
from __future__ import annotations

import os
from pathlib import Path

import click

from refbench.commands.options import BATCH_SIZE, BOOTSTRAP, SEED
from refbench.core.errors import RefbenchError
from refbench.core.outdir import check_output
from refbench.metrics.stats import bootstrap_ci
from refbench.core.protocols import PROTOCOLS
from refbench.metrics.text import metrics_table
from refbench.core.results import results_document, write_json_atomic, write_records_jsonl
from refbench.score import score_directories


@click.command()
@click.option("--pred", "pred_dir", required=True, type=click.Path(path_type=Path),
              help="Directory of predicted masks <sample_id>.png: binary, 0 = background and one value (1 or 255) "
                   "= foreground; palette PNGs are read by index (index 0 = background).")
@click.option("--gt", "gt", required=True,
              help="Directory of GT masks <sample_id>.png (all-zero = no target), or a dataset split "
                   "such as refcoco/val (GT built on the protocol canvas).")
@click.option("--data-root", default=None, help="Data root for a --gt split (default: $REFBENCH_DATA).")
@click.option("--protocol", default="lavt", show_default=True,
              help=f"Metric protocol: {', '.join(sorted(PROTOCOLS))}.")
@click.option("--types", "types_file", type=click.Path(path_type=Path),
              help='JSON {sample_id: "zero"|"one"|"many"}; default: empty GT = zero, else one.')
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the results JSON here.")
@click.option("--records", "records_out", type=click.Path(path_type=Path), help="Write per-sample records (JSONL) here.")
@click.option("--bootstrap", type=BOOTSTRAP, default=1000, show_default=True,
              help="Bootstrap resamples for the 95% CI (0 = none).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--batch-size", type=BATCH_SIZE, default=32, show_default=True, help="Masks scored per batch.")
def score(pred_dir: Path, gt: str, data_root: str | None, protocol: str, types_file: Path | None,
          json_out: Path | None, records_out: Path | None, bootstrap: int, seed: int, batch_size: int) -> None:
    """Score saved predictions against ground truth (no model run).

    Example: refbench score --pred preds/ --gt gt/ --protocol refzom --json results.json
    """
    provenance = {"pred_dir": str(pred_dir), "gt": str(gt)}
    outs = [(o, name) for o, name in ((json_out, "--json"), (records_out, "--records")) if o is not None]
    for out, name in outs:  # before any work: nothing is read or written until every output path is fine
        check_output(out, name, folder=False, inputs=[types_file])
        for d in (pred_dir, Path(gt)):
            if out.suffix.lower() == ".png" and Path(os.path.abspath(out)).parent == Path(os.path.abspath(d)):
                raise RefbenchError(f"{name} {out} would be read as a mask of {d}; write it elsewhere")
    if len(outs) == 2 and Path(os.path.abspath(json_out)) == Path(os.path.abspath(records_out)):
        raise RefbenchError(f"--json and --records are the same file {json_out}; give two paths")
    if Path(gt).is_dir():
        acc, notes = score_directories(pred_dir, gt, protocol, types_file, batch_size=batch_size)
    else:
        from refbench.data.splits import parse_split

        try:
            parse_split(gt)
        except RefbenchError as e:
            raise RefbenchError(f"--gt {gt}: no such directory, and not a dataset split ({e})") from None
        from refbench.core.provenance import sha256_file
        from refbench.score import score_against_split

        acc, notes, sd = score_against_split(pred_dir, gt, protocol, data_root or os.environ.get("REFBENCH_DATA"),
                                             batch_size=batch_size)
        provenance.update(dataset=sd.dataset, split=sd.split, subset=sd.subset, split_name=sd.name,
                          annotation_sha256={k: sha256_file(p) for k, p in sd.annotation_files.items()})
    report = acc.report()
    report.notes.extend(notes)
    ci = bootstrap_ci(acc.records, acc.protocol, n_resamples=bootstrap, seed=seed) if bootstrap > 0 else None
    click.echo(metrics_table(report, ci, title=f"refbench score: {pred_dir} vs {gt}"))
    if records_out:
        write_records_jsonl(records_out, acc.records)
    if json_out:
        method = f"percentile bootstrap over sentences, {bootstrap} resamples, seed {seed}" if ci else None
        doc = results_document(report, "score", ci, method, **provenance)
        write_json_atomic(json_out, doc)
        click.echo(f"wrote {json_out}")
