"""refbench table: regenerated paper tables, renderers, published-vs-reproduced, bad input."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import leaderboards
from refbench.core.errors import RefbenchError
from refbench.metrics import RISMetrics, bootstrap_ci
from refbench.core.results import results_document, write_json_atomic, write_records_jsonl
from refbench.tables import published_tables, render
from refbench.tables.compare import load_runs
from refbench.tables.conflicts import metric_conflicts, value_conflicts

# Table 1 of each paper, rows as printed (method as printed, in the paper's order)
TABLE1_ROWS = {
    "magnet": ["VLT", "ReSTR", "CRIS", "LAVT", "VPD", "CoupAlign", "PVD", "SADLR", "MCRES", "ReLA", "MagNet (Ours)",
               "SEEM†", "LISA-7B†", "PolyFormer†", "MagNet‡ (Ours)"],
    "dmmi": ["RRN", "MAttNet", "CAC", "LSCM", "CMPC+", "MCN", "EFN", "BUSNet", "CGAN", "LTS", "VLT", "DMMI (Ours)",
             "ReSTR", "CRIS", "LAVT", "DMMI (Ours)"],
    "meres": ["MCN", "LTS", "CRIS", "JMCELN", "PVD", "VG-LAW", "MERES (Ours)", "CMPC", "ReSTR", "LAVT", "CoupAlign",
              "VLTA", "ReLA", "DMMI", "SADLR", "CGFormer", "MERES (Ours)"],
    "jmceln": ["RMI", "RRN", "CMSA", "BRINet", "CMPC", "LSCM", "MCN", "CGAN", "LTS", "EFN", "VLT", "CRIS", "LAVT",
               "Ours"],
}


def _method_column(table) -> int:
    return table.label_headers.index("Method")


@pytest.mark.parametrize("paper", sorted(TABLE1_ROWS))
def test_table1_has_the_papers_rows_in_order(paper):
    (t,) = published_tables(paper, "1")
    j = _method_column(t)
    assert [row.labels[j] for row in t.rows] == TABLE1_ROWS[paper]


def test_table1_row_count_matches_the_paper_text():
    """Independent of the list above: count the data lines of each Table 1 in the paper text."""
    from test_leaderboards import block_of, value_tokens

    for paper in TABLE1_ROWS:
        data_lines = [ln for ln in block_of(paper, "1") if len(value_tokens(ln)) >= 2]
        (t,) = published_tables(paper, "1")
        assert len(t.rows) == len(data_lines), paper


def test_marks_bold_best_underline_second_and_ties():
    (t2,) = published_tables("magnet", "2")
    by_method = {row.labels[0]: row for row in t2.rows}
    assert by_method["MagNet (ours)"].cells[0].mark == "best"           # oIoU 75.24
    assert by_method["MCRES"].cells[0].mark == "second"                 # oIoU 74.92
    assert by_method["SADLR"].cells[1].mark == "second"                 # mIoU 76.52 (underlined in the paper)
    assert by_method["MCRES"].cells[1].text == "-" and by_method["MCRES"].cells[1].mark is None
    (t3,) = published_tables("jmceln", "3")
    assert [c.mark for c in t3.rows[2].cells] == [None, None, "best"]   # LAVT testB Pr@90 24.34 ties Ours
    assert [c.mark for c in t3.rows[3].cells] == ["best", "best", "best"]
    (d1,) = published_tables("dmmi", "1")                               # best per part of the table
    assert [c.mark for c in d1.rows[11].cells] == ["best"] * 9 and [c.mark for c in d1.rows[15].cells] == ["best"] * 9
    assert all(c.mark is None for row in published_tables("meres", "2")[0].rows for c in row.cells)


def test_deltas_as_the_paper_prints_them():
    (d,) = published_tables("magnet", "3d")
    assert [c.delta for c in d.rows[5].cells] == ["(+0.83)", "(+1.39)"]  # CRIS + MG vs CRIS
    assert all(c.delta == "" for c in d.rows[4].cells)
    (j,) = published_tables("jmceln", "3")
    assert [c.delta for c in j.rows[3].cells] == ["(+0.50)", "(+1.07)", "(+0.00)"]
    (m,) = published_tables("meres", "4a")
    assert [c.delta for c in m.rows[0].cells] == ["(-1.86)", "(-1.99)"]


def test_table_3_means_all_sub_tables():
    assert [t.key for t in published_tables("magnet", "3")] == [f"magnet-3{x}" for x in "abcdef"]
    assert [t.key for t in published_tables("meres", "4(b)")] == ["meres-4b"]


def test_markdown_rendering():
    text = render(published_tables("magnet", "2"), "markdown")
    assert "| Method | RefCOCO val oIoU |" in text
    assert "| MagNet (ours) | **75.24** | **77.43** |" in text
    assert "<u>74.92</u>" in text and "<u>76.52</u>" in text
    assert "Metrics: oIoU, mIoU, P@0.5, P@0.7, P@0.9 (%)" in text and "Protocol:" in text


def test_latex_rendering_is_booktabs_with_caption_metric_and_protocol():
    tex = render(published_tables("magnet", "1"), "latex")
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){4-6}", r"\multicolumn{3}{c}{RefCOCO}",
                   r"\textbf{75.24}", r"MagNet\textsuperscript{\ddag} (Ours)", r"\label{tab:magnet-1}",
                   "Metric: oIoU (\\%)", "Protocol: MagNet rows"):
        assert needle in tex, needle
    assert "resizebox" not in tex and "scalebox" not in tex  # never scaled to a fraction of the text size
    assert r"\underline{74.92}" in render(published_tables("magnet", "2"), "latex")
    # 15 data rows + header rows; section rule between the two blocks
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    assert body.count(r"\\") == 15 and body.count(r"\midrule") == 1
    assert not re.search(r"[^\x00-\x7f]", render(published_tables("dmmi", "3"), "latex").replace("–", "")), \
        "LaTeX output must be ASCII (symbols escaped)"


def test_csv_rendering_round_trips_the_values():
    (t,) = published_tables("meres", "2")
    rows = list(csv.reader(io.StringIO(render([t], "csv"))))
    assert rows[0] == ["Method", "Vision Encoder", "Language Encoder", "G-Ref val (U) seen", "G-Ref val (U) unseen",
                       "G-Ref test (U) seen", "G-Ref test (U) unseen", "G-Ref val (G) seen", "G-Ref val (G) unseen"]
    values = {(n.row, n.dataset, n.split, n.subset): n.text for n in leaderboards.numbers("meres", "2")}
    assert rows[4][3:] == [values[(4, ds, sp, sub)] for ds, sp in
                           [("refcocog-umd", "val"), ("refcocog-umd", "test"), ("refcocog-google", "val")]
                           for sub in ("seen", "unseen")]
    assert "(-1.86)" not in render(published_tables("meres", "4a"), "csv")


def _pdflatex() -> str:
    from conftest import required_tool

    return required_tool("pdflatex", "apt-get install texlive-latex-base texlive-latex-recommended")


def test_latex_of_every_table_compiles(tmp_path):
    exe = _pdflatex()
    tables = [t for p in leaderboards.papers("paper") for t in published_tables(p)]
    (tmp_path / "all.tex").write_text(render(tables, "latex", standalone=True))
    out = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "all.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "all.pdf").stat().st_size > 10_000
    log = (tmp_path / "all.log").read_text(errors="replace")
    assert "Missing character" not in log and "Undefined control sequence" not in log
    overfull = [float(x) for x in re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide\) in alignment", log)]
    assert not [x for x in overfull if x > 20], f"tables wider than the page: {overfull}"


def test_reproduced_tables_stay_legible(tmp_path):
    """A table with reproduced values beside every published one is written one value per line (longtable):
    it compiles without scaling and without running off the page; a wide published table is split into
    column blocks that repeat the row labels."""
    from refbench.tables.compare import against_table, load_runs
    from refbench.tables.select import get_layout

    runs = load_runs([make_run(tmp_path / s, model="magnet", dataset="refcoco", split=s, seed=i)
                      for i, s in enumerate(("val", "testA", "testB"))])
    tex = render([against_table(get_layout("magnet", "1"), runs)], "latex")
    assert r"\begin{longtable}" in tex and "resizebox" not in tex
    assert "RefCOCO val &" in tex and "RefCOCO test A &" in tex and "RefCOCO test B &" in tex  # one line per value
    assert "ReSTR" not in tex  # rows without a reproduced value stay in the published table
    wide = render(published_tables("meres", "1"), "latex")
    assert "resizebox" not in wide
    caption = render(published_tables("refbench", "synth"), "latex")
    assert r"\texttt{refbench train}" in caption and "`" not in caption.split("\\caption", 1)[1].split("\n")[0]
    exe = _pdflatex()
    (tmp_path / "r.tex").write_text(render([against_table(get_layout("magnet", "1"), runs),
                                            *published_tables("meres", "1")], "latex", standalone=True))
    out = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "r.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    log = (tmp_path / "r.log").read_text(errors="replace")
    overfull = [float(x) for x in re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide\)", log)]
    assert not [x for x in overfull if x > 20], f"tables wider than the page: {overfull}"


# ---- CLI: published tables and bad input -------------------------------------------------------------------------
def test_cli_table_formats(run_cli):
    code, out, err = run_cli("table", "--paper", "dmmi", "--table", "2", "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[0] == "Method,Ref-ZOM test oIoU,Ref-ZOM test mIoU,Ref-ZOM test Acc"
    assert out.splitlines()[-1] == "DMMI (Ours),68.77,68.21,87.02"
    code, out, _ = run_cli("table", "--paper", "jmceln", "--table", "1", "--format", "latex", "--standalone")
    assert code == 0 and out.startswith(r"\documentclass{article}") and r"\end{document}" in out
    code, out, _ = run_cli("table", "--list")
    assert code == 0 and "4f" in out and "jmceln" in out


def test_cli_table_writes_file(run_cli, tmp_path):
    code, _, err = run_cli("table", "--paper", "meres", "--table", "7", "--out", tmp_path / "t7.md")
    assert code == 0 and "wrote" in err
    text = (tmp_path / "t7.md").read_text()
    assert "| Dataset | Split | Max | Min | Mean |" in text and "(words)" in text


@pytest.mark.parametrize("args,needle", [
    (("--paper", "magnett", "--table", "1"), "unknown paper 'magnett'. Did you mean 'magnet'?"),
    (("--paper", "dmmi", "--table", "4"), "paper 'dmmi' has no table '4'. Valid: 1, 2, 3"),
    (("--paper", "magnet", "--format", "csv", "--standalone"), "--standalone applies to --format latex only"),
    ((), "say which table"),
    (("x.json",), "results files need --results"),
    (("--results",), "no results files given"),
    (("--results", "--against", "magnet", "x.json"), "use paper:table"),
    (("--results", "--against", "magnet:3", "x.json"), "names 6 tables"),
])
def test_cli_bad_input_is_one_line_exit_2(run_cli, args, needle):
    code, out, err = run_cli("table", *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


# ---- results files ------------------------------------------------------------------------------------------------
def make_run(root: Path, model="magnet", variant="paper", dataset="refcoco", split="val", subset=None, seed=1,
             noise=0.1, n=120, protocol="lavt", records=True, ci=True, ids_from=0) -> Path:
    """An eval-like results file (+ records.jsonl) scored from generated masks."""
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(n, 24, 24, generator=g) > 0.5
    pred = gt ^ (torch.rand(n, 24, 24, generator=torch.Generator().manual_seed(seed)) < noise)
    acc = RISMetrics(protocol)
    acc.update(pred, gt, [f"s{i + ids_from}" for i in range(n)])
    report = acc.report()
    intervals = bootstrap_ci(acc.records, acc.protocol, n_resamples=200, seed=0) if ci else None
    split_name = f"{dataset}/{split}" + (f":{subset}" if subset else "")
    doc = results_document(report, "eval", intervals, "percentile bootstrap, 200 resamples" if ci else None,
                           model=model, variant=variant, dataset=dataset, split=split, subset=subset,
                           split_name=split_name)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "results.json", doc)
    if records:
        write_records_jsonl(root / "records.jsonl", acc.records)
    return root / "results.json"


def test_against_table_shows_published_slash_reproduced(run_cli, tmp_path):
    path = make_run(tmp_path / "m")
    doc = json.loads(path.read_text())
    rep, (lo, hi) = doc["metrics"]["oIoU"], doc["ci"]["oIoU"]
    code, out, err = run_cli("table", "--results", path, "--against", "magnet:1", "--permutations", 200)
    assert code == 0, err
    magnet_row = next(ln for ln in out.splitlines() if ln.startswith("|  | MagNet (Ours) |"))
    assert f"**75.24** / {rep:.2f} ({rep - 75.24:+.2f}, [{lo:.2f}, {hi:.2f}])" in magnet_row
    multi_row = next(ln for ln in out.splitlines() if "MagNet‡" in ln)
    assert " / " not in multi_row                       # variant 'paper' is not the multi-dataset model
    # the comparison table: oIoU from magnet:1; no paired test with a single run
    assert f"| magnet/paper | refcoco/val | oIoU | 75.24 | magnet:1 | {rep:.2f} | {rep - 75.24:+.2f} |" in out
    assert "Paired tests" not in out


def test_variant_selects_the_more_specific_row(run_cli, tmp_path):
    path = make_run(tmp_path / "all", variant="all")  # the registry variant of magnet_all.pth
    code, out, _ = run_cli("table", "--results", path, "--against", "magnet:1", "--permutations", 100)
    assert code == 0
    assert " / " in next(ln for ln in out.splitlines() if "MagNet‡" in ln)
    assert " / " not in next(ln for ln in out.splitlines() if ln.startswith("|  | MagNet (Ours) |"))


def test_without_against_the_models_own_paper_comes_first(tmp_path):
    from refbench.tables.compare import compare_report

    tables = compare_report([make_run(tmp_path / "d", model="dmmi", variant="swin-b", dataset="refcocog-umd")],
                            permutations=100)
    rows = {row.labels[2]: row for row in tables[0].rows}
    assert rows["oIoU"].cells[0].text == "63.45" and rows["oIoU"].cells[1].text == "dmmi:1"  # not MERES's 63.46
    assert rows["mIoU"].cells[0].text == "-"


def test_paired_test_for_two_runs_on_the_same_samples(run_cli, tmp_path):
    a = make_run(tmp_path / "a", seed=1, noise=0.05)
    b = make_run(tmp_path / "b", seed=2, noise=0.25)
    c = make_run(tmp_path / "c", model="lavt", split="testA", seed=3)
    code, out, err = run_cli("table", "--results", a, b, c, "--permutations", 500, "--bootstrap", 200)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("| refcoco/val | magnet/paper [a/results.json] |")
                and "| oIoU |" in ln)
    cells = [x.strip() for x in line.strip("|").split("|")]
    va, vb, delta, ci, p = cells[4:9]
    assert float(delta) == pytest.approx(float(va) - float(vb), abs=0.011) and float(delta) > 10
    assert float(p) < 0.01                                # clearly different predictors
    assert "lavt/paper" not in out.split("Paired tests")[1]  # other split: not paired


def test_paired_test_skipped_without_records_or_same_samples(run_cli, tmp_path):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", records=False, seed=2)
    c = make_run(tmp_path / "c", ids_from=1000, seed=3)
    code, out, _ = run_cli("table", "--results", a, b, c, "--permutations", 100, "--bootstrap", 100)
    assert code == 0
    assert "skipped: no records.jsonl beside" in out
    assert "skipped: paired test needs the same samples in both runs" in out


def test_missing_ci_is_bootstrapped_from_records(tmp_path):
    (run,) = load_runs([make_run(tmp_path / "a", ci=False)])
    assert run.ci == {}
    from refbench.tables.compare import fill_missing_ci

    fill_missing_ci([run], 200, 0)
    lo, hi = run.ci["oIoU"]
    assert lo < run.metrics["oIoU"] < hi and "records.jsonl" in run.ci_source


def test_generalization_table_has_seen_unseen_columns(tmp_path):
    from refbench.tables.compare import compare_report

    paths = [make_run(tmp_path / s, model="meres", dataset="refcocog-umd", subset=s, seed=i)
             for i, s in enumerate(("seen", "unseen"))]
    tables = compare_report(paths, permutations=100, bootstrap=100)
    gen = next(t for t in tables if t.key == "generalization")
    assert gen.groups == [("refcocog-umd/val", 2)] and gen.column_headers == ["seen", "unseen"]
    seen, unseen = gen.rows[0].cells
    assert seen.text == "66.52" and unseen.text == "46.74"            # MERES Table 2
    assert seen.extra.startswith("/ ") and unseen.extra.startswith("/ ")


def test_protocol_mismatch_is_noted(tmp_path):
    from refbench.tables.compare import compare_report

    tables = compare_report([make_run(tmp_path / "z", model="dmmi", variant="swin-b", dataset="ref-zom",
                                      split="test", protocol="lavt")], permutations=100)
    assert any("scored with protocol lavt [" in n and "dmmi:2 reports protocol refzom [" in n
               for n in tables[0].notes)


def _write_masks(root, n=12, size=32):
    """GT PNG masks (every sixth empty) and noisy copies of them, as `refbench score` reads them."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for kind in ("gt", "noisy"):
        (root / kind).mkdir(parents=True)
    for i in range(n):
        gt = np.zeros((size, size), bool)
        if i % 6:
            y, x = rng.integers(0, size // 2, 2)
            gt[y:y + size // 3, x:x + size // 3] = True
        noisy = gt ^ (rng.random((size, size)) < 0.03) if i % 6 else gt
        for kind, m in (("gt", gt), ("noisy", noisy)):
            Image.fromarray(m.astype(np.uint8) * 255).save(root / kind / f"s{i:04d}.png")


def test_score_documents_are_shown_without_published_numbers(run_cli, tmp_path):
    _write_masks(tmp_path / "masks")
    code, _, err = run_cli("score", "--pred", tmp_path / "masks/noisy", "--gt", tmp_path / "masks/gt",
                           "--json", tmp_path / "s/results.json", "--records", tmp_path / "s/records.jsonl",
                           "--bootstrap", 50)
    assert code == 0, err
    code, out, err = run_cli("table", "--results", tmp_path / "s/results.json", "--format", "csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out.split("\n\n")[0])))
    assert rows[1][:4] == ["results", "-", "oIoU", "-"]


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.update(schema_version=3), "results schema version 3 is not supported"),
    (lambda d: d.update(schema="other.results"), "not a refbench results file"),
    (lambda d: d["identity"].pop("dataset"), "eval results file has no 'dataset'"),
    (lambda d: d["identity"].update(subset="maybe"), "field 'subset' is 'maybe'"),
    (lambda d: d["identity"].update(limit="all"), "field 'limit' must be an integer"),
    (lambda d: d.update(protocol_hash="0" * 16), "does not match its protocol"),
    (lambda d: d.update(records="../elsewhere.jsonl"), "field 'records' must be a file name"),
    (lambda d: d.update(kind="train"), "field 'kind' is 'train'"),
    (lambda d: d["metrics"].update(oIoU="high"), "metrics['oIoU'] is 'high'"),
])
def test_results_of_another_schema_are_refused(run_cli, tmp_path, mutate, needle):
    path = make_run(tmp_path / "r")
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    code, _, err = run_cli("table", "--results", path)
    assert code == 2 and err.startswith("error: ") and needle in err and err.count("\n") == 1, err


