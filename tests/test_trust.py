"""Every number refbench publishes describes exactly the data and settings it says, or is refused.

Run identity (model, variant, checkpoint, data root and annotation digests, split, protocol, limit,
skipped samples, precision, batch composition) is recorded by every run and checked by every reuse;
partial runs say so wherever they appear; a protocol's binarization reads the model's foreground
output; outputs never land on top of inputs or of folders refbench did not make.
"""
import json
import shutil

import pytest
import torch

from refbench.core.protocols import get_protocol
from refbench.core.results import read_results


def eval_args(root, ckpt, out, *extra, limit=8):
    return ["eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root", root,
            "--checkpoint", ckpt, "--limit", limit, "--batch-size", 4, "--bootstrap", 0, "--workers", 0,
            "--out", out, *extra]


def one_line_error(code, err, needle):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


# ---- identity on --resume ----------------------------------------------------------------------------------------
def test_resume_against_another_data_root_is_refused(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out))[0] == 0
    copy = tmp_path / "copy"
    shutil.copytree(synth_tiny, copy, symlinks=True)
    code, _, err = run_cli(*eval_args(copy, lavt_tiny_checkpoint, out, "--resume"))
    one_line_error(code, err, "'data_root' was")
    before = (out / "results.json").read_bytes()
    assert read_results(out / "results.json").identity.data_root == str(synth_tiny.resolve())
    assert (out / "results.json").read_bytes() == before  # the refused resume changed nothing


def test_resume_after_the_annotations_changed_is_refused(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    root = tmp_path / "data"
    shutil.copytree(synth_tiny, root, symlinks=True)
    out = tmp_path / "run"
    assert run_cli(*eval_args(root, lavt_tiny_checkpoint, out))[0] == 0
    inst = root / "synth" / "instances.json"
    doc = json.loads(inst.read_text())
    doc["info"] = {"edited": True}
    inst.write_text(json.dumps(doc))
    code, _, err = run_cli(*eval_args(root, lavt_tiny_checkpoint, out, "--resume"))
    one_line_error(code, err, "'annotation_sha256' was")


def test_resume_with_another_limit_or_precision_is_refused(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out))[0] == 0
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out, "--resume", limit=12))
    one_line_error(code, err, "'limit' was 8, now 12")
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out, "--resume", "--precision", "bf16"))
    one_line_error(code, err, "'precision' was 'fp32', now 'bf16'")


# ---- partial runs --------------------------------------------------------------------------------------------
def test_limit_runs_are_partial_everywhere(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    out = tmp_path / "run"
    code, stdout, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out))
    assert code == 0, err
    doc = read_results(out / "results.json")
    total = doc.identity.split_samples
    assert doc.partial and doc.identity.partial_text() == f"partial: 8 of {total}" and "partial: 8 of" in stdout
    code, table, _ = run_cli("table", "--results", out / "results.json", "--against", "refbench:synth")
    assert code == 0 and f"partial: 8 of {total}" in table
    code, _, err = run_cli("verify", out / "results.json")
    one_line_error(code, err, f"partial: 8 of {total}")


def test_reproduce_never_reuses_a_partial_cell_as_finished(synth_tiny, tmp_path, run_cli):
    args = ["reproduce", "refbench:synth", "--rows", "lavt-tiny", "--data-root", synth_tiny, "--bootstrap", 0,
            "--out", tmp_path / "rep"]
    code, _, err = run_cli(*args, "--limit", 4)
    assert code == 0, err
    doc = json.loads((tmp_path / "rep" / "reproduce.json").read_text())
    assert all(c["partial"].startswith("partial: 4 of") for c in doc["cells"])
    assert "partial: 4 of" in (tmp_path / "rep" / "refbench_synth.md").read_text()
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "starting over" in out and "'limit' was 4, now None" in out
    doc = json.loads((tmp_path / "rep" / "reproduce.json").read_text())
    assert all(c["status"] == "done" and c["partial"] == "" for c in doc["cells"])
    for c in doc["cells"]:
        assert not read_results(c["results"]).partial


