"""refbench's own reference numbers are what its shipped checkpoints give, here and now.

Every shipped tiny checkpoint is evaluated afresh on synth/val, synth/testA and synth/testB (the
default synthetic benchmark, built from scratch into a temporary cache) through `refbench reproduce
refbench:synth`, and each cell must equal the shipped reproduced run (leaderboards/reproduced/) to
1e-9 in every metric and exactly in every per-sample I and U, and the reference table
(leaderboards/papers/refbench/numbers.csv) must print those numbers.  The shipped runs are a
measurement, not a copy of themselves: this test makes them again.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import leaderboards
from refbench.core.results import read_results


@pytest.mark.slow
def test_every_shipped_checkpoint_gives_the_reference_numbers(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REFBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("REFBENCH_DATA", None)
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "refbench", "reproduce", "refbench:synth", "--out", str(out),
                           "--bootstrap", "0", "--device", "cpu"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shipped = {(r.path().parent.parent.name, r.path().parent.name): r.path() for r in leaderboards.reproduced_runs()}
    printed = {(n.method_key, n.split, n.metric): n.text for n in leaderboards.numbers("refbench", "synth")}
    cells = json.loads((out / "reproduce.json").read_text())["cells"]
    assert len(cells) == 15 and {c["status"] for c in cells} == {"done"}
    for cell in cells:
        split = cell["split"].split("/")[1]
        now, then = read_results(cell["results"]), read_results(shipped[(cell["row"], split)])
        assert now.protocol_hash == then.protocol_hash and now.identity.checkpoint_sha256 == \
            then.identity.checkpoint_sha256, cell["row"]
        assert now.identity.annotation_sha256 == then.identity.annotation_sha256, "the synthetic benchmark changed"
        for metric, value in then.metrics.items():
            assert abs(now.metrics[metric] - value) <= 1e-9, (cell["row"], split, metric, now.metrics[metric], value)
            if (cell["row"], split, metric) in printed:
                assert printed[(cell["row"], split, metric)] == f"{value:.2f}"
        a, b = now.records().sorted_by_id(), then.records().sorted_by_id()
        assert a.ids == b.ids and (a.I == b.I).all() and (a.U == b.U).all(), (cell["row"], split)