def test_reproduced_lists_the_shipped_reference_runs(run_cli):
    code, out, err = run_cli("table", "--reproduced", "--format", "csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out.split("\n\n")[0])))
    runs = {r[0] for r in rows[1:]}
    assert {"lavt/tiny", "magnet/tiny", "dmmi/tiny", "meres/tiny", "jmceln/tiny"} <= runs
    # the shipped results are the reference numbers themselves: every delta is zero
    assert all(r[6] in ("-0.00", "+0.00") for r in rows[1:] if r[3] != "-")


def test_reproduced_with_empty_index_is_a_clear_error(run_cli, monkeypatch):
    import leaderboards

    monkeypatch.setattr(leaderboards, "reproduced_runs", lambda: [])
    code, _, err = run_cli("table", "--reproduced")
    assert code == 2 and "lists no runs yet" in err


def test_no_such_results_file(run_cli, tmp_path):
    code, _, err = run_cli("table", "--results", tmp_path / "nope.json")
    assert code == 2 and "no such results file" in err


# ---- disagreements between the papers -------------------------------------------------------------------------------
def test_metric_conflicts_find_the_iou_ambiguity():
    found = {(c.method_key, c.split_name): {(n.paper, n.metric) for n in c.numbers} for c in metric_conflicts()}
    assert found[("cris", "refcoco/val")] == {("magnet", "oIoU"), ("dmmi", "oIoU"), ("meres", "mIoU")}
    assert found[("vlt", "refcoco+/testB")] == {("magnet", "oIoU"), ("dmmi", "oIoU"), ("jmceln", "mIoU")}
    assert ("mcn", "refcoco/val") in found and ("lts", "refcocog-umd/test") in found
    assert ("magnet", "refcoco/val") not in found


def test_value_conflicts_find_copy_differences():
    found = {(c.method_key, c.split_name): sorted(n.text for n in c.numbers) for c in value_conflicts()}
    assert found[("dmmi", "refcocog-umd/val")] == ["63.45", "63.46"]
    assert ("lavt", "refcoco/val") in found             # MagNet's 74.46 mIoU vs JMCELN's retrained 73.70


def test_cli_conflicts(run_cli):
    code, out, _ = run_cli("table", "--conflicts", "--format", "csv")
    assert code == 0 and "metric,cris,refcoco/val" in out and "value,dmmi,refcocog-umd/val" in out


def test_layout_mismatch_is_an_error():
    from refbench.tables.grid import build_published
    from refbench.tables.select import get_layout

    with pytest.raises(RefbenchError, match="fits 0 columns"):
        build_published(get_layout("magnet", "2"), leaderboards.numbers("magnet", "1"))


def test_against_places_runs_by_split_in_tables_with_split_rows(tmp_path):
    """JMCELN Table 3 has LAVT twice (testA, testB rows): a testA run must land in the testA row only."""
    from refbench.tables.compare import against_table, load_runs
    from refbench.tables.select import get_layout

    (run,) = load_runs([make_run(tmp_path / "l", model="lavt", dataset="refcoco+", split="testA")])
    t = against_table(get_layout("jmceln", "3"), [run])
    assert all(c.extra.startswith("/ ") for c in t.rows[0].cells)          # mIoU, P@0.5, P@0.9 of testA
    assert not any(c.extra for row in t.rows[1:] for c in row.cells)
    (m,) = load_runs([make_run(tmp_path / "m", model="meres", dataset="refcoco+", split="val")])
    t1 = against_table(get_layout("meres", "1"), [m])
    meres_rows = [row for row in t1.rows if row.key == "meres"]
    assert [bool(row.cells[3].extra) for row in meres_rows] == [True, True]   # mIoU block and oIoU block
    assert meres_rows[0].cells[3].extra.startswith("/ ") and meres_rows[0].cells[3].text == "68.63"


def test_protocol_of_the_multi_dataset_magnet_row_is_lavt_448(tmp_path):
    from refbench.tables.compare import compare_report
    from refbench.tables.select import parse_table_ref

    ok = compare_report([make_run(tmp_path / "a", variant="all", protocol="lavt-448")], parse_table_ref("magnet:1"),
                        permutations=100)
    assert not any("not directly comparable" in n for t in ok for n in t.notes)
    bad = compare_report([make_run(tmp_path / "b", variant="all", protocol="lavt")], parse_table_ref("magnet:1"),
                         permutations=100)
    assert any("magnet:1 reports protocol lavt-448" in n for n in bad[0].notes)
