"""``refbench table``: published tables regenerated, and reproduced runs beside them."""
from __future__ import annotations

from pathlib import Path

import click

from refbench.commands.options import BOOTSTRAP, SEED
from refbench.core.errors import RefbenchError


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    from refbench.core.results import write_text_atomic

    write_text_atomic(out, text)
    click.echo(f"wrote {out}", err=True)


def _listing() -> str:
    import leaderboards

    lines = []
    for paper, title in leaderboards.papers().items():
        lines.append(f"{paper}: {title}")
        for lay in leaderboards.layouts(paper):
            lines.append(f"  {lay.table:<4} {lay.kind:<10} {lay.caption[:90]}")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--paper", help="Paper: magnet, dmmi, meres, jmceln (or refbench: its synthetic reference runs).")
@click.option("--table", "table_id", help="Table id as printed: 1, 2, 3a … ('3' = all of 3a-3f); default: all.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv"]), default="markdown",
              show_default=True, help="Output format.")
@click.option("--standalone", is_flag=True, help="LaTeX only: a complete document that compiles with pdflatex.")
@click.option("--results", "results_mode", is_flag=True,
              help="Compare reproduced runs: the arguments are results JSON files (records.jsonl beside them).")
@click.option("--reproduced", is_flag=True, help="Also compare the runs listed in leaderboards/reproduced/index.json.")
@click.option("--against", help="With --results: show the runs inside this published table, e.g. magnet:1.")
@click.option("--metric", default="mIoU", show_default=True, help="Metric of the seen/unseen table.")
@click.option("--bootstrap", default=1000, show_default=True, type=BOOTSTRAP,
              help="Bootstrap resamples for CIs missing from a results file and for paired tests.")
@click.option("--permutations", default=10000, show_default=True, type=click.IntRange(0, 10_000_000), help="Permutations of the paired test.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of bootstrap and permutations.")
@click.option("--list", "list_tables", is_flag=True, help="List the papers and their tables.")
@click.option("--conflicts", is_flag=True,
              help="Show where the papers print a number under different metrics or values.")
@click.option("--out", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def table(paper: str | None, table_id: str | None, fmt: str, standalone: bool, results_mode: bool,
          reproduced: bool, against: str | None, metric: str, bootstrap: int, permutations: int, seed: int,
          list_tables: bool, conflicts: bool, out: Path | None, paths: tuple[Path, ...]) -> None:
    """Regenerate a paper's results table, or put reproduced numbers beside the published ones.

    \b
    Examples:
      refbench table --paper magnet --table 1 --format latex
      refbench table --results runs/magnet_val/results.json runs/lavt_val/results.json --against magnet:1
      refbench table --conflicts
    """
    from refbench.core.outdir import check_output
    from refbench.tables import published_tables, render

    if out is not None:
        check_output(out, "--out", folder=False, inputs=paths)
    if standalone and fmt != "latex":
        raise RefbenchError("--standalone applies to --format latex only")
    if list_tables:
        _emit(_listing(), out)
        return
    if conflicts:
        from refbench.tables.conflicts import conflicts_table

        _emit(render([conflicts_table()], fmt, standalone), out)
        return
    if results_mode or reproduced:
        if paper or table_id:
            raise RefbenchError("--paper/--table and --results are separate modes; to show runs inside a "
                                "published table use --against paper:table")
        from refbench.tables.compare import compare_report
        from refbench.tables.select import parse_table_ref

        files = list(paths)
        if reproduced:
            import leaderboards

            runs = leaderboards.reproduced_runs()
            if not runs and not files:
                raise RefbenchError("leaderboards/reproduced/index.json lists no runs yet; pass results files "
                                    "with --results")
            files += [r.path() for r in runs]
        layout = parse_table_ref(against) if against else None
        tables = compare_report(files, layout, metric=metric, bootstrap=bootstrap, permutations=permutations, seed=seed)
        _emit(render(tables, fmt, standalone), out)
        return
    if paths:
        raise RefbenchError(f"{paths[0]}: results files need --results (refbench table --results FILE …)")
    if against:
        raise RefbenchError("--against needs --results and results files")
    if not paper:
        raise RefbenchError("say which table: --paper magnet|dmmi|meres|jmceln [--table N], or --results FILE …, "
                            "or --list")
    _emit(render(published_tables(paper.lower(), table_id), fmt, standalone), out)
