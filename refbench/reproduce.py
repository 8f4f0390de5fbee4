"""``refbench reproduce paper:table``: regenerate a paper's table from checkpoints and data.

1. **Plan.**  The table's rows that are refbench models (``magnet``, ``magnet-all`` = variant
   ``all``, ``lavt``, ``dmmi-resnet101`` …) times the (dataset, split, subset) of their published
   numbers give the *cells*; one evaluation per cell yields every metric of that split.  Each
   cell's protocol is the table's (``Layout.protocol_for``), its checkpoint comes from
   ``--checkpoint CELL=PATH``, else from the manifest ``leaderboards/checkpoints.csv`` (official
   file names, looked up in ``--checkpoints DIR`` and refbench's shipped weights).
2. **Run** the cells that have no finished results yet with ``refbench eval``'s runner under
   ``OUT/cells/<row>/<split>/`` (resumable: an interrupted reproduction continues).
3. **Render** the paper's table with ``published / reproduced (Δ, 95% CI)`` in every reproduced
   cell and ``missing`` where a checkpoint or data is absent (never silently skipped), as LaTeX
   and Markdown, plus ``reproduce.json`` listing every cell with its status and results file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import click

from refbench.core.errors import RefbenchError
from refbench.core.models import get_model_info, registry, shipped_checkpoint

#: rough CPU seconds per sample at batch 1 on the 2-core development machine (benchmarks/model_speed.py),
#: used only for --dry-run estimates; tiny variants are ~0.02 s
CPU_SECONDS_PER_SAMPLE = {"lavt": 4.0, "magnet": 16.0, "dmmi": 22.0, "meres": 18.0, "jmceln": 31.0}
#: paper-variant forward GFLOPs (benchmarks/model_speed.py, 2 FLOPs per multiply-add) for GPU estimates
GFLOPS = {"lavt": 398.0, "magnet": 327.7, "dmmi": 722.1, "meres": 241.6, "jmceln": 693.6}
ASSUMED_GPU_TFLOPS = 100.0  # effective bf16 throughput assumed for --dry-run estimates on CUDA


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
    metrics: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.row}:{self.split}"


def _row_model(method_key: str) -> tuple[str, str] | None:
    """(model, variant) for a table row that is a registered model, else None."""
    names = registry()
    if method_key in names:
        info = get_model_info(method_key)
        return method_key, info.variants[0]
    model, _, variant = method_key.rpartition("-")
    if model in names and variant in get_model_info(model).variants:
        return model, variant
    return None


def _parse_explicit(specs: tuple[str, ...]) -> dict[str, Path]:
    """``--checkpoint ROW[@DATASET]=PATH`` (ROW like magnet or magnet-all) -> {selector: path}."""
    out = {}
    for spec in specs:
        sel, sep, path = spec.partition("=")
        if not sep or not sel or not path:
            raise RefbenchError(f"--checkpoint {spec!r}: use ROW=PATH or ROW@DATASET=PATH, e.g. "
                                "magnet@refcoco+=ckpt/magnet_refcoco+.pth")
        if not Path(path).is_file():
            raise RefbenchError(f"--checkpoint {spec!r}: {path} does not exist")
        out[sel.strip()] = Path(path)
    return out


def _find_file(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for cand in (d / name, *sorted(d.glob(f"*/{name}"))):
            if cand.is_file():
                return cand
    return None


def _data_available(split: str, data_root: str | None) -> bool:
    from refbench.data.layout import find_dataset_files, resolve_data_root
    from refbench.data.splits import parse_split

    d = parse_split(split).definition
    root = resolve_data_root(data_root)
    if d.synthetic and root is None:
        return True  # the default synthetic benchmark is built into the cache on first use
    return root is not None and root.is_dir() and find_dataset_files(root, d) is not None


def plan(table_ref: str, out: Path, checkpoints: Path | None = None, explicit: tuple[str, ...] = (),
         data_root: str | None = None, rows: tuple[str, ...] = (), device: str = "cpu") -> tuple[object, list[Cell]]:
    """The layout and every cell of ``table_ref`` (``paper:table``) with its status."""
    import leaderboards

    from refbench.data.splits import parse_split
    from refbench.tables.layouts import parse_table_ref

    layout = parse_table_ref(table_ref)
    numbers = leaderboards.published(layout.paper, layout.table)
    keys = list(dict.fromkeys(n.method_key for n in numbers))
    # default: the paper's own model row; for refbench's reference tables, every model row
    wanted = set(rows) if rows else ({layout.paper} if layout.paper in keys else {"all"})
    skip, variants = dict(layout.unreproducible_rows), dict(layout.row_variants)
    unknown = [r for r in wanted if r not in ("all",) and r not in keys]
    if unknown:
        raise RefbenchError(f"{table_ref} has no row {unknown[0]!r}; rows that are refbench models: "
                            + ", ".join(k for k in keys if _row_model(k) and k not in skip))
    blocked = sorted(wanted & set(skip))
    if blocked:
        raise RefbenchError(f"{table_ref} row {blocked[0]!r} cannot be reproduced with refbench's models: "
                            f"{skip[blocked[0]]}")
    expl = _parse_explicit(explicit)
    search = [checkpoints] if checkpoints else []
    if checkpoints is not None and not checkpoints.is_dir():
        raise RefbenchError(f"--checkpoints {checkpoints}: no such directory")
    cells: list[Cell] = []
    for key in keys:
        if "all" not in wanted and key not in wanted:
            continue
        mv = _row_model(key)
        if mv is None or key in skip:
            continue
        model, variant = mv[0], variants.get(key, mv[1])
        info = get_model_info(model)
        splits = list(dict.fromkeys(n.split_name for n in numbers if n.method_key == key))
        for split in splits:
            sn = parse_split(split)
            protocol = layout.protocol_for(sn.dataset, key) or info.protocol_for(variant, sn.definition.format)
            cell_dir = out / "cells" / key / split.replace("/", "_").replace(":", "_")
            cell = Cell(key, model, variant, split, sn.dataset, protocol, None, None, "", str(cell_dir / "results.json"))
            entries = leaderboards.checkpoints_for(model, variant, sn.dataset)
            path = expl.get(f"{key}@{sn.dataset}") or expl.get(key)
            if path is None:
                for e in entries:
                    path = _find_file(e.file, search)
                    if path is None and "shipped" in e.source:
                        path = shipped_checkpoint(model, variant)
                    if path is not None:
                        cell.checkpoint_file, cell.source = e.file, e.source
                        break
            if entries and cell.checkpoint_file is None:
                cell.checkpoint_file, cell.source = entries[0].file, entries[0].source
            cell.checkpoint = str(path) if path else None
            d = sn.definition
            cell.expected_sentences = d.sentences.get(sn.split) if sn.subset is None else None
            per = (GFLOPS.get(model, 400.0) / (ASSUMED_GPU_TFLOPS * 1e3) if device.startswith("cuda")
                   else (0.02 if variant == "tiny" else CPU_SECONDS_PER_SAMPLE.get(model, 20.0)))
            if cell.expected_sentences:
                cell.estimate_s = round(per * cell.expected_sentences, 1)
            _status(cell, data_root)
            cells.append(cell)
    if not cells:
        raise RefbenchError(f"{table_ref}: no row of this table is a refbench model "
                            f"(rows: {', '.join(keys)}); choose rows with --rows")
    return layout, cells


def _status(cell: Cell, data_root: str | None) -> None:
    res = Path(cell.results)
    if res.is_file():
        from refbench.core.provenance import sha256_file
        from refbench.core.results import load_results

        doc = load_results(res)
        same_ckpt = cell.checkpoint is None or doc.get("checkpoint_sha256") == sha256_file(cell.checkpoint)
        if same_ckpt:
            cell.status, cell.metrics = "done", doc["metrics"]
            return
        cell.hint = "finished with another checkpoint; re-run"
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
    elif not _data_available(cell.split, data_root):
        cell.status = "missing-data"
        cell.hint = (f"no {cell.dataset} annotations under the data root; "
                     + ("build them with `refbench build-dataset synth --out ROOT` or leave --data-root out"
                        if cell.dataset.startswith("synth") else "see `refbench data check`"))
    else:
        cell.status = "todo"


def format_plan(cells: list[Cell]) -> str:
    lines = [f"{len(cells)} cell(s): " + ", ".join(f"{sum(c.status == s for c in cells)} {s}"
                                                   for s in ("done", "todo", "missing-checkpoint", "missing-data",
                                                             "failed") if any(c.status == s for c in cells))]
    for c in cells:
        est = f"  ~{c.estimate_s / 60:.1f} min" if c.estimate_s and c.status == "todo" else ""
        ck = c.checkpoint or (c.checkpoint_file or "?")
        lines.append(f"  [{c.status}] {c.key}  protocol {c.protocol}  checkpoint {ck}{est}")
        if c.hint:
            lines.append(f"      hint: {c.hint}")
    todo = [c.estimate_s for c in cells if c.status == "todo" and c.estimate_s]
    if todo:
        lines.append(f"estimated evaluation time: ~{sum(todo) / 60:.1f} min (rough: measured CPU latency or "
                     f"FLOPs at {ASSUMED_GPU_TFLOPS:g} TFLOP/s on GPU)")
    return "\n".join(lines)


def reproduce(table_ref: str, out: Path, checkpoints: Path | None = None, explicit: tuple[str, ...] = (),
              data_root: str | None = None, rows: tuple[str, ...] = (), device: str | None = None,
              precision: str = "fp32", batch_size: int | None = None, limit: int | None = None,
              bootstrap: int = 1000, dry_run: bool = False, echo: Callable[[str], None] = click.echo) -> dict:
    """Plan, run the missing evaluations, render the table; returns the reproduce.json document."""
    from refbench.eval import EvalConfig, evaluate

    out = Path(out)
    layout, cells = plan(table_ref, out, checkpoints, explicit, data_root, rows, device or "cpu")
    echo(format_plan(cells))
    if "all" in rows:
        for key, why in layout.unreproducible_rows:
            echo(f"  row {key} skipped: {why}")
    if dry_run:
        return {"table": layout.key, "cells": [asdict(c) for c in cells], "dry_run": True}
    for cell in cells:
        if cell.status != "todo":
            continue
        cell_dir = Path(cell.results).parent
        echo(f"\n== {cell.key} ({cell.protocol}) ==")
        try:
            doc = evaluate(EvalConfig(model=cell.model, variant=cell.variant, split=cell.split, out=cell_dir,
                                      checkpoint=cell.checkpoint, data_root=data_root, device=device,
                                      batch_size=batch_size, precision=precision, protocol=cell.protocol,
                                      limit=limit, resume=(cell_dir / "run.json").exists(), bootstrap=bootstrap),
                           echo=echo)
            cell.status, cell.metrics = "done", doc["metrics"]
        except RefbenchError as e:
            cell.status, cell.hint = "failed", str(e)
            echo(f"cell {cell.key} failed: {e}")
    tables = render(layout, cells, out)
    doc = {"table": layout.key, "out": str(out), "tables": tables, "cells": [asdict(c) for c in cells]}
    from refbench.core.results import write_json_atomic

    write_json_atomic(out / "reproduce.json", doc)
    echo(f"\nwrote {tables['markdown']}, {tables['latex']} and {out / 'reproduce.json'}")
    return doc


def render(layout, cells: list[Cell], out: Path) -> dict[str, str]:
    """The paper's table with reproduced values, 'missing' markers and notes, as Markdown and LaTeX."""
    from refbench.tables.compare import _cell_target, against_table, load_runs
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
            target = _cell_target(row, col, tcell)
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
    out.mkdir(parents=True, exist_ok=True)
    md.write_text(render_markdown(table) + "\n")
    tex.write_text(render_latex(table) + "\n")
    (out / f"{layout.paper}_{layout.table}_standalone.tex").write_text(latex_document([table]))
    return {"markdown": str(md), "latex": str(tex)}


__all__ = ["Cell", "plan", "reproduce", "render", "format_plan"]
