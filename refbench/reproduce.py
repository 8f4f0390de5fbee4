"""``refbench reproduce paper:table``: regenerate a paper's table from checkpoints and data.

1. **Plan.**  The table's rows that are refbench models (:mod:`refbench.tables.match`) times the
   (dataset, split, subset) of their published numbers give the *cells*; one evaluation per cell
   yields every metric of that split.  A cell's protocol is the one its model declares for that
   variant and dataset (or the table's own, for refbench's reference table); its checkpoint comes
   from ``--checkpoint ROW[@DATASET]=PATH``, else from the model's declared checkpoint files
   (official names, looked up in ``--checkpoints DIR``, and refbench's shipped weights).
2. **Run** the cells that have no finished results for the same run identity under
   ``OUT/cells/<row>/<split>/`` (resumable).  A cell whose results describe another identity
   (another checkpoint, data, protocol, limit …) or only part of the split is recomputed, and the
   plan says why.
3. **Render** the paper's table with ``published / reproduced (Δ, 95% CI)`` in every reproduced
   cell and ``missing`` where a checkpoint or data is absent (never silently skipped), as LaTeX
   and Markdown, plus ``reproduce.json`` listing every cell with its status and results file, and
   ``report.html`` about the finished cells (:mod:`refbench.report.build`; with ``save_masks`` every
   cell also keeps its predicted masks, which the report's galleries show).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import leaderboards
from leaderboards import Layout
from refbench.core.errors import RefbenchError
from refbench.core.models import get_model_info
from refbench.core.outdir import MARKER, check_output, is_refbench_output, mark_output, remove_stale_files
from refbench.core.progress import SILENT, Reporter

#: effective bf16 throughput assumed for estimates on CUDA (TFLOP/s); CPU estimates use measured seconds
ASSUMED_GPU_TFLOPS = 100.0


@dataclass
class Cell:
    """One evaluation the table needs."""

    row: str                # the table's method_key, e.g. magnet-all
    model: str
    variant: str
    split: str              # split grammar, e.g. refcocog-umd/val:unseen
    dataset: str
    protocol: str
    checkpoint: str | None
    checkpoint_file: str | None
    source: str
    results: str
    status: str = "todo"    # done | todo | missing-checkpoint | missing-data | failed
    hint: str = ""
    expected_sentences: int | None = None
    estimate_s: float | None = None
    partial: str = ""       # "partial: N of M" for a run with --limit
    metrics: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.row}:{self.split}"

    @property
    def dir(self) -> Path:
        return Path(self.results).parent


def _parse_explicit(specs: tuple[str, ...], rows: dict[str, set[str]], table_ref: str) -> dict[str, Path]:
    """``--checkpoint ROW[@DATASET]=PATH`` -> {selector: path}; unknown rows and datasets are refused."""
    out = {}
    for spec in specs:
        sel, sep, path = spec.partition("=")
        sel = sel.strip()
        if not sep or not sel or not path:
            raise RefbenchError(f"--checkpoint {spec!r}: use ROW=PATH or ROW@DATASET=PATH, e.g. "
                                "magnet@refcoco+=ckpt/magnet_refcoco+.pth")
        row, _, dataset = sel.partition("@")
        if row not in rows:
            raise RefbenchError(f"--checkpoint {spec!r}: {table_ref} has no model row {row!r}; its model rows are "
                                + ", ".join(sorted(rows)))
        if dataset and dataset not in rows[row]:
            raise RefbenchError(f"--checkpoint {spec!r}: row {row} has no numbers on {dataset!r} in {table_ref} "
                                f"(it has {', '.join(sorted(rows[row]))})")
        if not Path(path).is_file():
            raise RefbenchError(f"--checkpoint {spec!r}: {path} does not exist")
        out[sel] = Path(path)
    return out


def _find_file(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for cand in (d / name, *sorted(d.glob(f"*/{name}"))):
            if cand.is_file():
                return cand
    return None


def _data_available(split: str, data_root: str | None, explicit: bool) -> bool:
    from refbench.data.layout import find_dataset_files, resolve_data_root
    from refbench.data.splits import parse_split

    d = parse_split(split).definition
    root = resolve_data_root(data_root)
    if root is not None and root.is_dir() and find_dataset_files(root, d) is not None:
        return True
    return d.synthetic and not (explicit and data_root is not None)  # the default synthetic benchmark is built


def _estimate(model: str, variant: str, sentences: int | None, device: str) -> float | None:
    cost = get_model_info(model).cost(variant)
    if cost is None or not sentences:
        return None
    per = cost.gflops / (ASSUMED_GPU_TFLOPS * 1e3) if device.startswith("cuda") else cost.cpu_s_per_sample
    return round(per * sentences, 1)


def _model_rows(layout: Layout) -> dict[str, tuple[str, str]]:
    from refbench.tables.match import row_model

    keys = dict.fromkeys(n.method_key for n in leaderboards.numbers(layout.paper, layout.table))
    return {k: mv for k in keys if (mv := row_model(k, layout)) is not None}


def plan(table_ref: str, out: Path, checkpoints: Path | None = None, explicit: tuple[str, ...] = (),
         data_root: str | None = None, rows: tuple[str, ...] = (), device: str = "cpu",
         data_root_explicit: bool = True, limit: int | None = None) -> tuple[Layout, list[Cell]]:
    """The layout and every cell of ``table_ref`` (``paper:table``) with its status."""
    from refbench.data.splits import parse_split
    from refbench.tables.match import dataset_format
    from refbench.tables.select import parse_table_ref

    layout = parse_table_ref(table_ref)
    numbers = leaderboards.numbers(layout.paper, layout.table)
    keys = list(dict.fromkeys(n.method_key for n in numbers))
    model_rows = _model_rows(layout)
    skip = layout.reproduce.unreproducible_rows
    wanted = set(rows) if rows else ({layout.paper} if layout.paper in keys else {"all"})
    unknown = [r for r in wanted if r != "all" and r not in keys]
    if unknown:
        raise RefbenchError(f"{table_ref} has no row {unknown[0]!r}; rows that are refbench models: "
                            + ", ".join(model_rows))
    blocked = sorted(wanted & set(skip))
    if blocked:
        raise RefbenchError(f"{table_ref} row {blocked[0]!r} cannot be reproduced with refbench's models: "
                            f"{skip[blocked[0]]}")
    not_models = sorted(r for r in wanted if r != "all" and r not in model_rows)
    if not_models:
        raise RefbenchError(f"{table_ref} row {not_models[0]!r} is not a refbench model; rows that are: "
                            + ", ".join(model_rows))
    datasets = {k: {n.dataset for n in numbers if n.method_key == k} for k in model_rows}
    expl = _parse_explicit(explicit, datasets, table_ref)
    if checkpoints is not None and not checkpoints.is_dir():
        raise RefbenchError(f"--checkpoints {checkpoints}: no such directory")
    search = [checkpoints] if checkpoints else []
    cells: list[Cell] = []
    for key, (model, variant) in model_rows.items():
        if "all" not in wanted and key not in wanted:
            continue
        info = get_model_info(model)
        for split in dict.fromkeys(n.split_name for n in numbers if n.method_key == key):
            sn = parse_split(split)
            protocol = layout.reproduce.protocol or info.protocol_for(variant, dataset_format(sn.dataset))
            cell_dir = out / "cells" / key / split.replace("/", "_").replace(":", "_")
            cell = Cell(key, model, variant, split, sn.dataset, protocol, None, None, "", str(cell_dir / "results.json"))
            path = expl.get(f"{key}@{sn.dataset}") or expl.get(key)
            entries = info.checkpoints_for(variant, sn.dataset)
            if path is None:
                for e in entries:
                    path = _find_file(e.file, search) or (info.shipped_checkpoint(variant) if e.kind == "shipped"
                                                          else None)
                    if path is not None:
                        cell.checkpoint_file, cell.source = e.file, e.source
                        break
            if entries and cell.checkpoint_file is None:
                cell.checkpoint_file, cell.source = entries[0].file, entries[0].source
            cell.checkpoint = str(path) if path else None
            cell.expected_sentences = sn.definition.sentences.get(sn.split) if sn.subset is None else None
            cell.estimate_s = _estimate(model, variant, cell.expected_sentences, device)
            _status(cell, data_root, data_root_explicit, limit)
            cells.append(cell)
    if not cells:
        raise RefbenchError(f"{table_ref}: no row of this table is a refbench model "
                            f"(rows: {', '.join(keys)}); choose rows with --rows")
    return layout, cells


def _status(cell: Cell, data_root: str | None, explicit: bool, limit: int | None = None) -> None:
    res = Path(cell.results)
    if res.is_file() and cell.checkpoint is not None:
        from refbench.core.provenance import sha256_file
        from refbench.core.results import read_results

        doc = read_results(res)
        if doc.identity.checkpoint_sha256 == sha256_file(cell.checkpoint) and doc.identity.limit == limit \
                and doc.protocol.name == cell.protocol:
            cell.status, cell.metrics, cell.partial = "done", doc.metrics, doc.identity.partial_text()
            return  # (the evaluation re-checks the whole identity before reusing it)
        cell.hint = "finished with other settings; recomputed"
    if cell.checkpoint is None:
        cell.status = "missing-checkpoint"
        if cell.checkpoint_file is None:
            cell.hint = (f"no known checkpoint for {cell.row} on {cell.dataset}; pass "
                         f"--checkpoint {cell.row}@{cell.dataset}=PATH")
        elif cell.source.startswith("refbench train"):
            cell.hint = (f"no released weights: train them ({cell.source} --out DIR), then pass "
                         f"--checkpoint {cell.row}@{cell.dataset}=DIR/best.pt")
        else:
            cell.hint = (f"put {cell.checkpoint_file} ({cell.source}) in --checkpoints DIR, or pass "
                         f"--checkpoint {cell.row}@{cell.dataset}=PATH")
    elif not _data_available(cell.split, data_root, explicit):
        cell.status = "missing-data"
        cell.hint = (f"no {cell.dataset} annotations under the data root; "
                     + (f"build them with `refbench build-dataset synth --out {data_root}` or leave --data-root out"
                        if cell.dataset.startswith("synth") else "see `refbench data check`"))
    else:
        cell.status = "todo"


def format_plan(cells: list[Cell]) -> str:
    """The plan as text: one line per cell with its status and time estimate, then the total."""
    statuses = ("done", "todo", "missing-checkpoint", "missing-data", "failed")
    lines = [f"{len(cells)} cell(s): " + ", ".join(f"{sum(c.status == s for c in cells)} {s}"
                                                   for s in statuses if any(c.status == s for c in cells))]
    for c in cells:
        est = f"  ~{_minutes(c.estimate_s)}" if c.estimate_s else "  (no estimate: split size unknown)"
        ck = c.checkpoint or (c.checkpoint_file or "?")
        lines.append(f"  [{c.status}] {c.key}  protocol {c.protocol}  checkpoint {ck}{est}")
        if c.hint:
            lines.append(f"      hint: {c.hint}")
    todo = [c.estimate_s for c in cells if c.status == "todo" and c.estimate_s]
    total = [c.estimate_s for c in cells if c.estimate_s]
    lines.append(f"estimated evaluation time: ~{_minutes(sum(todo))} for the {len(todo)} cell(s) to run "
                 f"(~{_minutes(sum(total))} for all; from each model's declared cost per sample: measured CPU "
                 f"seconds, or its GFLOPs at {ASSUMED_GPU_TFLOPS:g} TFLOP/s on CUDA)")
    return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    if not seconds:
        return "0 s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def reproduce(table_ref: str, out: Path, checkpoints: Path | None = None, explicit: tuple[str, ...] = (),
              data_root: str | None = None, rows: tuple[str, ...] = (), device: str | None = None,
              precision: str = "fp32", batch_size: int | None = None, limit: int | None = None,
              bootstrap: int = 1000, dry_run: bool = False, reporter: Reporter = SILENT,
              data_root_explicit: bool = True, save_masks: bool = False) -> dict:
    """Plan, run the missing evaluations, render the table and the HTML report; returns the reproduce.json
    document.  ``save_masks``: every cell writes its predicted masks (``refbench eval --save-masks``)."""
    from refbench.core.results import write_json_atomic
    from refbench.eval import EvalConfig, evaluate

    out = Path(out)
    check_output(out, "--out", inputs=[data_root, checkpoints, *[s.partition("=")[2] for s in explicit]])
    if out.exists() and any(out.iterdir()) and not is_refbench_output(out):
        raise RefbenchError(f"--out {out} holds files refbench did not make (no {MARKER}); choose a new --out")
    layout, cells = plan(table_ref, out, checkpoints, explicit, data_root, rows, device or "cpu", data_root_explicit,
                         limit)
    skipped = [f"  row {key} skipped: {why}" for key, why in layout.reproduce.unreproducible_rows.items()
               if "all" in rows]
    if dry_run:
        reporter.message("\n".join([format_plan(cells), *skipped]))
        return {"table": layout.key, "cells": [asdict(c) for c in cells], "dry_run": True}
    out.mkdir(parents=True, exist_ok=True)
    if not is_refbench_output(out):
        mark_output(out, "reproduce", table=layout.key)
    stem = f"{layout.paper}_{layout.table}"
    remove_stale_files(out, ["reproduce.json", f"{stem}.md", f"{stem}.tex", f"{stem}_standalone.tex", "report.html"])
    reporter.message("\n".join([format_plan(cells), *skipped]))
    for cell in cells:
        if cell.status not in ("todo", "done"):
            continue
        if cell.status == "todo":
            reporter.message(f"\n== {cell.key} ({cell.protocol}) ==")
        if cell.dir.exists() and not is_refbench_output(cell.dir) and not (cell.dir / "run.json").exists():
            cell.status, cell.hint = "failed", f"{cell.dir} holds files refbench did not make; move them away"
            continue
        # an existing cell is continued only when its whole identity matches (checkpoint, data, protocol,
        # limit, batches ...); otherwise the evaluation restarts and says which field differed
        cfg = EvalConfig(model=cell.model, variant=cell.variant, split=cell.split, out=cell.dir,
                         checkpoint=cell.checkpoint, data_root=data_root, data_root_explicit=data_root_explicit,
                         device=device, batch_size=batch_size, precision=precision, protocol=cell.protocol,
                         limit=limit, bootstrap=bootstrap, resume=(cell.dir / "run.json").exists(),
                         restart_on_mismatch=True, save_masks=save_masks)
        try:
            doc = evaluate(cfg, reporter if cell.status == "todo" else SILENT)
            cell.status, cell.metrics = "done", doc.metrics
            cell.partial = doc.identity.partial_text()
        except RefbenchError as e:
            cell.status, cell.hint = "failed", str(e)
            reporter.message(f"cell {cell.key} failed: {e}")
    tables = render(layout, cells, out)
    report = write_report(layout, cells, out, data_root if data_root_explicit else None, bootstrap, reporter)
    doc = {"table": layout.key, "out": str(out), "tables": tables, "report": str(report) if report else None,
           "cells": [asdict(c) for c in cells]}
    write_json_atomic(out / "reproduce.json", doc)
    reporter.message(f"\nwrote {tables['markdown']}, {tables['latex']}"
                     + (f", {report}" if report else "") + f" and {out / 'reproduce.json'}")
    return doc


def write_report(layout: Layout, cells: list[Cell], out: Path, data_root: str | None, bootstrap: int,
                 reporter: Reporter = SILENT) -> Path | None:
    """``OUT/report.html`` about the finished cells (None, with a message saying why, when none finished or
    the page could not be built: the tables and reproduce.json are written regardless)."""
    from refbench.report.build import build_report

    done = [c.results for c in cells if c.status == "done"]
    if not done:
        reporter.message("report.html not written: no cell finished")
        return None
    try:
        return build_report(done, out / "report.html", data_root=data_root, bootstrap=bootstrap,
                            title=f"refbench reproduce {layout.key}", reporter=reporter)
    except RefbenchError as e:
        reporter.message(f"report.html not written: {e}")
        return None


def render(layout: Layout, cells: list[Cell], out: Path) -> dict[str, str]:
    """The paper's table with reproduced values, 'missing' markers and notes, as Markdown and LaTeX."""
    from refbench.core.results import write_text_atomic
    from refbench.tables.compare import against_table, cell_target, load_runs
    from refbench.tables.latex import latex_document, render_latex
    from refbench.tables.markdown import render_markdown

    done = [c for c in cells if c.status == "done"]
    runs = load_runs([c.results for c in done]) if done else []
    for run, c in zip(runs, done):
        run.label = c.row
    table = against_table(layout, runs)
    by_target = {(c.row, c.dataset, *c.split.split("/", 1)[1].partition(":")[::2]): c for c in cells}
    for row in table.rows:
        for col, tcell in zip(layout.columns, row.cells):
            target = cell_target(row, col, tcell)
            if target is None or tcell.number is None:
                continue
            ds, sp, sub, _ = target
            c = by_target.get((row.key, ds, sp, sub or ""))
            if c is not None and c.status != "done":
                tcell.extra = f"{tcell.extra}; missing" if tcell.extra else "/ missing"
    missing = [c for c in cells if c.status != "done"]
    if missing:
        table.notes.append(f"{len(missing)} cell(s) not reproduced ('missing'): " + "; ".join(
            f"{c.key}: {c.status}{' - ' + c.hint if c.hint else ''}" for c in missing))
    md, tex = out / f"{layout.paper}_{layout.table}.md", out / f"{layout.paper}_{layout.table}.tex"
    write_text_atomic(md, render_markdown(table) + "\n")
    write_text_atomic(tex, render_latex(table) + "\n")
    write_text_atomic(out / f"{layout.paper}_{layout.table}_standalone.tex", latex_document([table]))
    return {"markdown": str(md), "latex": str(tex)}


__all__ = ["Cell", "plan", "reproduce", "render", "format_plan", "write_report"]