def test_reproduce_refuses_an_unknown_checkpoint_row(tmp_path, run_cli, lavt_tiny_checkpoint):
    code, _, err = run_cli("reproduce", "refbench:synth", "--checkpoint", f"lavt={lavt_tiny_checkpoint}",
                           "--dry-run", "--out", tmp_path / "r")
    one_line_error(code, err, "has no model row 'lavt'")
    code, _, err = run_cli("reproduce", "refbench:synth", "--checkpoint",
                           f"lavt-tiny@refcoco={lavt_tiny_checkpoint}", "--dry-run", "--out", tmp_path / "r")
    one_line_error(code, err, "row lavt-tiny has no numbers on 'refcoco'")
    assert not (tmp_path / "r").exists()


def test_an_explicit_data_root_is_never_replaced_by_the_cache(tmp_path, run_cli):
    empty = tmp_path / "data"
    empty.mkdir()
    code, _, err = run_cli("eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root",
                           empty, "--out", tmp_path / "o")
    one_line_error(code, err, "holds no 'synth' dataset")
    assert not (tmp_path / "o").exists()


# ---- protocols -------------------------------------------------------------------------------------------------
def test_verify_only_under_the_papers_protocol(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    out = tmp_path / "run"
    code, _, err = run_cli("eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root",
                           synth_tiny, "--checkpoint", lavt_tiny_checkpoint, "--bootstrap", 0, "--workers", 0,
                           "--protocol", "lavt-original", "--out", out)
    assert code == 0, err
    code, _, err = run_cli("verify", out / "results.json")
    one_line_error(code, err, "refbench:synth reports protocol lavt [")


def test_threshold_rules_read_the_foreground_of_a_two_channel_model():
    from refbench.core.binarize import binarize
    from refbench.eval.postprocess import masks_on_canvas

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 16, 16, generator=g) * 3
    fg_prob = torch.softmax(logits, dim=1)[:, 1]
    assert torch.equal(binarize(logits, "sigmoid>0.35"), fg_prob > 0.35)
    assert torch.equal(binarize(logits, "sigmoid>0.5"), binarize(logits, "argmax"))
    cris = get_protocol("cris")
    orig = torch.tensor([[16, 16]] * 3)
    scale = (cris.input_size - 1) / 15  # the 16x16 image fills the whole 416 input
    masks = masks_on_canvas(logits, cris, orig, letterbox=torch.tensor([[scale, 0.0, 0.0]] * 3))
    # the CRIS path (bicubic warp of probabilities, then > 0.35) on the foreground probability, never channel 0
    agree = sum(int((m == (p > 0.35)).sum()) for m, p in zip(masks, fg_prob)) / fg_prob.numel()
    inverted = sum(int((m == (torch.softmax(x, 0)[0] > 0.35)).sum()) for m, x in zip(masks, logits)) / fg_prob.numel()
    assert agree > 0.95 and inverted < 0.6


# ---- outputs --------------------------------------------------------------------------------------------------
def test_outputs_never_land_on_inputs_or_foreign_folders(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, foreign))
    one_line_error(code, err, "not a refbench eval run")
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, synth_tiny / "runs"))
    one_line_error(code, err, "lies inside the input")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, a_file))
    one_line_error(code, err, "is a file")
    code, _, err = run_cli("reproduce", "refbench:synth", "--data-root", synth_tiny, "--out", synth_tiny)
    one_line_error(code, err, "is the input")
    code, _, err = run_cli("reproduce", "refbench:synth", "--out", foreign)
    one_line_error(code, err, "holds files refbench did not make")
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"] and a_file.read_text() == "x"


@pytest.mark.parametrize("args,needle", [
    (["train", "--model", "lavt", "--variant", "tiny", "--out", "OUT", "--batch-size", "0"], "--batch-size"),
    (["train", "--model", "lavt", "--variant", "tiny", "--out", "OUT", "--lr", "nan"], "finite number > 0"),
    (["eval", "--model", "lavt", "--split", "synth/val", "--workers", "-1"], "--workers"),
    (["eval", "--model", "lavt", "--split", "synth/val", "--limit", "0"], "--limit"),
    (["reproduce", "refbench:synth", "--bootstrap", "-1"], "--bootstrap"),
    (["verify", "x.json", "--tolerance", "-1"], "--tolerance"),
])
def test_every_number_has_a_checked_range(args, needle, tmp_path, run_cli):
    code, _, err = run_cli(*[str(tmp_path / "o") if a == "OUT" else a for a in args])
    one_line_error(code, err, needle)
