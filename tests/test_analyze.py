"""`refbench analyze`: every partition covers the run exactly once, a slice's metrics are the run's metrics on
its samples, two runs are compared per slice, and the outputs state their definitions."""
import csv
import io
import json
import re
import shutil

import numpy as np
import pytest

from refbench.core.records import SampleRecords, read_jsonl
from refbench.metrics import RISMetrics


@pytest.fixture(scope="module")
def zom_runs(synth_tiny, tmp_path_factory):
    """lavt and magnet (tiny, shipped weights) on synth-zom/val: zero-, one- and many-target sentences."""
    from refbench.eval import EvalConfig, evaluate

    base = tmp_path_factory.mktemp("analyze_runs")
    runs = {}
    for model in ("lavt", "magnet"):
        out = base / model
        evaluate(EvalConfig(model=model, variant="tiny", split="synth-zom/val", out=out, data_root=str(synth_tiny),
                            batch_size=8, bootstrap=0, workers=0))
        runs[model] = out
    return runs


def _records_by_id(run):
    rows, _ = read_jsonl(run / "records.jsonl")
    return {r["id"]: r for r in rows}


def test_partitions_cover_the_run_and_slice_metrics_are_restricted_metrics(zom_runs):
    from refbench.analysis import analyze
    from refbench.analysis.slices import PARTITIONS

    a = analyze([zom_runs["lavt"]], bootstrap=50, seed=0)
    run = a.runs[0]
    n = len(run.records)
    assert n == 52 and run.protocol.name == "refzom"
    rows = _records_by_id(zom_runs["lavt"])
    assert {s.partition for s in a.slices[0]} == {p.name for p in PARTITIONS}
    for p in PARTITIONS:
        part = [s for s in a.slices[0] if s.partition == p.name]
        assert sum(s.n for s in part) == n, p.name                       # counts add up
        ids = [run.records.ids[i] for s in part for i in s.index]
        assert sorted(ids) == sorted(run.records.ids), p.name             # each sample in exactly one slice
        for s in part:
            # the run restricted to the slice's samples, rebuilt from records.jsonl by id
            sub = SampleRecords.from_dicts([rows[run.records.ids[i]] for i in s.index])
            acc = RISMetrics(run.protocol)
            acc.add_records(sub)
            assert s.metrics == acc.compute(), (p.name, s.label)
            assert set(s.ci) == set(s.metrics)
    types = {s.label: s.n for s in a.slices[0] if s.partition == "target type"}
    assert types == {"zero": 8, "one": 35, "many": 9}
    zero = next(s for s in a.slices[0] if s.partition == "target type" and s.label == "zero")
    assert zero.metrics["Acc"] is not None and zero.metrics["mIoU"] is None  # refzom: Acc over zero-target only
    no_target = {s.label: s.n for s in a.slices[0] if s.partition == "object size (COCO area)"}
    assert no_target["no target"] == 8


