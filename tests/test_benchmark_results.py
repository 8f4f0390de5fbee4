"""benchmarks/results_md.py: one section replaced, every other byte kept."""
import importlib.util
import threading
from pathlib import Path

import pytest

from refbench.core.errors import RefbenchError


def _results_md():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results_md.py"
    spec = importlib.util.spec_from_file_location("results_md", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_section_replaced_others_byte_identical(tmp_path):
    rm = _results_md()
    md = tmp_path / "RESULTS.md"
    rm.replace_section("a", "first A", md)
    rm.replace_section("b", "first B\n\n| x |\n|---|\n| 1 |", md)
    text = md.read_text()
    assert text.startswith(rm.HEADER)
    # hand-written text between sections survives
    md.write_text(text + "\nfree text, kept\r\n  with odd spacing  \n")
    before = md.read_bytes()
    rm.replace_section("a", "second A, longer\nover two lines", md)
    after = md.read_bytes()
    a0, a1 = b"<!-- a:start -->", b"<!-- a:end -->"
    assert after[: after.index(a0)] == before[: before.index(a0)]
    assert after[after.index(a1):] == before[before.index(a1):]
    assert b"second A, longer\nover two lines" in after and b"first A" not in after
    rm.replace_section("a", "second A, longer\nover two lines", md)
    assert md.read_bytes() == after  # idempotent


def test_missing_file_and_section_created(tmp_path):
    rm = _results_md()
    md = tmp_path / "sub" / "RESULTS.md"
    rm.replace_section("x", "X", md)
    assert md.read_text().endswith("<!-- x:start -->\nX\n<!-- x:end -->\n")
    md.write_text("no trailing newline")
    rm.replace_section("y", "Y", md)
    assert md.read_text() == "no trailing newline\n\n<!-- y:start -->\nY\n<!-- y:end -->\n"


@pytest.mark.parametrize("text", ["<!-- s:start -->\nno end\n", "<!-- s:end -->\n<!-- s:start -->\n",
                                  "<!-- s:start -->\n<!-- s:end -->\n<!-- s:start -->\n<!-- s:end -->\n"])
def test_broken_markers_refused(tmp_path, text):
    rm = _results_md()
    md = tmp_path / "RESULTS.md"
    md.write_text(text)
    with pytest.raises(RefbenchError, match="marker"):
        rm.replace_section("s", "body", md)
    assert md.read_text() == text


def test_bad_name_and_marker_in_body_refused(tmp_path):
    rm = _results_md()
    with pytest.raises(RefbenchError, match="letters"):
        rm.replace_section("a b", "x", tmp_path / "R.md")
    with pytest.raises(RefbenchError, match="own markers"):
        rm.replace_section("a", "<!-- a:end -->", tmp_path / "R.md")
    assert not (tmp_path / "R.md").exists()


def test_concurrent_writers_lose_no_section(tmp_path):
    rm = _results_md()
    md = tmp_path / "RESULTS.md"
    threads = [threading.Thread(target=rm.replace_section, args=(f"s{i}", f"body {i}", md)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = md.read_text()
    assert all(f"<!-- s{i}:start -->\nbody {i}\n<!-- s{i}:end -->" in text for i in range(16))
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]  # no temporary left behind


def test_write_results_states_the_run(tmp_path, monkeypatch):
    rm = _results_md()
    monkeypatch.setattr("sys.argv", [str(Path(rm.__file__)), "--n", "3"])
    md = tmp_path / "RESULTS.md"
    rm.write_results("demo", "Title", [rm.markdown_table(("a", "b"), [("x|y", 1)])], ["a note"], path=md)
    text = md.read_text()
    assert "## Title" in text and "| x\\|y | 1 |" in text and "a note" in text
    assert "`python benchmarks/results_md.py --n 3`" in text
    for key in ("date:", "machine:", "torch threads"):
        assert key in text


def _demo_time():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_time.py"
    spec = importlib.util.spec_from_file_location("demo_time", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_cells_compared_at_two_decimals():
    import leaderboards

    ref = {n.metric: n.value for n in leaderboards.numbers("refbench", "synth")
           if n.method_key == "lavt-tiny" and n.split == "val"}
    exact = {m: v + 0.004 for m, v in ref.items()}           # rounds to the reference
    off = dict(exact, mIoU=ref["mIoU"] + 0.006)                # rounds away from it
    cells = [{"row": "lavt-tiny", "split": "synth/val", "status": "done", "metrics": exact},
             {"row": "lavt-tiny", "split": "synth/val", "status": "done", "metrics": off},
             {"row": "lavt-tiny", "split": "synth/val", "status": "done", "metrics": {"mIoU": ref["mIoU"]}},
             {"row": "no-such-row", "split": "synth/val", "status": "done", "metrics": {}}]
    a, b, c, d = _demo_time().compare_cells({"cells": cells})
    assert (a["matched"], a["checked"], a["mismatches"]) == (len(ref), len(ref), [])
    assert b["matched"] == len(ref) - 1 and b["mismatches"][0].startswith("mIoU")
    assert c["matched"] == 1 and any("missing" in m for m in c["mismatches"])
    assert d["checked"] == 0 and d["mismatches"] == ["no reference number for this cell"]
