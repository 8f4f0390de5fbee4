"""`refbench report`: one self-contained HTML page, checked as text and rendered in headless Chromium.

Chromium (Debian's ``chromium`` package) runs the page's scripts; the tests read the DOM after they ran and the
console log, and take a screenshot.  In CI (``CI=1``) a missing Chromium is a failure; elsewhere these tests
skip with the command that installs it.
"""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

HOSTILE = "<script>alert('x')</script> </script><img src=x onerror=alert(1)> $x^2$ & \u2028"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def chromium_path() -> str:
    from conftest import required_tool

    return shutil.which("chromium-browser") if shutil.which("chromium") is None and shutil.which("chromium-browser") \
        else required_tool("chromium", "apt-get install -y chromium")


def run_chromium(page, tmp_path, *args, timeout=120):
    """Chromium on ``page`` with ``args`` (--dump-dom or --screenshot=...); returns (stdout, console lines)."""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    cmd = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *map(str, args), page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


@pytest.fixture(scope="module")
def report(synth_tiny, tmp_path_factory):
    """A report of two runs: lavt (tiny) on synth/val with saved masks and a hostile note, magnet (tiny) on
    synth-zom/val without masks."""
    from refbench.eval import EvalConfig, evaluate
    from refbench.report.build import build_report

    base = tmp_path_factory.mktemp("report")
    masked, plain = base / "lavt run", base / "magnet"
    evaluate(EvalConfig(model="lavt", variant="tiny", split="synth/val", out=masked, data_root=str(synth_tiny),
                        batch_size=8, bootstrap=50, workers=0, save_masks=True))
    evaluate(EvalConfig(model="magnet", variant="tiny", split="synth-zom/val", out=plain, data_root=str(synth_tiny),
                        batch_size=8, bootstrap=50, workers=0))
    doc = json.loads((masked / "results.json").read_text())
    doc["notes"].append(HOSTILE)
    (masked / "results.json").write_text(json.dumps(doc))
    out = build_report([masked, plain / "results.json"], base / "report.html", bootstrap=50, gallery=4)
    return out


def test_report_is_one_self_contained_escaped_file(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)  # nothing loaded from anywhere
    assert "<link" not in text and "@import" not in text and "url(" not in text
    srcs = re.findall(r'<img src="([^"]{0,30})', text)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert "default-src 'none'" in text  # the browser is told to load nothing
    # the hostile note is text, never markup; scripts: the page's own plus one JSON island per sample table
    assert HOSTILE not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert len(re.findall(r"<script", text)) == 3
    assert len(re.findall(r'<script type="application/json"', text)) == 2
    for section in ("Overview", "Published vs reproduced", "P@X curves and IoU histograms", "Provenance", "Slices",
                    "Gallery", "Samples", "Definitions"):
        assert f">{section}<" in text, section
    assert "refbench:synth" in text  # published (reference) numbers matched for the shipped models
    assert text.count('<figure class="tile">') == 12  # worst, best, random x 4, for the run with masks
    assert "did not save its predicted masks" in text and "--save-masks" in text
    assert "spatial words: yes if the expression contains" in text


