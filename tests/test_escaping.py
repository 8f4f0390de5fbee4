"""Strings from results files, CSVs and sentences are escaped for LaTeX, Markdown and matplotlib
(issue #18, part 6): a hostile results file renders as text, it never runs."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from refbench.tables.grid import Cell, Row, Table
from refbench.tables.latex import escape as latex_escape
from refbench.tables.latex import latex_document, render_latex
from refbench.tables.markdown import escape as md_escape
from refbench.tables.markdown import render_markdown

HOSTILE = "evil\n\\input{/etc/hostname}\r\n% & $x^2$ | # _ ~ ^ { } ` * [a](http://x) <script> \\\\ \x0c\u2028end"


def hostile_table() -> Table:
    return Table(key="re\nport}\\x", title=f"Title {HOSTILE}", caption=f"Caption {HOSTILE}",
                 label_headers=[f"Run {HOSTILE}"], column_headers=[f"Col {HOSTILE}"],
                 rows=[Row([HOSTILE], [Cell(HOSTILE, "best", delta=HOSTILE, extra=HOSTILE)]),
                       Row(["plain"], [Cell("1.00", "second")])],
                 groups=[(f"Group {HOSTILE}", 1)], notes=[HOSTILE, "second note\n\\input{/etc/passwd}"])


# Control sequences refbench itself writes; anything else in the output would come from the data.
OWN_COMMANDS = {"begin", "end", "centering", "caption", "label", "toprule", "midrule", "bottomrule", "cmidrule",
                "multicolumn", "textbf", "underline", "scriptsize", "textbackslash", "textasciitilde",
                "textasciicircum", "textsuperscript", "dag", "ddag", "surd", "times", "Delta", "geq", "leq", "pm",
                "texttt", "par", "medskip", "linewidth", "endfirsthead", "endhead", "endfoot",
                "clearpage", "documentclass", "usepackage", "makeatletter",
                "makeatother", "setlength", "@fptop", "&", "%", "$", "#", "_", "{", "}", "\\"}


def tex_commands(source: str) -> set[str]:
    """Control sequences TeX would execute: comments (an unescaped % to the end of the line) removed."""
    names = set()
    for line in source.splitlines():
        code = re.split(r"(?<!\\)%", line, maxsplit=1)[0]
        names.update(re.findall(r"\\([A-Za-z@]+|.)", code))
    return names


def test_latex_escape_handles_all_ten_specials_and_line_breaks():
    assert latex_escape("# $ % & ~ _ ^ \\ { }") == (r"\# \$ \% \& \textasciitilde{} \_ \textasciicircum{} "
                                                   r"\textbackslash{} \{ \}")
    assert latex_escape("a\nb\r\nc\x00d\u2029e") == "a b c d e"


def test_hostile_strings_cannot_run_tex():
    for src in (render_latex(hostile_table()), latex_document([hostile_table()])):
        assert tex_commands(src) <= OWN_COMMANDS, tex_commands(src) - OWN_COMMANDS
        assert "input" not in tex_commands(src)
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", src)
        notes = [ln for ln in src.splitlines() if ln.startswith("% note:")]
        assert len(notes) == 2 and "/etc/passwd" in notes[1]  # each note stays on its own comment line
        assert r"\label{tab:re-port--x}" in src


def test_hostile_table_compiles_without_reading_the_file(tmp_path):
    from conftest import required_tool

    pdflatex = required_tool("pdflatex", "apt-get install texlive-latex-base texlive-latex-recommended")
    secret = tmp_path / "secret.tex"
    secret.write_text("SECRETCONTENT\n")
    t = hostile_table()
    t.notes.append(f"x\n\\input{{{secret}}}")
    t.rows[0].labels = [f"y\n\\input{{{secret}}}"]
    (tmp_path / "doc.tex").write_text(latex_document([t]), encoding="utf-8")
    proc = subprocess.run([pdflatex, "-interaction=nonstopmode", "-no-shell-escape", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert f"({secret}" not in log and "SECRETCONTENT" not in log  # TeX logs every file it opens
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "doc.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
        assert "SECRETCONTENT" not in text and "input" in text  # the hostile text is printed, not run


def test_markdown_escape_keeps_text_literal_on_one_line():
    out = md_escape(HOSTILE)
    assert "\n" not in out and "\r" not in out
    assert r"\|" in out and r"\`" in out and r"\$x^2\$" in out and r"\<script\>" in out and r"\#" in out
    assert "](" not in out and r"\*" in out and r"\_" in out and r"\&" in out and r"\\\\" in out
    assert md_escape("[81.6, 82.4]") == "[81.6, 82.4]"  # plain brackets stay readable


def test_hostile_markdown_table_keeps_its_shape():
    md = render_markdown(hostile_table())
    lines = md.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    assert len(table) == 4  # header, rule, two rows: no string broke a row
    for ln in table:
        assert len(re.findall(r"(?<!\\)\|", ln)) == 3  # two cells each: every pipe from the data is escaped
    assert not any(ln.lstrip().startswith(("#", ">", "<")) for ln in lines)
    assert sum(ln.startswith("- ") for ln in lines) == 2


def _hostile_results(tmp_path, run_cli):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    m = np.zeros((8, 8), np.uint8)
    m[:3, :3] = 1
    for d in (gt, pred):
        Image.fromarray(m).save(d / "s1.png")
    code, _, err = run_cli("score", "--pred", pred, "--gt", gt, "--json", tmp_path / "r.json", "--records",
                           tmp_path / "records.jsonl", "--bootstrap", "20")
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    doc["identity"]["model"] = "lavt\n\\input{/etc/hostname}"
    doc["identity"]["variant"] = "$x^2$ | % & \\ # _ ~ ^ { } `c` <b> $\\frac{$"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc))
    return path


def test_hostile_results_file_through_refbench_table(tmp_path, run_cli):
    path = _hostile_results(tmp_path, run_cli)
    code, tex, err = run_cli("table", "--results", path, "--format", "latex", "--bootstrap", "0")
    assert code == 0, err
    assert "input" not in tex_commands(tex) and tex_commands(tex) <= OWN_COMMANDS
    assert r"lavt \textbackslash{}input\{/etc/hostname\}" in tex
    code, md, err = run_cli("table", "--results", path, "--bootstrap", "0")
    assert code == 0, err
    rows = [ln for ln in md.splitlines() if ln.startswith("| lavt")]
    assert rows and all(r"\$x^2\$ \| % \& \\ \# \_ \~ ^ { } \`c\` \<b\>" in r for r in rows)


def test_hostile_labels_are_never_math_or_tex(tmp_path, run_cli):
    """``$x^2$`` and an unbalanced ``$\\frac{$`` are drawn literally; usetex in the rc is ignored."""
    import matplotlib
    from matplotlib import cbook
    from matplotlib.text import Text

    from refbench.tables import figure_io, overlays, plots

    made = []
    orig = figure_io.save_png

    def spy(fig, out, dpi=120):
        made.append(fig)
        return orig(fig, out, dpi)

    path = _hostile_results(tmp_path, run_cli)
    with matplotlib.rc_context({"text.usetex": True}):  # a user's matplotlibrc could say so
        plots.save_png = overlays.save_png = spy
        try:
            code, _, err = run_cli("plot", "compare", path, "--out", tmp_path / "c.png", "--bootstrap", "0")
            assert code == 0, err
            code, _, err = run_cli("plot", "iou-hist", path, "--out", tmp_path / "h.png")
            assert code == 0, err
            samples = [overlays.OverlaySample("$id$", np.ones((4, 4), bool), np.ones((4, 4), bool),
                                           sentence="the $\\frac{$ thing $x^2$")]
            overlays.plot_overlays(samples, tmp_path / "o.png", title="$\\input{x}$")
        finally:
            plots.save_png = overlays.save_png = orig
    assert len(made) == 3
    shown = []
    for fig in made:
        for t in fig.findobj(Text):
            s = t.get_text()
            assert not t.get_usetex()
            assert not t.get_parse_math() or not cbook.is_math_text(s), s
            shown.append(s.replace(r"\$", "$"))
    assert any("$x^2$" in s for s in shown) and any("$\\frac{$" in s for s in shown)
