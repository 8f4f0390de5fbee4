"""SIGKILL at random points of `eval`, `reproduce` and `train`, then the same command again.

For several seeds the command is killed after a random delay (anywhere from start-up to the last
write); then it is run again (`--resume` where the command asks for it: `eval` and `train` continue a
run only when told to).  The outputs must equal those of an uninterrupted run, no process of the
killed command may survive it, and no temporary file or folder may be left behind.
(`build-dataset` has the same test in tests/test_build_safety.py.)
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from refbench.core.results import read_results

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
SEEDS = (0, 1, 2)


def _cli(args: list) -> list[str]:
    return [sys.executable, "-m", "refbench", *map(str, args)]


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_at_random(args: list, seed: int, max_delay: float) -> None:
    """Start ``refbench ARGS``, SIGKILL it after a seeded random delay, check that nothing outlives it."""
    delay = random.Random(seed).uniform(0.2, max_delay)
    proc = subprocess.Popen(_cli(args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0, kids = time.time(), set()
    while time.time() - t0 < delay and proc.poll() is None:
        kids |= _children(proc.pid)
        time.sleep(0.02)
    kids |= _children(proc.pid)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # DataLoader workers notice a dead parent within a few seconds
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], f"processes outlived the killed command (seed {seed})"


def rerun(args: list, resume_if: Path | None = None) -> None:
    extra = ["--resume"] if resume_if is not None and resume_if.exists() else []
    out = subprocess.run(_cli(args + extra), env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def no_temporaries(root: Path) -> None:
    left = [str(p) for p in root.rglob("*") if ".tmp" in p.name or ".refbench-tmp-" in p.name]
    assert not left, f"temporary files left behind: {left}"


def records_of(results: Path) -> list[dict]:
    return sorted(read_results(results).records().iter_dicts(), key=lambda d: d["id"])


@pytest.mark.slow
def test_eval_killed_anywhere_then_resumed_equals_an_uninterrupted_run(synth_tiny, lavt_tiny_checkpoint, tmp_path):
    def args(out):
        return ["eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root", synth_tiny,
                "--checkpoint", lavt_tiny_checkpoint, "--limit", 32, "--batch-size", 2, "--bootstrap", 20,
                "--workers", 1, "--out", out]

    rerun(args(tmp_path / "ref"))
    ref = read_results(tmp_path / "ref" / "results.json")
    for seed in SEEDS:
        out = tmp_path / f"killed{seed}"
        kill_at_random(args(out), seed, max_delay=8.0)
        rerun(args(out), resume_if=out / "run.json")
        doc = read_results(out / "results.json")
        assert doc.metrics == ref.metrics and doc.identity == ref.identity
        assert records_of(out / "results.json") == records_of(tmp_path / "ref" / "results.json")
        no_temporaries(out)


@pytest.mark.slow
def test_reproduce_killed_anywhere_then_rerun_equals_an_uninterrupted_run(synth_tiny, tmp_path):
    def args(out):
        return ["reproduce", "refbench:synth", "--rows", "lavt-tiny", "--rows", "jmceln-tiny", "--data-root",
                synth_tiny, "--limit", 24, "--bootstrap", 0, "--batch-size", 4, "--out", out]

    rerun(args(tmp_path / "ref"))
    ref = {c["row"] + c["split"]: c for c in json.loads((tmp_path / "ref" / "reproduce.json").read_text())["cells"]}
    for seed in SEEDS:
        out = tmp_path / f"killed{seed}"
        kill_at_random(args(out), seed, max_delay=12.0)
        rerun(args(out))
        cells = json.loads((out / "reproduce.json").read_text())["cells"]
        assert len(cells) == len(ref)
        for c in cells:
            r = ref[c["row"] + c["split"]]
            assert c["status"] == r["status"] == "done" and c["metrics"] == r["metrics"], (seed, c["row"], c["split"])
            assert records_of(Path(c["results"])) == records_of(Path(r["results"]))
        no_temporaries(out)


@pytest.mark.slow
def test_train_killed_anywhere_then_resumed_ends_with_the_same_weights(synth_tiny, tmp_path):
    def args(out):
        return ["train", "--model", "lavt", "--variant", "tiny", "--dataset", "synth/train", "--data-root", synth_tiny,
                "--epochs", 1, "--batch-size", 4, "--max-steps", 6, "--save-every", 1, "--val-limit", 8,
                "--out", out]

    rerun(args(tmp_path / "ref"))
    want = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["model"]
    for seed in SEEDS:
        out = tmp_path / f"killed{seed}"
        kill_at_random(args(out), seed, max_delay=10.0)
        rerun(args(out), resume_if=out / "state.pt")
        got = torch.load(out / "last.pt", weights_only=True)["model"]
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), f"seed {seed}"
        no_temporaries(out)
