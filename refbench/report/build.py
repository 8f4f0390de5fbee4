"""``refbench report RUN… --out report.html``: one self-contained page about one or more runs.

Sections: an overview of every run's metrics with 95 % CIs; published vs reproduced where a paper
(or refbench's reference table) has the number (:mod:`refbench.tables.compare`); per split, the
P@X curve and IoU histogram of its runs (:mod:`refbench.tables.plots`); per run, its provenance
(identity, protocol, checkpoint, data, environment, notes), the slice analysis
(:mod:`refbench.analysis`) with a bar and CI whisker per slice, a gallery of the worst / best / random samples drawn
from the run's saved masks (``refbench eval --save-masks``; without them the page says how to get
them) and a sortable, filterable table of every sample.

The page is a single file: inline CSS and JS, every image a ``data:`` URI, nothing loaded from
the network (a Content-Security-Policy says so to the browser), every string escaped
(:mod:`refbench.report.html`).  A part that cannot be built for a run (its split's data is not
available, the annotation files differ from the ones it scored) is replaced by one line saying
why; the rest of the page is still written.
"""
from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from refbench.core.errors import RefbenchError
from refbench.core.progress import SILENT, Reporter
from refbench.report import html as H

REPORT_SCHEMA = "refbench.report"


def _png_bytes(draw, *args, **kwargs) -> bytes:
    """Call a figure function that writes a PNG path (``draw(..., out, ...)``) and return the file's bytes."""
    with tempfile.TemporaryDirectory(prefix="refbench-report-") as tmp:
        out = Path(tmp) / "figure.png"
        draw(*args, out, **kwargs)
        return out.read_bytes()


def _fmt_metric(value, ci) -> str:
    from refbench.tables.compare import fmt, fmt_ci

    text = fmt(value)
    return text + (f" {fmt_ci(ci)}" if ci and value is not None and ci[0] is not None else "")


