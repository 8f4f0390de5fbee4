"""``refbench data check`` / ``data stats`` on the synthetic benchmark and on broken copies of it."""
from __future__ import annotations

import json
import shutil

import pytest

from refbench.build.synth import ensure_synth


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return ensure_synth("tiny", 0, tmp_path_factory.getbasetemp() / "refbench-synth-cache")


@pytest.fixture
def copy(tmp_path, synth_root):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def test_check_passes_on_a_fresh_build(run_cli, synth_root, tmp_path):
    code, out, err = run_cli("data", "check", "--data-root", synth_root, "--verify-hashes",
                             "--json", tmp_path / "check.json")
    assert code == 0, out + err
    assert "3 dataset(s) found, 0 problem(s)" in out and "all " in out and "match manifest.json" in out
    assert "synth-zom/val" in out and "(ok)" in out and "MISMATCH" not in out
    assert "- refcoco " in out  # absent real datasets are listed, briefly
    doc = json.loads((tmp_path / "check.json").read_text())
    assert {d["key"] for d in doc if d["found"]} == {"synth", "synth-zom", "synth-grefcoco"}
    assert all(d["problems"] == [] for d in doc)


def test_check_reports_missing_images_and_count_mismatches(run_cli, copy):
    victim = sorted((copy / "images" / "synth").iterdir())[-1]
    victim.unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["counts"]["synth"]["val"]["sentences"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli("data", "check", "--data-root", copy, "--dataset", "synth")
    assert code == 1
    assert "images MISSING" in out and "MISMATCH" in out and "problem(s)" in out
    assert "refcoco" not in out  # only the requested dataset


def test_check_reports_malformed_files_and_continues(run_cli, copy):
    inst = copy / "synth-grefcoco" / "instances.json"
    inst.write_bytes(inst.read_bytes()[:1000])
    code, out, err = run_cli("data", "check", "--data-root", copy, "--no-images")
    assert code == 1
    assert "ERROR" in out and "truncated" in out
    assert "synth-zom/val" in out  # the other datasets are still checked


def test_check_verify_hashes_detects_edits(run_cli, copy):
    refs = copy / "synth" / "refs(unc).p"
    refs.write_bytes(refs.read_bytes() + b"\x00")
    code, out, err = run_cli("data", "check", "--data-root", copy, "--verify-hashes", "--no-images")
    assert code == 1 and "differ from" in out


def test_check_without_data(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("REFBENCH_DATA", raising=False)
    code, out, err = run_cli("data", "check")
    assert code == 2 and err.startswith("error: no data root") and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("data", "check", "--data-root", tmp_path)
    assert code == 1 and "no dataset found" in out and "refs(unc).p" in out  # layouts are explained
    code, out, err = run_cli("data", "check", "--data-root", tmp_path / "nope")
    assert code == 2 and "does not exist" in err


def test_stats_prints_types_lengths_and_categories(run_cli, synth_root, tmp_path):
    code, out, err = run_cli("data", "stats", "synth/val", "synth-zom/val", "synth/val:unseen", "--data-root",
                             synth_root, "--json", tmp_path / "stats.json")
    assert code == 0, err
    assert "synth-zom/val:" in out and "types: zero" in out and "words per sentence" in out
    assert "BERT tokens (of 20)" in out and "categories (" in out
    stats = json.loads((tmp_path / "stats.json").read_text())
    zom = stats[1]
    assert zom["types"]["zero"] > 0 and zom["types"]["many"] > 0
    assert sum(zom["types"].values()) == zom["sentences"] == zom["expected_sentences"]
    unseen = stats[2]
    assert set(unseen["categories"]) <= {"oval", "semicircle", "diamond"}


def test_stats_unknown_split_is_one_line(run_cli, synth_root):
    code, out, err = run_cli("data", "stats", "synth/vall", "--data-root", synth_root)
    assert code == 2 and "Did you mean 'synth/val'" in err and len(err.strip().splitlines()) == 1
