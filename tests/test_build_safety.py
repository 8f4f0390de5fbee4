"""`refbench build-dataset` never destroys what refbench did not make, and a killed build leaves
nothing behind: no worker process, no temporary folder, and the same command again gives the
bytes of an uninterrupted build.

* ``--force`` replaces only a refbench-made folder (the marker, or a verified legacy build whose
  manifest.json lists every file with its sha256); a folder with anything else is refused.
* ``--out`` may not be, contain or lie inside an input.
* Fault injection: ``build-dataset`` runs as a subprocess and is SIGKILLed at random points
  (several seeds, plus once while its worker pool renders); its workers must be gone within a
  second, the next run of the same command removes the stale temporary folder and writes a tree
  byte-identical to an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from refbench.build.output import die_with_parent, legacy_build_problem
from refbench.build.refzom import RefZomConfig, build_refzom
from refbench.build.synth import build_synth
from refbench.core.errors import RefbenchError
from refbench.core.outdir import MARKER

REPO = Path(__file__).resolve().parent.parent


def tree(root: Path) -> dict[str, bytes]:
    """Every entry under ``root``: file bytes, or ``b'->target'`` for a symlink."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = b"->" + os.readlink(p).encode()
            elif p.is_file():
                out[rel] = p.read_bytes()
    return out


def temporaries(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".refbench-tmp-" in p.name)


# ------------------------------------------------------------------ --force and inputs

def test_force_refuses_a_folder_refbench_did_not_make(tmp_path, run_cli):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = tree(out)
    code, _, err = run_cli("build-dataset", "synth", "--out", out, "--size", "tiny", "--force", "--workers", "1")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert "refbench did not make" in err and tree(out) == before and not temporaries(tmp_path)


def test_force_replaces_a_refbench_build_and_a_verified_legacy_one(tmp_path, run_cli):
    out = tmp_path / "s"
    build_synth(out, size="tiny", workers=1)
    assert (out / MARKER).is_file()
    build_synth(out, size="tiny", seed=1, workers=1, force=True)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    # a build made before the marker existed: manifest.json lists every file with its sha256
    (out / MARKER).unlink()
    assert legacy_build_problem(out) is None
    build_synth(out, size="tiny", seed=2, workers=1, force=True)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2 and (out / MARKER).is_file()


