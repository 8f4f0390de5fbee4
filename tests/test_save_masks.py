"""`refbench eval --save-masks`: the saved masks reproduce the run's records exactly (score), on a fresh run,
a resumed one and under torchrun; the mask setting is part of what --resume checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from refbench.core.results import read_records_jsonl, read_results

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def eval_args(root, out, *extra, split="synth/val", limit=None, batch=4):
    args = ["eval", "--model", "lavt", "--variant", "tiny", "--split", split, "--data-root", root,
            "--batch-size", batch, "--bootstrap", 0, "--workers", 0, "--out", out, *extra]
    return args + (["--limit", limit] if limit else [])


def records(path):
    rec, _ = read_records_jsonl(path)
    return sorted(rec.iter_dicts(), key=lambda d: d["id"])


def score_saved(run_cli, run, split, root, tmp_path, protocol="lavt"):
    out = tmp_path / f"scored-{run.name}.jsonl"
    code, _, err = run_cli("score", "--pred", run / "masks", "--gt", split, "--data-root", root,
                           "--protocol", protocol, "--records", out, "--bootstrap", 0)
    assert code == 0, err
    return records(out)


@pytest.mark.parametrize("split,protocol", [("synth/val", "lavt"), ("synth-zom/val", "refzom")])
def test_score_on_saved_masks_gives_identical_records(split, protocol, synth_tiny, tmp_path, run_cli):
    run = tmp_path / "run"
    code, out, err = run_cli(*eval_args(synth_tiny, run, "--save-masks", split=split))
    assert code == 0, err
    doc = read_results(run / "results.json")
    assert doc.protocol.name == protocol and not doc.partial
    pngs = sorted(p.name for p in (run / "masks").glob("*.png"))
    ids = [d["id"] for d in records(run / "records.jsonl")]
    assert pngs == sorted(f"{i}.png" for i in ids)  # each sample once, nothing else
    assert not list((run / "masks").glob(".*.tmp"))
    with Image.open(run / "masks" / pngs[0]) as im:
        assert im.mode == "L" and im.size == (480, 480)
        assert set(np.unique(np.asarray(im)).tolist()) <= {0, 255}
    assert records(run / "records.jsonl") == score_saved(run_cli, run, split, synth_tiny, tmp_path, protocol)
    assert any("masks saved" in n for n in doc.notes)


def _fake_kill(run, finished_batches: int, batch: int):
    """Turn a finished run into one killed after ``finished_batches`` batches: the records file in its
    in-progress form, the masks of later batches gone except one stale garbage file and a temporary."""
    rows = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    lines = []
    for b in range(finished_batches):
        part = rows[b * batch:(b + 1) * batch]
        lines += [json.dumps({**r, "b": b}) for r in part] + [json.dumps({"batch_done": b, "n": len(part)})]
    lines.append(json.dumps({**rows[finished_batches * batch], "b": finished_batches}))  # unfinished batch
    (run / "records.jsonl").write_text("\n".join(lines) + "\n")
    (run / "results.json").unlink()
    later = [r["id"] for r in rows[finished_batches * batch:]]
    for sid in later:
        (run / "masks" / f"{sid}.png").unlink()
    (run / "masks" / f"{later[0]}.png").write_bytes(b"half a png")           # killed mid-batch
    (run / "masks" / f".{later[1]}.png.12345.tmp").write_bytes(b"temporary")  # killed mid-write
    return [r["id"] for r in rows[:finished_batches * batch]], later


def test_resume_writes_each_mask_once_and_records_match(synth_tiny, tmp_path, run_cli):
    ref, run = tmp_path / "ref", tmp_path / "run"
    for out in (ref, run):
        assert run_cli(*eval_args(synth_tiny, out, "--save-masks"))[0] == 0
    kept, redone = _fake_kill(run, finished_batches=2, batch=4)
    stamps = {sid: (run / "masks" / f"{sid}.png").stat().st_mtime_ns for sid in kept}
    code, _, err = run_cli(*eval_args(synth_tiny, run, "--save-masks", "--resume"))
    assert code == 0, err
    doc = read_results(run / "results.json")
    assert any("already scored were kept" in n for n in doc.notes)
    # finished batches' masks were not written again; the others were written (whole PNGs, no temporaries)
    assert {sid: (run / "masks" / f"{sid}.png").stat().st_mtime_ns for sid in kept} == stamps
    assert sorted(p.name for p in (run / "masks").iterdir()) == sorted(
        [f"{i}.png" for i in kept + redone] + [".refbench-masks.json"])
    for sid in redone:
        assert (run / "masks" / f"{sid}.png").read_bytes() == (ref / "masks" / f"{sid}.png").read_bytes()
    assert records(run / "records.jsonl") == records(ref / "records.jsonl")
    assert records(run / "records.jsonl") == score_saved(run_cli, run, "synth/val", synth_tiny, tmp_path)


def test_resume_refuses_a_changed_mask_setting(synth_tiny, tmp_path, run_cli):
    plain, masked = tmp_path / "plain", tmp_path / "masked"
    assert run_cli(*eval_args(synth_tiny, plain, limit=4))[0] == 0
    assert run_cli(*eval_args(synth_tiny, masked, "--save-masks", limit=4))[0] == 0
    code, _, err = run_cli(*eval_args(synth_tiny, plain, "--save-masks", "--resume", limit=4))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "started without --save-masks" in err
    assert not (plain / "masks").exists()
    code, _, err = run_cli(*eval_args(synth_tiny, masked, "--resume", limit=4))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "started with --save-masks" in err
    assert run_cli(*eval_args(synth_tiny, masked, "--resume", "--save-masks", limit=4))[0] == 0
    assert run_cli(*eval_args(synth_tiny, plain, "--resume", limit=4))[0] == 0


def test_reproduce_style_restart_adds_the_masks(synth_tiny, tmp_path):
    """``reproduce`` (restart_on_mismatch) starts a cell without masks over when masks are asked for."""
    from refbench.eval import EvalConfig, evaluate

    out = tmp_path / "cell"
    base = dict(model="lavt", variant="tiny", split="synth/val", out=out, data_root=str(synth_tiny), batch_size=4,
                limit=8, bootstrap=0, workers=0)
    first = evaluate(EvalConfig(**base))
    doc = evaluate(EvalConfig(**base, resume=True, restart_on_mismatch=True, save_masks=True))
    assert any("restarted" in n and "--save-masks" in n for n in doc.notes)
    assert len(list((out / "masks").glob("*.png"))) == 8 and doc.metrics == first.metrics


def test_torchrun_writes_each_mask_once(synth_tiny, tmp_path, run_cli):
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
           "-m", "refbench", *map(str, eval_args(synth_tiny, two, "--save-masks", batch=4))]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_results(two / "results.json").identity.world_size == 2
    ids = [d["id"] for d in records(two / "records.jsonl")]
    assert sorted(p.name for p in (two / "masks").glob("*.png")) == sorted(f"{i}.png" for i in ids) and len(ids) == 35
    assert records(two / "records.jsonl") == score_saved(run_cli, two, "synth/val", synth_tiny, tmp_path)


def test_plot_overlays_takes_an_eval_run_directory(synth_tiny, tmp_path, run_cli):
    run, plain = tmp_path / "run", tmp_path / "plain"
    assert run_cli(*eval_args(synth_tiny, run, "--save-masks", limit=6))[0] == 0
    code, out, err = run_cli("plot", "overlays", "--run", run, "--select", "worst", "-n", 3, "--out", tmp_path / "w.png")
    assert code == 0, err
    worst = sorted(records(run / "records.jsonl"), key=lambda d: (d["iou"], d["id"]))[:3]
    assert f"3 samples: {', '.join(d['id'] for d in worst)}" in out
    with Image.open(tmp_path / "w.png") as im:
        assert im.size[1] > 600
    code, out, err = run_cli("plot", "overlays", "--run", run, "--ids", worst[0]["id"], "--out", tmp_path / "one.png")
    assert code == 0, err
    assert run_cli(*eval_args(synth_tiny, plain, limit=2))[0] == 0
    code, _, err = run_cli("plot", "overlays", "--run", plain, "--out", tmp_path / "x.png")
    assert code == 2 and "--save-masks" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("plot", "overlays", "--run", run, "--gt", run, "--out", tmp_path / "x.png")
    assert code == 2 and "leave out" in err
    assert not (tmp_path / "x.png").exists()