def test_slice_facts_follow_their_definitions(synth_tiny):
    from refbench.analysis.slices import SPATIAL_WORDS, sample_facts, words
    from refbench.data import open_split

    assert words("The man's  LEFT-hand dog, 2nd!") == ["the", "man's", "left", "hand", "dog", "2nd"]
    split = open_split("synth-zom/val", synth_tiny)
    facts = sample_facts(split, split.samples, "union")
    for s, f in zip(split.samples, facts):
        assert f.n_words == len(re.findall(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?", s.sentence)), s.sentence
        assert f.spatial == bool(set(words(s.sentence)) & SPATIAL_WORDS)
        if s.type == "zero":
            assert f.gt_area == 0 and f.category == "no target" and f.same_category == 0
        else:
            assert f.gt_area == int(split.gt_mask(s, "union").sum()) > 0
            anns = [a for a in split.coco.anns.values() if a["image_id"] == s.image_id
                    and a["category_id"] in set(s.category_ids)]
            assert f.same_category == len(anns) >= len(set(s.ann_ids))


def test_two_runs_paired_per_slice(zom_runs, run_cli, tmp_path):
    out = tmp_path / "an"
    code, stdout, err = run_cli("analyze", zom_runs["lavt"], zom_runs["magnet"] / "results.json", "--out", out,
                                "--json", tmp_path / "a.json", "--bootstrap", 50, "--permutations", 100)
    assert code == 0, err
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["schema"] == "refbench.analysis" and len(doc["runs"]) == 2
    assert doc["word_lists"]["spatial"] and doc["bins"]["COCO area (px, upper bound exclusive)"][0][0] == 1024
    by = {(s["partition"], s["label"]): s for s in doc["runs"][1]["slices"]}
    for p in doc["paired"]:
        for r in p["results"]:
            if r["delta"] is not None:
                assert r["a"] - r["b"] == pytest.approx(r["delta"])
                assert r["b"] == pytest.approx(by[(p["partition"], p["label"])]["metrics"][r["metric"]])
                assert 0 < r["p_value"] <= 1
    assert {p.name for p in out.iterdir()} == {"slices.md", "slices.tex", "slices_standalone.tex", "slices.csv",
                                               "slices.png", "slices.json"}
    md = (out / "slices.md").read_text()
    assert "mIoU by slice" in md and "spatial words: yes if the expression contains" in md
    assert "protocol refzom" in md and "95% CI" in md
    rows = list(csv.reader(io.StringIO((out / "slices.csv").read_text())))
    assert rows[0][:4] == ["Partition", "Slice", "n", "share (%)"]
    assert "\\begin{tabular}" in (out / "slices.tex").read_text()
    from PIL import Image
    with Image.open(out / "slices.png") as im:
        assert im.size[0] > 800 and len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 20
    assert "Slices of" in stdout


def test_a_run_against_itself_differs_by_zero(zom_runs):
    from refbench.analysis import analyze

    a = analyze([zom_runs["lavt"], zom_runs["lavt"] / "results.json"], bootstrap=20, permutations=50)
    for p in a.paired:
        for r in p.results:
            assert r.delta in (None, 0.0) and (r.p_value is None or r.p_value == 1.0)


def test_analyze_refusals(zom_runs, synth_tiny, tmp_path, run_cli):
    # other annotation files than the run scored
    data = tmp_path / "data"
    shutil.copytree(synth_tiny, data)
    inst = data / "synth-zom" / "instances.json"
    inst.write_text(inst.read_text() + "\n")
    code, _, err = run_cli("analyze", zom_runs["lavt"], "--data-root", data, "--bootstrap", 0)
    assert code == 2 and "would describe other data" in err and len(err.strip().splitlines()) == 1
    # runs on different samples
    from refbench.eval import EvalConfig, evaluate

    part = tmp_path / "partial"
    evaluate(EvalConfig(model="lavt", variant="tiny", split="synth-zom/val", out=part, data_root=str(synth_tiny),
                        batch_size=8, bootstrap=0, workers=0, limit=10))
    code, _, err = run_cli("analyze", zom_runs["lavt"], part, "--bootstrap", 0)
    assert code == 2 and "cover different samples" in err
    code, out, err = run_cli("analyze", part, "--bootstrap", 0)
    assert code == 0 and "partial: 10 of 52" in out, err
    # a folder that is not a run, three runs, a score run of two mask folders
    code, _, err = run_cli("analyze", tmp_path, "--bootstrap", 0)
    assert code == 2 and "no results.json" in err
    code, _, err = run_cli("analyze", part, part, part)
    assert code == 2 and "two runs" in err
    code, _, err = run_cli("analyze", part, "--out", part)
    assert code == 2 and "--out" in err


def test_docs_state_the_word_lists_and_bins():
    from pathlib import Path

    from refbench.analysis import slices as S

    doc = (Path(__file__).resolve().parents[1] / "docs" / "results-analysis.md").read_text(encoding="utf-8")
    for name, ws in (("spatial", S.SPATIAL_WORDS), ("relational", S.RELATIONAL_WORDS),
                     ("attribute", S.ATTRIBUTE_WORDS)):
        listed = doc.split(f"* **{name}**")[1].split(":", 1)[1].split("\n* ")[0].split("\n\n")[0]
        assert sorted(w.strip() for w in listed.replace("\n", " ").split(",")) == sorted(ws), name
    for label in [b[2] for b in S.LENGTH_BINS] + [b[2] for b in S.AMBIGUITY_BINS]:
        assert f"`{label.split()[0]}`" in doc, label