@pytest.mark.parametrize("change", ["extra-file", "edited-file", "foreign-manifest"])
def test_legacy_build_with_foreign_content_is_never_replaced(change, tmp_path, run_cli):
    out = tmp_path / "s"
    build_synth(out, size="tiny", workers=1)
    (out / MARKER).unlink()
    if change == "extra-file":
        (out / "synth" / "notes.txt").write_text("mine")
    elif change == "edited-file":
        (out / "synth" / "seen_unseen.json").write_text("{}")
    else:
        doc = json.loads((out / "manifest.json").read_text())
        doc["generator"] = "someone else"
        (out / "manifest.json").write_text(json.dumps(doc))
    before = tree(out)
    code, _, err = run_cli("build-dataset", "synth", "--out", out, "--size", "tiny", "--force", "--workers", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "refbench did not make" in err, err
    assert tree(out) == before


def _synth_inputs(root: Path) -> list:
    return ["--coco-instances", root / "annotations" / "instances_synth.json",
            "--coco-captions", root / "annotations" / "captions_synth.json", "--refer-root", root]


@pytest.mark.parametrize("where", ["input-root", "inside-input", "contains-input", "instances-file"])
def test_refzom_out_overlapping_an_input_is_refused_and_inputs_stay(where, synth_tiny, tmp_path, run_cli):
    src = tmp_path / "src"
    build_synth(src, size="tiny", workers=1)
    out = {"input-root": src, "inside-input": src / "synth" / "built", "contains-input": tmp_path,
           "instances-file": src / "annotations" / "instances_synth.json"}[where]
    before = tree(tmp_path)
    code, _, err = run_cli("build-dataset", "ref-zom", *_synth_inputs(src), "--out", out, "--zero-pool", "unused",
                           "--no-progress", "--force")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert "input" in err or "is a file" in err
    assert tree(tmp_path) == before                                  # inputs (and everything else) untouched


def test_stale_temporaries_of_dead_builds_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".s.refbench-tmp-{dead.pid}.abc123"
    (stale / "images").mkdir(parents=True)
    alive = tmp_path / f".s.refbench-tmp-{os.getpid()}.zzz"        # a live build's folder is left alone
    alive.mkdir()
    build_synth(tmp_path / "s", size="tiny", workers=1)
    assert not stale.exists() and alive.exists()


def test_failed_swap_leaves_no_temporary(tmp_path, monkeypatch):
    """Another build finishing first (without --force here) makes the final swap fail: the finished
    temporary folder is removed and the other build is kept."""
    import refbench.build.synth as synth

    out = tmp_path / "s"
    real = synth._write

    def racing_write(records, root, cfg, layout):
        counts = real(records, root, cfg, layout)
        out.mkdir()
        (out / "theirs.txt").write_text("x")
        return counts

    monkeypatch.setattr(synth, "_write", racing_write)
    with pytest.raises(RefbenchError, match="already exists"):
        build_synth(out, size="tiny", workers=1)
    assert (out / "theirs.txt").is_file() and not temporaries(tmp_path)


def test_worker_initializer_exits_when_parent_is_gone():
    """die_with_parent called with a pid that is not the parent ends the process at once."""
    code = ("import os, sys; sys.path.insert(0, %r); from refbench.build.output import die_with_parent; "
            "die_with_parent(os.getppid() + 1000000); print('survived')") % str(REPO)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "survived" not in r.stdout
    assert callable(die_with_parent)


# ------------------------------------------------------------------ fault injection: SIGKILL at random points

def _env(token: str) -> dict:
    env = dict(os.environ, REFBENCH_FAULT_TOKEN=token, PYTHONPATH=str(REPO))
    env.pop("REFBENCH_CACHE", None)
    return env


def _processes_with(token: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``token``."""
    found = []
    needle = f"REFBENCH_FAULT_TOKEN={token}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if needle not in (d / "environ").read_bytes().split(b"\0"):
                continue
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(d.name))
    return found


def _wait_gone(token: str, timeout: float = 5.0) -> list[int]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        left = _processes_with(token)
        if not left:
            return []
        time.sleep(0.05)
    return _processes_with(token)


def _run(args: list, cwd: Path, token: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "refbench", *map(str, args)], cwd=cwd, env=_env(token),
                          capture_output=True, text=True, timeout=300)


def _kill_and_rerun(args: list, cwd: Path, out: Path, delay: float | None, token: str,
                    until=None) -> tuple[dict, list[int], list[str], str]:
    """Start the command, SIGKILL it after ``delay`` s (or once ``until()`` holds), then run it again."""
    p = subprocess.Popen([sys.executable, "-m", "refbench", *map(str, args)], cwd=cwd, env=_env(token),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    if until is None:
        time.sleep(delay)
    else:
        while not until() and p.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    orphans = _wait_gone(token)
    again = _run(args, cwd, token)
    assert again.returncode == 0, again.stderr
    return tree(out), orphans, temporaries(out.parent), again.stderr


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to look for orphaned workers")
def test_sigkill_at_random_points_of_synth_build(tmp_path):
    args = ["build-dataset", "synth", "--size", "tiny", "--workers", "2", "--force", "--out", "out"]
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    t0 = time.monotonic()
    r = _run(args, ref_dir, uuid.uuid4().hex)
    duration = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    reference = tree(ref_dir / "out")
    assert MARKER in reference and "manifest.json" in reference
    for seed in range(3):
        work = tmp_path / f"seed{seed}"
        work.mkdir()
        if seed == 2:  # a previous complete build is there: the killed run must leave it or replace it whole
            assert _run(args, work, uuid.uuid4().hex).returncode == 0
        delay = random.Random(seed).uniform(0.0, duration)
        token = uuid.uuid4().hex
        got, orphans, temps, _ = _kill_and_rerun(args, work, work / "out", delay, token)
        assert not orphans, f"seed {seed}: worker processes outlived the killed build: {orphans}"
        assert not temps, f"seed {seed}: temporary folders left: {temps}"
        assert got == reference, f"seed {seed} (killed after {delay:.2f} s)"
    # once more, killed while the worker pool is rendering (a temporary folder holds some images)
    work = tmp_path / "rendering"
    work.mkdir()

    def rendering() -> bool:
        return any(any(p.glob("images/synth/*.jpg")) for p in work.glob(".out.refbench-tmp-*"))

    token = uuid.uuid4().hex
    got, orphans, temps, _ = _kill_and_rerun(args, work, work / "out", None, token, until=rendering)
    assert not orphans and not temps and got == reference


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to look for orphaned processes")
def test_sigkill_at_random_points_of_refzom_build(synth_tiny, tmp_path):
    args = ["build-dataset", "ref-zom", *_synth_inputs(synth_tiny), "--zero-pool", "unused", "--no-progress",
            "--force", "--out", "out"]
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    t0 = time.monotonic()
    r = _run(args, ref_dir, uuid.uuid4().hex)
    duration = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    reference = tree(ref_dir / "out")
    for seed in range(2):
        work = tmp_path / f"seed{seed}"
        work.mkdir()
        delay = random.Random(100 + seed).uniform(0.0, duration)
        got, orphans, temps, _ = _kill_and_rerun(args, work, work / "out", delay, uuid.uuid4().hex)
        assert not orphans and not temps
        assert got == reference, f"seed {seed} (killed after {delay:.2f} s)"


def test_refzom_python_api_refuses_out_inside_refer_root(synth_tiny):
    with pytest.raises(RefbenchError, match="lies inside the input"):
        build_refzom(synth_tiny / "annotations" / "instances_synth.json",
                     synth_tiny / "annotations" / "captions_synth.json", synth_tiny, synth_tiny / "refzom",
                     RefZomConfig(zero_pool="unused"))
    assert not (synth_tiny / "refzom").exists()
