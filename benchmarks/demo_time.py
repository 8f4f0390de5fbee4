#!/usr/bin/env python
"""Wall time of ``refbench demo`` from scratch, and whether every cell matches the reference table.

Runs ``python -m refbench demo --out TMP/demo_out`` as a child process with ``REFBENCH_CACHE``
set to an empty temporary folder, so the synthetic benchmark is built from scratch as on a fresh
machine.  Prints the wall time and the child's peak RSS, then reads ``TMP/demo_out/reproduce.json``
and compares each cell's reproduced metrics with refbench's reference numbers
(``leaderboards.numbers("refbench", "synth")``) at two decimals, the precision they are published
with: every number of the cell's row and split (mIoU, oIoU, P@0.5, P@0.9, whichever the table has).

    python benchmarks/demo_time.py [--keep DIR] [--write-results]

Exit status 0 when the demo ran and every cell matched, 1 otherwise.  ``--write-results`` writes
the figures into the ``demo_time`` section of benchmarks/RESULTS.md (only after a demo that ran;
a failed demo is reported, not recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def compare_cells(reproduce_doc: dict) -> list[dict]:
    """One row per cell of the demo: reference vs reproduced metrics at 2 decimals.

    Each row: ``row``, ``split`` (short), ``status``, ``checked`` (numbers compared), ``matched``,
    ``max_abs_diff`` (of the unrounded reproduced value against the reference), ``mismatches``.
    """
    import leaderboards

    reference: dict[tuple[str, str], dict[str, object]] = {}
    for n in leaderboards.numbers("refbench", "synth"):
        reference.setdefault((n.method_key, n.split), {})[n.metric] = n
    out = []
    for c in reproduce_doc["cells"]:
        split = c["split"].split("/", 1)[1]
        refs = reference.get((c["row"], split), {})
        got = c.get("metrics") or {}
        checked = matched = 0
        worst = 0.0
        bad = []
        for metric, n in refs.items():
            checked += 1
            if metric not in got:
                bad.append(f"{metric} missing")
                continue
            worst = max(worst, abs(float(got[metric]) - n.value))
            if f"{float(got[metric]):.2f}" == f"{n.value:.2f}":
                matched += 1
            else:
                bad.append(f"{metric} {float(got[metric]):.2f} vs {n.value:.2f}")
        if not refs:
            bad.append("no reference number for this cell")
        out.append({"row": c["row"], "split": split, "status": c["status"], "checked": checked, "matched": matched,
                    "max_abs_diff": worst, "mismatches": bad})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--keep", type=Path, default=None,
                    help="run in this (new or empty) folder and keep the cache and the demo's output there")
    ap.add_argument("--write-results", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        print(f"error: --keep {args.keep}: not empty; pass a new or empty folder", file=sys.stderr)
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="refbench_demo_time_"))
    try:
        cache, out = work / "cache", work / "demo_out"
        cache.mkdir(parents=True)
        env = dict(os.environ, REFBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cmd = [sys.executable, "-m", "refbench", "demo", "--out", str(out)]
        print(f"running python {' '.join(cmd[1:])} with REFBENCH_CACHE={cache} (empty)", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            print(f"the demo FAILED after {wall:.1f} s with exit status {proc.returncode}; last lines:\n{tail}")
            return 1
        doc = json.loads((out / "reproduce.json").read_text())
        rows = compare_cells(doc)
        all_ok = all(r["status"] == "done" and r["matched"] == r["checked"] and not r["mismatches"] for r in rows)
        print(f"demo: {wall:.1f} s wall ({wall / 60:.1f} min), peak RSS {rss_gib:.2f} GiB, {len(rows)} cells")
        for r in rows:
            print(f"  {r['row']:12s} {r['split']:6s} {r['status']:5s} {r['matched']}/{r['checked']} numbers match "
                  f"at 2 decimals (max |diff| {r['max_abs_diff']:.4f})"
                  + (f": {', '.join(r['mismatches'])}" if r["mismatches"] else ""))
        print(f"every cell matches the reference: {'yes' if all_ok else 'NO'}")
        if args.write_results:
            write(rows, wall, rss_gib, all_ok)
        return 0 if all_ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def write(rows: list[dict], wall: float, rss_gib: float, all_ok: bool) -> None:
    from results_md import markdown_table, write_results

    summary = markdown_table(("quantity", "measured"), [
        ("wall time of `refbench demo` (empty cache: synthetic benchmark built from scratch)",
         f"{wall:.1f} s ({wall / 60:.1f} min)"),
        ("peak RSS (largest process of the demo)", f"{rss_gib:.2f} GiB"),
        ("cells", str(len(rows))),
        ("numbers matching the reference at 2 decimals",
         f"{sum(r['matched'] for r in rows)}/{sum(r['checked'] for r in rows)}"),
        ("every cell matches", "yes" if all_ok else "NO")], "ll")
    cells = markdown_table(("row", "split", "status", "matched at 2 decimals", "max abs diff (unrounded)", "mismatches"),
                           [(r["row"], r["split"], r["status"], f"{r['matched']}/{r['checked']}",
                             f"{r['max_abs_diff']:.4f}", "; ".join(r["mismatches"]) or "none") for r in rows],
                           "lllrrl")
    write_results("demo_time", "The demo from scratch: wall time and reference match",
                  [summary, cells],
                  ["`python -m refbench demo --out TMP` in a child process with `REFBENCH_CACHE` set to an empty "
                   "temporary folder. Reference: `leaderboards.numbers(\"refbench\", \"synth\")` (the table the demo "
                   "reproduces); each cell's numbers compared with its reproduced metrics formatted to 2 decimals."])


if __name__ == "__main__":
    sys.exit(main())
