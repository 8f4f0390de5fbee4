"""`refbench train`: recipe, outputs, kill-and-resume gives the same weights bit for bit."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from refbench.core.errors import RefbenchError
from refbench.train.optim import parameter_groups, poly_lambda
from refbench.train.recipes import RECIPES, get_recipe

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def train_args(root, out, *extra, steps=6, save_every=2):
    return ["train", "--model", "lavt", "--variant", "tiny", "--dataset", "synth/train", "--data-root", root,
            "--epochs", 1, "--batch-size", 4, "--max-steps", steps, "--save-every", save_every, "--val-limit", 8,
            "--out", out, *extra]


def test_paper_recipes_cite_their_source():
    r = get_recipe("magnet", "paper")
    assert (r.lr, r.weight_decay, r.epochs, r.batch_size, r.input_size) == (5e-5, 0.01, 40, 32, 480)
    assert get_recipe("jmceln", "paper").lr == 6e-6 and get_recipe("jmceln", "paper").token_length == 30
    assert get_recipe("meres", "paper").lr == 3e-5
    assert all(rec.source for rec in RECIPES.values())
    with pytest.raises(RefbenchError, match="Did you mean"):
        get_recipe("magnet", "papr")


def test_poly_schedule_and_groups():
    f = poly_lambda(100, 0.9)
    assert f(0) == 1.0 and f(100) == 0.0 and f(50) == pytest.approx(0.5 ** 0.9)
    from refbench.core.models import build_model

    model = build_model("lavt", "tiny")
    groups, summary = parameter_groups(model, get_recipe("lavt", "paper"))
    no_decay = {id(p) for p in groups[1]["params"]}
    for name, p in model.named_parameters():
        if "relative_position_bias_table" in name or ".norm" in name:
            assert id(p) in no_decay or not p.requires_grad, name
    # LAVT's train.py trains BERT encoder layers 0-9 only: the tiny BERT has 2 layers, its embeddings are frozen
    assert not model.text_encoder_prefix or all(
        not p.requires_grad for n, p in model.named_parameters()
        if n.startswith(model.text_encoder_prefix) and "embeddings" in n)
    assert summary["trained_parameters"] > 0


def test_train_writes_checkpoints_log_and_curve(synth_tiny, tmp_path, run_cli):
    code, out, err = run_cli(*train_args(synth_tiny, tmp_path / "r", steps=3))
    assert code == 0, err
    for f in ("best.pt", "last.pt", "state.pt", "log.jsonl", "loss_curve.png", "train.json", "config.json"):
        assert (tmp_path / "r" / f).is_file(), f
    summary = json.loads((tmp_path / "r" / "train.json").read_text())
    assert summary["steps"] == 3 and summary["best"]["metric"] == "mIoU"
    rows = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val" not in r] == [1, 2, 3] and "val" in rows[-1]
    code, _, err = run_cli("eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root",
                           synth_tiny, "--checkpoint", tmp_path / "r" / "best.pt", "--limit", 4, "--bootstrap", 0,
                           "--workers", 0, "--out", tmp_path / "ev")
    assert code == 0, err
    code, _, err = run_cli(*train_args(synth_tiny, tmp_path / "r", steps=3))
    assert code == 2 and "--resume" in err


def test_kill_and_resume_gives_identical_weights(synth_tiny, tmp_path):
    ref = subprocess.run([sys.executable, "-m", "refbench", *map(str, train_args(synth_tiny, tmp_path / "ref", steps=8))],
                         env=ENV, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "refbench", *map(str, train_args(synth_tiny, run, steps=8))],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        log = run / "log.jsonl"
        if (run / "state.pt").exists() and log.exists() and log.read_text().count('"step": 5') >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run([sys.executable, "-m", "refbench",
                              *map(str, train_args(synth_tiny, run, "--resume", steps=8))],
                             env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["model"]
    b = torch.load(run / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert "resumed at optimizer step" in " ".join(json.loads((run / "train.json").read_text())["notes"])