def test_report_renders_in_headless_chromium(report, tmp_path):
    dom, console = run_chromium(report, tmp_path, "--dump-dom")
    assert console == [], console  # no JS error, nothing logged
    assert 'data-scripts="ran"' in dom and dom.count('data-ready="yes"') == 2
    assert dom.count('class="sample-row"') == 35 + 52  # both per-sample tables drawn by the script
    assert dom.count('<figure class="tile">') == 12
    assert 'onerror="alert(1)"' not in dom and "<img src=\"x\"" not in dom
    shot = tmp_path / "report.png"
    _, console = run_chromium(report, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    assert console == []
    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        colors = np.unique(np.asarray(im.convert("RGB"))[::2, ::2].reshape(-1, 3), axis=0)
    assert len(colors) > 500  # text, tables, figures: a page with content, not a blank or error page


def test_the_console_check_catches_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _, console = run_chromium(page, tmp_path, "--dump-dom")
    assert any("undefinedFunction" in line for line in console)


def test_sample_table_sorts_filters_and_keeps_text_as_text(tmp_path):
    """The per-sample table's script, driven in Chromium: sort by a column, filter, hostile strings shown as text."""
    from refbench.report.html import page, sample_table

    rows = [[f"id{k}", f"sentence {k}" if k != 7 else "</script><script>document.body.setAttribute('pwned','1')"
             "</script>", "one" if k % 3 else "zero", round(k / 250, 4)] for k in range(250)]
    table = sample_table("samples-x", ["id", "sentence", "type", "score"], rows, {3: 3}, "caption", sort=3,
                         direction=-1, types=["zero", "one"])
    probe = """<script>
    (function () {
      var box = document.querySelector('div.sample-table');
      var first = function () { return box.querySelector('tbody tr td').textContent; };
      var out = [first(), box.querySelectorAll('tbody tr').length];
      box.querySelectorAll('thead th')[3].click();            /* sort by score: toggles to ascending */
      out.push(first());
      var q = box.querySelector('input[type=search]'); q.value = 'pwned'; q.dispatchEvent(new Event('input'));
      out.push(box.querySelectorAll('tbody tr').length, box.querySelector('tbody tr td:nth-child(2)').textContent);
      q.value = ''; q.dispatchEvent(new Event('input'));
      var sel = box.querySelector('select.type-filter'); sel.value = 'zero'; sel.dispatchEvent(new Event('change'));
      out.push(box.querySelector('.count').textContent);
      box.setAttribute('data-probe', JSON.stringify(out));
    })();
    </script>"""
    html = page("t", "s", [], table, "f").replace("</body>", probe + "</body>")
    path = tmp_path / "table.html"
    path.write_text(html)
    dom, console = run_chromium(path, tmp_path, "--dump-dom")
    assert console == [], console
    probe_json = re.search(r'data-probe="([^"]*)"', dom).group(1).replace("&quot;", '"').replace("&lt;", "<") \
        .replace("&gt;", ">").replace("&amp;", "&")
    first_desc, n_page, first_asc, n_hits, hit_text, count = json.loads(probe_json)
    assert first_desc == "id249" and n_page == 100 and first_asc == "id0"
    assert n_hits == 1 and hit_text.startswith("</script><script>")
    assert count == "rows 1-84 of 84 (filtered from 250)"
    assert ' pwned="1"' not in dom


def test_reproduce_writes_a_report_with_galleries(synth_tiny, tmp_path):
    from refbench.reproduce import reproduce

    out = tmp_path / "rep"
    doc = reproduce("refbench:synth", out, rows=("lavt-tiny",), data_root=str(synth_tiny), device="cpu",
                    bootstrap=20, save_masks=True)
    assert doc["report"] == str(out / "report.html")
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.count('<details class="run"') == 3 and text.count('<figure class="tile">') == 36
    assert "refbench reproduce refbench:synth" in text
    assert json.loads((out / "reproduce.json").read_text())["report"] == str(out / "report.html")


@pytest.mark.parametrize("args,needle", [
    (["--out", "{tmp}/r.txt"], "ending in .html"),
    (["--out", "{tmp}/r.html", "--gallery", "51"], "--gallery"),
    (["--out", "{tmp}/r.html", "--bootstrap", "-1"], "--bootstrap"),
])
def test_report_bad_input_one_line(args, needle, report, tmp_path, run_cli):
    run = report.parent / "lavt run"
    code, _, err = run_cli("report", run, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not list(tmp_path.glob("r.*"))
    code, _, err = run_cli("report", tmp_path, "--out", tmp_path / "r.html")
    assert code == 2 and "no results.json" in err
    code, _, err = run_cli("report", run, "--out", run / "results.json")
    assert code == 2 and ".html" in err


def test_overlay_drawing_is_visible_on_any_object_colour_and_sentences_are_plain_text(tmp_path):
    from refbench.tables.overlays import (GT_COLOR, PRED_COLOR, OverlaySample, draw_mask, gallery_tile, outline_band,
                                          plot_overlays)

    mask = np.zeros((120, 160), bool)
    mask[30:90, 40:120] = True
    for color in (GT_COLOR, PRED_COLOR, (0, 0, 0), (255, 255, 255)):
        image = np.zeros((120, 160, 3), np.uint8)
        image[mask] = color                      # an object exactly the overlay's colour, on black
        out = draw_mask(image, mask, PRED_COLOR)
        band = outline_band(mask, 2)
        assert (out[band] == PRED_COLOR).all()
        ring_in = outline_band(mask, 3) & ~band  # just inside the outline: the black halo
        ring_out = np.zeros_like(mask)
        ring_out[29:91, 39:121] = True
        ring_out &= ~mask                        # just outside: the black halo
        assert (out[ring_in] == 0).all() and (out[ring_out] == 0).all()
        inside = mask & ~outline_band(mask, 3)
        if tuple(color) != PRED_COLOR:  # the light fill tints the object (a same-coloured one keeps its colour)
            assert (out[inside] != image[inside]).any(axis=1).all()
    jpeg = gallery_tile(None, mask, np.roll(mask, 5, 1), side=100)
    assert jpeg[:2] == b"\xff\xd8"
    sample = OverlaySample("a$b", mask, np.roll(mask, 5, 1), None, r"the $\frac{ thing $x^2$ and 100% _odd_")
    png = plot_overlays([sample, OverlaySample("z", np.zeros_like(mask), np.zeros_like(mask))], tmp_path / "o.png",
                        title="unbalanced $ title")
    with Image.open(png) as im:
        assert im.size[0] > 600
