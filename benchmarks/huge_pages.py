#!/usr/bin/env python
"""CPU forward time and memory of the paper models with 4 KiB pages and with PyTorch's huge-page
allocation, which the ``refbench`` command turns on (refbench.core.huge_pages, THP_MEM_ALLOC_ENABLE).

For each of LAVT, MagNet and DMMI (paper variants, 480², synthetic official-layout weights), in a
fresh process per model and setting (``THP_MEM_ALLOC_ENABLE`` = 0 or 1 in its environment): RSS
with the model loaded; fp32 forwards at batch 1 and 2 (one warm-up, then the median of ``--rounds``);
the minor page faults and system CPU seconds of the last forward (the kernel mapping and zeroing
fresh pages); the peak RSS of the forwards after loading, beside the official code's figure
(benchmarks/memory_bf16.py).  Both settings must give bitwise the same outputs (checked here; the
exit status is 1 otherwise).

    python benchmarks/huge_pages.py                  # ~5 min on 2 cores
    python benchmarks/huge_pages.py --write-results  # also its section of RESULTS.md
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import memory_bf16 as mb  # noqa: E402  (same folder: weights, inputs, /proc readers, official figures)

SETTINGS = {"4 KiB pages": "0", "huge pages": "1"}  # label -> THP_MEM_ALLOC_ENABLE


def child(name: str, weights: str, rounds: int) -> dict:
    """One model, one setting (THP_MEM_ALLOC_ENABLE in the environment): times, faults, peak, output hash."""
    import torch

    from refbench.core.huge_pages import huge_pages_active

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model = mb._load(name, weights)
    out: dict = {"rss_loaded": mb._status()["VmRSS"], "huge_pages": huge_pages_active()}
    out["peak_reset"] = mb._reset_peak()
    with torch.no_grad():
        for b in (1, 2):
            x = mb._inputs(model, b)
            model(*x)  # warm-up
            times = []
            for _ in range(rounds):
                r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                y = model(*x)
                times.append(time.perf_counter() - t0)
                r1 = resource.getrusage(resource.RUSAGE_SELF)
            out[f"b{b}"] = {"times": times, "faults": r1.ru_minflt - r0.ru_minflt, "sys_s": r1.ru_stime - r0.ru_stime}
            while not isinstance(y, torch.Tensor):  # a model may return a tuple or a dict of outputs
                y = next(iter(y.values())) if isinstance(y, dict) else y[0]
            out[f"b{b}"]["sha"] = hashlib.sha256(y.float().contiguous().numpy().tobytes()).hexdigest()
    out["peak_forwards"] = mb._status()["VmHWM"]
    return out


def run(name: str, weights: str, rounds: int, setting: str, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), THP_MEM_ALLOC_ENABLE=SETTINGS[setting])
    proc = subprocess.run([sys.executable, __file__, "--child", name, weights, str(rounds)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {name} ({setting}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(mb.MODELS))
    ap.add_argument("--rounds", type=int, default=3, help="timed forwards per batch size (>= 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights-dir", default="/tmp/refbench-bench-weights", help="generated weights are kept here")
    ap.add_argument("--write-results", action="store_true", help="write section huge_pages of RESULTS.md")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return 0
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(mb.MODELS))
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)} (use {', '.join(mb.MODELS)})")
    folder = Path(args.weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows, same = [], True
    for name in models:
        w = str(mb.make_weights(name, folder))
        res = {s: run(name, w, args.rounds, s, args.threads) for s in SETTINGS}
        official = mb.OFFICIAL[name]
        for s, r in res.items():
            med = {b: statistics.median(r[f"b{b}"]["times"]) for b in (1, 2)}
            peak, loaded = r["peak_forwards"], r["rss_loaded"]
            rows.append([name, s + ("" if r["huge_pages"] == (SETTINGS[s] == "1") else " (NOT in effect)"),
                         f"{loaded:.0f} ({loaded / official['rss_loaded']:.2f}x)", f"{med[1]:.2f}", f"{med[2]:.2f}",
                         str(r["b1"]["faults"]), str(r["b2"]["faults"]), f"{r['b2']['sys_s']:.2f}",
                         f"{peak:.0f}" + ("" if r["peak_reset"] else " (incl. loading)"),
                         f"{peak / official['peak_forward_b2']:.2f}x"])
            print(f"[{name}] {s:11s} (in effect: {'yes' if r['huge_pages'] else 'no'}): RSS loaded {loaded:.0f} MiB "
                  f"({loaded / official['rss_loaded']:.2f}x official); fp32 b1 {med[1]:.2f} s, b2 {med[2]:.2f} s; "
                  f"minor faults per forward b1 {r['b1']['faults']}, b2 {r['b2']['faults']} (system "
                  f"{r['b2']['sys_s']:.2f} s); peak RSS of the forwards {peak:.0f} MiB "
                  f"({peak / official['peak_forward_b2']:.2f}x official)", flush=True)
        first, second = res.values()
        equal = all(first[f"b{b}"]["sha"] == second[f"b{b}"]["sha"] for b in (1, 2))
        same &= equal
        print(f"[{name}] outputs bitwise equal under both settings: {'yes' if equal else 'NO'}", flush=True)
    if args.write_results:
        from results_md import markdown_table, write_results

        table = markdown_table(["model (paper, 480²)", "pages", "RSS loaded (MiB, vs official)", "fp32 b1 (s)",
                                "fp32 b2 (s)", "page faults b1", "page faults b2", "system s (b2 forward)",
                                "peak RSS, forwards (MiB)", "vs official peak"], rows)
        notes = ["`4 KiB pages`: THP_MEM_ALLOC_ENABLE=0 (PyTorch's default); `huge pages`: THP_MEM_ALLOC_ENABLE=1, "
                 "what the `refbench` command sets for itself (refbench.core.huge_pages). Times: medians of "
                 f"{args.rounds} forwards after a warm-up, {args.threads} threads, each model and setting in a fresh "
                 "process; page faults and system seconds of the last forward; peak RSS over all forwards after "
                 "loading. Outputs bitwise equal under both settings: " + ("yes." if same else "NO.")]
        write_results("huge_pages", "Huge pages for CPU tensors: forward time, page faults and memory", [table], notes)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
