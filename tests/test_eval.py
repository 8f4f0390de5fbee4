"""`refbench eval`: end to end on the synthetic benchmark, resume after SIGKILL, torchrun, bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from refbench.core.results import read_records_jsonl, read_results

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def eval_args(root, ckpt, out, *extra, split="synth/val", limit=24, batch=4):
    return ["eval", "--model", "lavt", "--variant", "tiny", "--split", split, "--data-root", root,
            "--checkpoint", ckpt, "--limit", limit, "--batch-size", batch, "--bootstrap", 50,
            "--workers", 0, "--out", out, *extra]


def run_subprocess(args, **kw):
    return subprocess.run([sys.executable, "-m", "refbench", *map(str, args)], env=ENV, capture_output=True,
                          text=True, **kw)


def test_eval_end_to_end_writes_results_and_records(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    code, out, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "run"))
    assert code == 0, err
    doc = read_results(tmp_path / "run" / "results.json")
    ident = doc.identity
    assert doc.kind == "eval" and ident.model == "lavt" and ident.variant == "tiny"
    assert ident.split_name == "synth/val" and ident.dataset == "synth" and ident.split == "val"
    assert doc.counts["total"] == 24 == ident.n_samples and ident.limit == 24 and ident.split_samples > 24
    assert doc.partial and f"partial: 24 of {ident.split_samples}" in " ".join(doc.notes)
    assert len(ident.checkpoint_sha256) == 64 and set(ident.annotation_sha256) >= {"refs", "instances"}
    assert ident.data_root == str(synth_tiny.resolve()) and ident.batch_size == 4 and ident.precision == "fp32"
    assert doc.protocol.name == "lavt" and doc.protocol.binarize == "argmax" and ident.protocol_hash == doc.protocol_hash
    assert set(doc.ci) == set(doc.metrics) and doc.provenance["samples_per_s"] > 0
    assert doc.environment["torch"] and "cpu" in doc.provenance["device"]
    assert oct((tmp_path / "run" / "results.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    rec, dropped = read_records_jsonl(tmp_path / "run" / "records.jsonl")
    assert len(rec) == 24 and dropped == 0
    assert "oIoU" in out and "protocol lavt" in out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_models_command_lists_registry(run_cli):
    code, out, _ = run_cli("models")
    assert code == 0 and "lavt" in out and "variants: paper, tiny" in out and "refcoco.pth" in out


def _metrics(path):
    doc = json.loads((path / "results.json").read_text())
    return doc["metrics"], sorted(read_records_jsonl(path / "records.jsonl")[0].ids)


def _records(path):
    rec, _ = read_records_jsonl(path / "records.jsonl")
    return sorted(rec.iter_dicts(), key=lambda d: d["id"])


def test_sigkill_and_resume_gives_identical_results(synth_tiny, lavt_tiny_checkpoint, tmp_path):
    ref = run_subprocess(eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "ref", limit=40, batch=2))
    assert ref.returncode == 0, ref.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "refbench",
                             *map(str, eval_args(synth_tiny, lavt_tiny_checkpoint, killed, limit=40, batch=2))],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = killed / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if records.exists() and records.read_text().count("batch_done") >= 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; raise --limit"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    # simulate a kill in the middle of writing a line
    with open(records, "a") as f:
        f.write('{"id": "999", "I": 3, "U"')
    resumed = run_subprocess(eval_args(synth_tiny, lavt_tiny_checkpoint, killed, "--resume", limit=40, batch=2))
    assert resumed.returncode == 0, resumed.stderr
    doc = read_results(killed / "results.json")
    assert any("corrupt last line" in n for n in doc.notes)
    assert any("already scored were kept" in n for n in doc.notes)
    assert _records(killed) == _records(tmp_path / "ref")
    assert doc.metrics == read_results(tmp_path / "ref" / "results.json").metrics


def test_resume_with_other_settings_is_refused(synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out, limit=8))[0] == 0
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out, limit=8))
    assert code == 2 and "--resume" in err
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out, "--resume", limit=8, batch=2))
    assert code == 2 and "batch_size" in err
    code, _, err = run_cli(*eval_args(synth_tiny, lavt_tiny_checkpoint, out, "--resume", limit=8))
    assert code == 0, err  # a finished run resumes to the same results


def test_torchrun_two_processes_equals_one(synth_tiny, lavt_tiny_checkpoint, tmp_path):
    one = run_subprocess(eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "one", limit=21, batch=4))
    assert one.returncode == 0, one.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "refbench", *map(str, eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "two", limit=21,
                                                 batch=4))]
    two = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    m1, ids1 = _metrics(tmp_path / "one")
    m2, ids2 = _metrics(tmp_path / "two")
    assert ids1 == ids2 and len(ids2) == 21
    assert m1 == m2
    doc = read_results(tmp_path / "two" / "results.json")
    assert doc.identity.world_size == 2 and doc.identity.n_samples == 21
    assert not list((tmp_path / "two").glob("records.rank*"))


@pytest.mark.parametrize("case,needle", [
    ("model", "unknown model 'lavtt'"),
    ("split", "unknown split"),
    ("cuda", "no usable CUDA GPU"),
    ("root", "does not exist"),
    ("ckpt", "checkpoint"),
    ("nockpt", "needs --checkpoint"),
])
def test_eval_bad_input_one_line(case, needle, synth_tiny, lavt_tiny_checkpoint, tmp_path, run_cli, monkeypatch):
    import torch

    args = eval_args(synth_tiny, lavt_tiny_checkpoint, tmp_path / "o", limit=4)
    if case == "model":
        args[2] = "lavtt"
    elif case == "split":
        args[6] = "synth/vall"
    elif case == "cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        args += ["--device", "cuda"]
    elif case == "root":
        args[8] = tmp_path / "nowhere"
    elif case == "ckpt":
        torch.save({"model": {"foo.weight": torch.zeros(2)}}, tmp_path / "other.pth")
        args[10] = tmp_path / "other.pth"
    elif case == "nockpt":  # a variant without shipped weights
        monkeypatch.setattr("refbench.core.models.ModelInfo.shipped_checkpoint", lambda self, variant: None)
        i = args.index("--checkpoint")
        del args[i:i + 2]
    code, out, err = run_cli(*args)
    assert code == 2, (out, err)
    assert needle in err and err.startswith("error: ") and err.count("\n") == 1
