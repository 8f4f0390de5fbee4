"""`refbench reproduce`: plan cells from a paper table, run them, re-use finished ones, show missing ones."""
import json

import pytest

from refbench.core.models import ModelInfo


def test_dry_run_magnet1_lists_all_nine_cells(tmp_path, run_cli):
    empty = tmp_path / "data"
    empty.mkdir()
    code, out, err = run_cli("reproduce", "magnet:1", "--data-root", empty, "--dry-run", "--out", tmp_path / "o")
    assert code == 0, err
    assert out.startswith("9 cell(s): 9 missing-checkpoint")
    for split in ("refcoco/val", "refcoco/testA", "refcoco/testB", "refcoco+/val", "refcoco+/testA", "refcoco+/testB",
                  "refcocog-umd/val", "refcocog-umd/test", "refcocog-google/val"):
        assert f"[missing-checkpoint] magnet:{split}  protocol lavt" in out
    assert "put magnet_refcocog_google.pth (Hugging Face yxchng/magnet_weights) in --checkpoints DIR" in out
    assert not (tmp_path / "o").exists()


def test_dry_run_meres2_plans_the_clip_variant_trained_on_seen_categories(tmp_path, run_cli):
    code, out, err = run_cli("reproduce", "meres:2", "--dry-run", "--out", tmp_path / "o")
    assert code == 0, err
    assert out.startswith("6 cell(s): 6 missing-checkpoint")
    assert "[missing-checkpoint] meres:refcocog-umd/val:unseen  protocol lavt  checkpoint meres_clip_refcocog-umd_seen.pt" in out
    assert ("refbench train --model meres --variant clip --dataset refcocog-google/train:seen --out DIR), then pass "
            "--checkpoint meres@refcocog-google=DIR/best.pt") in out


def test_rows_refbench_cannot_reproduce_are_skipped_with_the_reason(tmp_path, run_cli):
    code, out, err = run_cli("reproduce", "meres:2", "--rows", "all", "--dry-run")
    assert code == 0, err
    assert out.startswith("6 cell(s)") and "lavt:" not in out
    assert "row lavt skipped: this LAVT row was trained on the seen categories with a CLIP text encoder" in out
    code, _, err = run_cli("reproduce", "jmceln:3", "--rows", "lavt", "--dry-run")
    assert code == 2 and "row 'lavt' cannot be reproduced with refbench's models: JMCELN retrained LAVT" in err


def test_dry_run_with_checkpoints_but_no_data(tmp_path, run_cli):
    ck = tmp_path / "ck"
    ck.mkdir()
    for f in ("magnet_refcoco.pth", "magnet_all.pth"):
        (ck / f).write_bytes(b"x")
    empty = tmp_path / "data"
    empty.mkdir()
    code, out, err = run_cli("reproduce", "magnet:1", "--rows", "magnet", "--rows", "magnet-all", "--data-root", empty,
                             "--checkpoints", ck, "--dry-run", "--out", tmp_path / "o")
    assert code == 0, err
    assert "[missing-data] magnet:refcoco/val" in out and "[missing-data] magnet-all:refcoco+/testB  protocol lavt-448" in out
    assert "[missing-checkpoint] magnet:refcoco+/val" in out
    assert out.startswith("17 cell(s)")


def test_bad_table_and_rows(tmp_path, run_cli):
    code, _, err = run_cli("reproduce", "magnet:9", "--dry-run")
    assert code == 2 and "no table" in err
    code, _, err = run_cli("reproduce", "magnet:1", "--rows", "cris-x", "--dry-run")
    assert code == 2 and "has no row 'cris-x'" in err
    code, _, err = run_cli("reproduce", "magnet:1", "--checkpoint", "magnet=/nope.pth", "--dry-run")
    assert code == 2 and "does not exist" in err


@pytest.fixture
def tiny_checkpoints(tmp_path_factory):
    """Fixed-seed tiny LAVT and MagNet checkpoints under their manifest names (not DMMI's)."""
    import torch

    from refbench.core.checkpoint import save_checkpoint
    from refbench.core.models import build_model

    d = tmp_path_factory.mktemp("ck")
    for name in ("lavt", "magnet"):
        torch.manual_seed(0)
        save_checkpoint(build_model(name, "tiny"), d / f"{name}_tiny_synth.pt")
    return d


def test_synthetic_table_end_to_end_reuse_and_missing(synth_tiny, tiny_checkpoints, tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(ModelInfo, "shipped_checkpoint", lambda self, variant: None)
    args = ["reproduce", "refbench:synth", "--rows", "lavt-tiny", "--rows", "magnet-tiny", "--rows", "dmmi-tiny",
            "--checkpoints", tiny_checkpoints, "--data-root", synth_tiny, "--device", "cpu", "--bootstrap", 20,
            "--out", tmp_path / "rep"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    doc = json.loads((tmp_path / "rep" / "reproduce.json").read_text())
    status = {c["row"] + ":" + c["split"]: c["status"] for c in doc["cells"]}
    assert status == {f"{row}:synth/{split}": "missing-checkpoint" if row == "dmmi-tiny" else "done"
                      for row in ("lavt-tiny", "magnet-tiny", "dmmi-tiny") for split in ("val", "testA", "testB")}
    md = (tmp_path / "rep" / "refbench_synth.md").read_text()
    assert "missing" in md and "dmmi\\_tiny\\_synth.pt" in md  # Markdown-escaped
    tex = (tmp_path / "rep" / "refbench_synth.tex").read_text()
    assert tex.count("\\begin{longtable}") == 1 and "resizebox" not in tex  # legible: one value per line
    results = sorted((tmp_path / "rep" / "cells").glob("*/*/results.json"))
    assert len(results) == 6
    stamps = [p.stat().st_mtime_ns for p in results]
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert out.startswith("9 cell(s): 6 done, 3 missing-checkpoint")
    assert [p.stat().st_mtime_ns for p in results] == stamps  # nothing re-evaluated


def test_reference_table_defaults_to_every_model_row_and_checks_the_data_root(tmp_path, run_cli):
    empty = tmp_path / "data"
    empty.mkdir()
    code, out, err = run_cli("reproduce", "refbench:synth", "--data-root", empty, "--dry-run")
    assert code == 0, err
    assert out.startswith("15 cell(s): 15 missing-data")
    assert f"refbench build-dataset synth --out {empty}" in out


def test_demo_with_a_missing_data_root_is_one_line(tmp_path, run_cli):
    code, _, err = run_cli("demo", "--out", tmp_path / "d", "--data-root", tmp_path / "nope")
    assert code == 2 and "no such directory" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_a_failing_cell_is_reported_and_exits_1(synth_tiny, tiny_checkpoints, tmp_path, run_cli):
    code, out, err = run_cli("reproduce", "refbench:synth", "--rows", "lavt-tiny", "--checkpoint",
                             f"lavt-tiny={tiny_checkpoints / 'magnet_tiny_synth.pt'}", "--data-root", synth_tiny,
                             "--bootstrap", 0, "--limit", 4, "--out", tmp_path / "rep")
    assert code == 1 and "3 cell(s) failed" in err
    doc = json.loads((tmp_path / "rep" / "reproduce.json").read_text())
    assert {c["status"] for c in doc["cells"]} == {"failed"}
    assert "failed" in (tmp_path / "rep" / "refbench_synth.md").read_text()