def check_html_out(out: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """``--out`` must be a writable ``.html`` file path outside the runs (checked before any work)."""
    from refbench.core.outdir import check_output

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise RefbenchError(f"--out {out}: the report is one HTML file; give a name ending in .html")
    check_output(out, "--out", folder=False)
    for inp in inputs:
        if Path(inp).resolve() == out.resolve():
            raise RefbenchError(f"--out {out} is one of the inputs; write the report elsewhere")
    return out


class _RunPart:
    """What the page shows about one run (each part None when it could not be built, with ``why``)."""

    def __init__(self, run) -> None:
        self.run = run
        self.analysis = None          # refbench.analysis.analyze.Analysis of this run alone
        self.analysis_why = ""
        self.samples = None           # refbench.report.gallery.RunSamples
        self.samples_why = ""


def _overview(runs) -> str:
    metrics = list(OrderedDict.fromkeys(m for r in runs for m in r.metrics))
    head = "".join(f'<th class="num">{H.esc(m)}</th>' for m in metrics)
    rows = []
    for k, r in enumerate(runs):
        ident = r.doc.identity
        partial = f'<span class="badge partial">{H.esc(ident.partial_text())}</span>' if r.doc.partial else ""
        cells = "".join(f'<td class="num">{H.esc(_fmt_metric(r.metrics.get(m), r.ci.get(m)))}</td>' for m in metrics)
        rows.append(f'<tr><td><a href="#run-{k + 1}">{H.esc(r.label)}</a>{partial}</td>'
                    f"<td>{H.esc(r.split_name or r.doc.kind + ' run')}</td>"
                    f'<td>{H.esc(r.doc.protocol.name)} <span class="extra">[{H.esc(r.doc.protocol_hash)}]</span></td>'
                    f'<td class="num">{ident.n_samples}</td>{cells}</tr>')
    return ('<div class="table-wrap"><table class="grid"><caption>Every metric in percent with its 95% CI '
            "(percentile bootstrap over sentences); n = sentences scored.</caption><thead><tr><th>run</th><th>split"
            f'</th><th>protocol</th><th class="num">n</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table></div>")


def _published(runs) -> str:
    from refbench.tables.compare import comparison_table
    from refbench.tables.grid import EMPTY
    from refbench.tables.match import main_numbers

    table = comparison_table(runs, main_numbers(), "the papers' main tables and refbench's reference table")
    table.rows = [row for row in table.rows if row.cells[0].text != EMPTY]
    if not table.rows:
        return ('<p class="hint">No published number for these runs (published rows are matched by model, variant, '
                "split and metric; see the notes).</p>" + '<ul class="notes">'
                + "".join(f"<li>{H.esc(n)}</li>" for n in table.notes) + "</ul>")
    return H.table_html(table)


def _split_figures(runs) -> str:
    from refbench.tables.plots import plot_iou_histogram, plot_precision_curve

    groups: dict[str, list] = OrderedDict()
    for r in runs:
        if r.doc.records_path is not None:
            groups.setdefault(r.split_name or f"{r.doc.kind} runs", []).append(r)
    if not groups:
        return '<p class="hint">No run has per-sample records (records.jsonl), so no curve can be drawn.</p>'
    parts = []
    for split, group in groups.items():
        series, notes = {}, []
        for r in group:
            rec = r.records()
            targeted = rec.type != 0
            if (~targeted).any():
                notes.append(f"{r.label}: {int((~targeted).sum())} zero-target samples left out (no IoU)")
            label = r.label
            while label in series:
                label += "'"
            series[label] = (rec.iou()[targeted], r.doc.protocol.p_compare)
        parts.append(f"<h3>{H.esc(split)}</h3>")
        if all(len(v[0]) == 0 for v in series.values()):
            parts.append('<p class="hint">No targeted sample: nothing to draw.</p>')
            continue
        curve = _png_bytes(plot_precision_curve, series, title=f"P@X on {split}")
        hist = _png_bytes(plot_iou_histogram, {k: v[0] for k, v in series.items()}, title=f"IoU histogram on {split}")
        parts.append('<div class="figs">' + H.img(curve, "image/png", f"P@X curve on {split}")
                     + H.img(hist, "image/png", f"IoU histogram on {split}") + "</div>")
        if notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{H.esc(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _provenance(run) -> str:
    doc = run.doc
    ident, prov, env = doc.identity, doc.provenance, doc.environment
    p = doc.protocol
    items = [("results file", run.path), ("kind", doc.kind), ("created", doc.created),
             ("model / variant", f"{ident.model or '-'} / {ident.variant or '-'}"),
             ("checkpoint", prov.get("checkpoint") or "-"), ("checkpoint sha256", ident.checkpoint_sha256 or "-"),
             ("split", ident.split_name or "-"), ("data root", ident.data_root or "-"),
             ("annotation sha256", ", ".join(f"{k} {v}" for k, v in ident.annotation_sha256.items()) or "-"),
             ("samples", f"{ident.n_samples}" + (f" ({ident.partial_text()})" if doc.partial else
                                                   (f" of {ident.split_samples}" if ident.split_samples else ""))),
             ("protocol", f"{p.name} v{p.version} [{doc.protocol_hash}]: {p.description}"),
             ("canvas / GT rule / binarization", f"{p.canvas or 'original size'} / {p.gt_rule} / {p.binarize}"),
             ("precision / batch size / processes", f"{ident.precision or '-'} / {ident.batch_size or '-'} / "
                                                    f"{ident.world_size or '-'}"),
             ("device", prov.get("device") or "-"), ("wall time (s)", prov.get("wall_time_s", "-")),
             ("samples/s", prov.get("samples_per_s", "-")), ("CI", doc.ci_method or "-"),
             ("refbench", f"{env.get('refbench', '-')} (git {env.get('git_commit', '-')})"),
             ("torch / python", f"{env.get('torch', '-')} / {env.get('python', '-')}")]
    out = H.definition_list(items)
    if doc.notes:
        out += '<ul class="notes">' + "".join(f"<li>{H.esc(n)}</li>" for n in doc.notes) + "</ul>"
    return out


def _gallery(part: _RunPart, n: int, seed: int) -> str:
    from refbench.tables.overlays import GT_COLOR, PRED_COLOR, gallery_tile

    rs = part.samples
    if rs is None:
        return f'<p class="hint">No gallery: {H.esc(part.samples_why)}</p>'
    if not rs.has_masks:
        return ('<p class="hint">No gallery: this run did not save its predicted masks. Re-run it with '
                "<code>refbench eval ... --save-masks --out NEW_DIR</code> (or <code>refbench predict</code> for single "
                "images) to see its predictions here.</p>")
    legend = ('<p class="legend">'
              f'<span><i class="swatch" style="background:rgba{(*GT_COLOR, 0.3)};border-color:rgb{GT_COLOR}"></i>'
              "ground truth (left: outline + light fill)</span>"
              f'<span><i class="swatch" style="background:rgba{(*PRED_COLOR, 0.3)};border-color:rgb{PRED_COLOR}"></i>'
              "prediction (right: outline + light fill)</span>"
              "<span>score = IoU; for a zero-target sentence 1 if the prediction is empty, else 0</span></p>")
    parts = [legend]
    for how in ("worst", "best", "random"):
        ids = rs.choose(how, n, seed)
        tiles = []
        for sid in ids:
            s = rs.load(sid)
            jpeg = gallery_tile(s.image, s.gt, s.pred, side=200, quality=80)
            tiles.append('<figure class="tile">' + H.img(jpeg, "image/jpeg", f"sample {sid}: GT and prediction")
                         + f'<figcaption><div class="sentence">{H.esc(s.sentence)}</div><div class="meta">id '
                         f"{H.esc(sid)} · {H.esc(s.type)} · score {s.score:.3f} · IoU {s.iou:.3f}"
                         + ("" if s.gt.any() else " · GT empty") + ("" if s.pred.any() else " · prediction empty")
                         + "</div></figcaption></figure>")
        title = {"worst": "Worst", "best": "Best", "random": f"Random (seed {seed})"}[how]
        parts.append(f"<h4>{title} {len(ids)}</h4><div class=\"gallery\">{''.join(tiles)}</div>")
    return "".join(parts)


def _slices(part: _RunPart) -> str:
    """The run's slice table with a bar per slice (first shown metric, 95 % CI as a whisker), drawn in HTML."""
    from refbench.analysis.render import slice_table

    a = part.analysis
    if a is None:
        return f'<p class="hint">No slice analysis: {H.esc(part.analysis_why)}</p>'
    table = slice_table(a, 0)
    table.notes = [*a.notes, "slice definitions: see Definitions at the end of the page"]
    metric = a.shown_metrics()[0]
    bars = []
    for s in a.slices[0]:
        value, ci = s.metrics.get(metric), s.ci.get(metric)
        if value is None:
            bars.append("")
            continue
        whisker = ""
        if ci and ci[0] is not None and ci[1] is not None:
            whisker = f'<span class="ci" style="left:{ci[0]:.2f}%;width:{max(ci[1] - ci[0], 0.3):.2f}%"></span>'
        bars.append(f'<div class="bar" title="{H.esc(metric)} {value:.2f}"><span class="fill" '
                    f'style="width:{min(max(value, 0.0), 100.0):.2f}%"></span>{whisker}</div>')
    return H.table_html(table, bars=(f"{metric} (0-100, 95% CI)", bars))


def _sample_rows(part: _RunPart, run_id: str) -> str:
    from refbench.report.gallery import sample_scores

    run = part.run
    rec = run.records()
    facts = {f.sample_id: f for f in part.analysis.runs[0].facts} if part.analysis is not None else {}
    sentences = {}
    if part.samples is not None:
        sentences = {s.sample_id: s.sentence for s in part.samples.dataset.samples}
    score = sample_scores(rec)
    iou = rec.iou()
    columns = ["id", "sentence", "type", "score", "IoU (%)", "I", "U", "pred area", "GT area", "words",
               "GT share (%)", "category", "seen/unseen", "same-category objects"]
    rows = []
    for k, sid in enumerate(rec.ids):
        f = facts.get(sid)
        rows.append([sid, sentences.get(sid), ["zero", "one", "many"][int(rec.type[k])], round(float(score[k]), 4),
                     round(100 * float(iou[k]), 2), int(rec.I[k]), int(rec.U[k]), int(rec.pred_area[k]),
                     int(rec.gt_area[k]), f.n_words if f else None, round(100 * f.share, 3) if f else None,
                     f.category if f else None, f.subset if f else None, f.same_category if f else None])
    caption = ("Every sample of the run (click a header to sort, type to filter). Areas and I, U in pixels on the "
               "protocol canvas; GT share and words from the split's annotations at the original resolution"
               + ("" if facts else " (not available: the split could not be opened)") + ".")
    types = sorted({r[2] for r in rows}, key=["zero", "one", "many"].index)
    return H.sample_table(f"samples-{run_id}", columns, rows, {3: 3, 4: 2, 10: 2}, caption, sort=3, direction=1,
                          types=types)


def build_report(paths: Sequence[str | Path], out: str | Path, data_root: str | None = None, gallery: int = 4,
                 seed: int = 0, bootstrap: int = 1000, title: str = "refbench report",
                 reporter: Reporter = SILENT) -> Path:
    """Write the report about the runs at ``paths`` (run folders or results files) to ``out``; returns it."""
    from refbench.analysis.analyze import Analysis, load_run, open_run_split, resolve_results, slice_metrics
    from refbench.analysis.render import definition_notes
    from refbench.core import __version__
    from refbench.core.provenance import now_iso
    from refbench.core.results import write_text_atomic
    from refbench.report.gallery import RunSamples
    from refbench.tables.compare import fill_missing_ci, load_runs

    if not paths:
        raise RefbenchError("give one or more runs (eval run folders or results.json files)")
    if isinstance(gallery, bool) or not isinstance(gallery, int) or not 0 <= gallery <= 50:
        raise RefbenchError(f"--gallery must be an integer from 0 to 50, got {gallery!r}")
    out = check_html_out(out)
    results = [resolve_results(p) for p in paths]
    check_html_out(out, results)
    runs = load_runs(results)
    fill_missing_ci(runs, bootstrap, seed)
    parts = [_RunPart(r) for r in runs]
    cache: dict = {}
    splits: dict = {}
    with reporter.progress(len(parts), "report") as advance:
        for part in parts:
            run = part.run
            if run.doc.records_path is None:
                part.analysis_why = part.samples_why = f"{run.path} has no records.jsonl beside it"
                advance(1, run.label)
                continue
            try:
                ar = load_run(run, data_root, SILENT, cache)
                part.analysis = Analysis([ar], [slice_metrics(ar, bootstrap, seed)], None, bootstrap, 0, seed,
                                         [f"{run.label}: {run.path}"])
            except RefbenchError as e:
                part.analysis_why = str(e)
            try:
                key = (run.split_name, tuple(sorted(run.doc.identity.annotation_sha256.items())))
                if key not in splits:  # the split the analysis opened for this run, else opened (and checked) here
                    opened = [sp for (name, shas, _), (sp, _) in cache.items() if (name, shas) == key]
                    splits[key] = opened[0] if opened else open_run_split(run.doc, data_root)
                part.samples = RunSamples(run.doc, splits[key], run.records())
            except RefbenchError as e:
                part.samples_why = str(e)
            advance(1, run.label)
        body = [f'<section id="overview"><h2>Overview</h2>{_overview(runs)}</section>',
                f'<section id="published"><h2>Published vs reproduced</h2>{_published(runs)}</section>',
                f'<section id="curves"><h2>P@X curves and IoU histograms</h2>{_split_figures(runs)}</section>',
                '<section id="runs"><h2>Runs</h2>']
        for k, part in enumerate(parts):
            run = part.run
            badge = (f'<span class="badge partial">{H.esc(run.doc.identity.partial_text())}</span>'
                     if run.doc.partial else "")
            body.append(f'<details class="run" id="run-{k + 1}"{" open" if k == 0 else ""}><summary>'
                        f"{H.esc(run.label)} on {H.esc(run.split_name or run.doc.kind + ' run')}"
                        f'<span class="badge proto">{H.esc(run.doc.protocol.name)}</span>{badge}</summary>'
                        f"<h3>Provenance</h3>{_provenance(run)}"
                        f"<h3>Slices</h3>{_slices(part)}"
                        f"<h3>Gallery</h3>{_gallery(part, gallery, seed) if gallery else '<p class=hint>(--gallery 0)</p>'}"
                        f"<h3>Samples</h3>"
                        + (_sample_rows(part, str(k + 1)) if run.doc.records_path is not None
                           else f'<p class="hint">{H.esc(part.samples_why)}</p>')
                        + "</details>")
        body.append("</section>")
        body.append('<section id="definitions"><h2>Definitions</h2><ul class="notes">'
                    + "".join(f"<li>{H.esc(n)}</li>" for n in definition_notes()) + "</ul></section>")
    subtitle = (f"{len(runs)} run(s); generated {now_iso()} by refbench {__version__}; self-contained: nothing is "
                "loaded from the network")
    footer = ("Numbers are percent at full precision, per sentence, under the protocol each run states. "
              f"{H.esc(REPORT_SCHEMA)} v1.")
    toc = [("overview", "Overview"), ("published", "Published vs reproduced"), ("curves", "Curves"),
           ("runs", "Runs"), ("definitions", "Definitions")]
    write_text_atomic(out, H.page(title, subtitle, toc, "".join(body), footer))
    reporter.message(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


__all__ = ["build_report", "check_html_out"]
