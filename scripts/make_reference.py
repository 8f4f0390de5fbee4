#!/usr/bin/env python
"""Make refbench's reference numbers on the synthetic benchmark (maintainers' script).

From finished `refbench train` runs of the tiny variants (RUNS/<model>/best.pt, train.json):

1. ship each best checkpoint compactly as baselines/<model>/weights/<model>_tiny_synth.pt
   (float16, unused vocabulary rows zeroed, gzip: refbench.train.export);
2. evaluate the shipped file with `refbench eval` on synth/val, synth/testA, synth/testB
   -> leaderboards/reproduced/synth/<model>-tiny/<split>/{results.json, records.jsonl};
3. score the trivial predictors (empty, full image, largest object) on the same splits;
4. write leaderboards/papers/refbench/numbers.csv (the table `refbench table --paper refbench --table
   synth` shows and `refbench reproduce refbench:synth` / `make demo` regenerate), copy each run's
   train.json, log.jsonl and loss curve to leaderboards/reproduced/training/<model>-tiny/, and list
   everything in leaderboards/reproduced/index.json.

    python scripts/make_reference.py --runs RUNS --data-root DATA      # after training (steps 1-4)
    python scripts/make_reference.py --data-root DATA                  # re-measure the shipped files (2-4)

DATA is a data root holding the default synthetic benchmark (`refbench build-dataset synth --out DATA`).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("lavt", "magnet", "dmmi", "meres", "jmceln")
SPLITS = ("val", "testA", "testB")
METRICS = {"val": ("mIoU", "oIoU"), "testA": ("mIoU", "oIoU", "P@0.5", "P@0.9"),
           "testB": ("mIoU", "oIoU", "P@0.5", "P@0.9")}
DISPLAY = {"lavt": "LAVT (tiny)", "magnet": "MagNet (tiny)", "dmmi": "DMMI (tiny)", "meres": "MERES (tiny)",
           "jmceln": "JMCELN (tiny)", "trivial-empty": "empty mask", "trivial-full": "full image",
           "trivial-largest": "largest object"}


def used_token_ids(kind: str, length: int, data_root: str) -> set[int]:
    from refbench.data import open_split
    from refbench.core.tokenize import get_tokenizer

    tok = get_tokenizer(kind, length)
    ids: set[int] = set()
    for split in ("train", "val", "testA", "testB"):
        sentences = [s.sentence for s in open_split(f"synth/{split}", data_root).samples]
        for row in tok.encode_batch(sentences)[0]:
            ids.update(row)
    return ids


def training_entry(model: str, tdir: Path) -> dict:
    """The index.json entry of one tiny training run, from its copied train.json and config.json."""
    summary = json.loads((tdir / "train.json").read_text())
    cfg = json.loads((tdir / "config.json").read_text())["config"]
    return {
        "model": model, "variant": "tiny", "dir": str(tdir.relative_to(ROOT / "leaderboards" / "reproduced")),
        "command": f"refbench train --model {model} --variant tiny --data-root DATA --out RUNS/{model}",
        "dataset": cfg["dataset"], "seed": cfg["seed"], "epochs": summary["epochs_completed"],
        "steps": summary["steps"], "wall_time_s": summary["wall_time_s"],
        "best": {"metric": summary["best"]["metric"], "value": round(summary["best"]["score"], 2),
                 "epoch": summary["best"]["epoch"], "split": summary["val"]},
        "notes": summary.get("notes", []),
        "machine": "2-core CPU, no GPU, one core per training (OMP_NUM_THREADS=1)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=None,
                    help="finished training runs RUNS/<model>/ to export; without it the shipped weights are re-measured")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    from refbench.cli import main as cli
    from refbench.data import open_split
    from refbench.eval.trivial import trivial_metrics
    from refbench.core.models import build_model
    from refbench.train.export import export_compact

    reproduced = ROOT / "leaderboards" / "reproduced"
    rows: list[tuple[str, str, dict[str, dict]]] = []  # (key, display, {split: metrics})
    index_runs, index_training = [], []
    for model in args.models:
        tdir = reproduced / "training" / f"{model}-tiny"
        if args.runs is not None:
            run = args.runs / model
            m = build_model(model, "tiny")
            weights = ROOT / "baselines" / model / "weights"
            weights.mkdir(exist_ok=True)
            dst = weights / f"{model}_tiny_synth.pt"
            summary = json.loads((run / "train.json").read_text())
            export_compact(run / "best.pt", dst, used_token_ids(m.text_encoder_kind, m.token_length, args.data_root),
                           trained_on="synth/train (small, seed 0)", best=summary["best"])
            print(f"{model}: shipped {dst} ({dst.stat().st_size / 2**20:.1f} MiB)")
            tdir.mkdir(parents=True, exist_ok=True)
            for f in ("train.json", "log.jsonl", "loss_curve.png", "config.json"):
                shutil.copy(run / f, tdir / f)
        index_training.append(training_entry(model, tdir))
        per_split = {}
        for split in SPLITS:
            out = reproduced / "synth" / f"{model}-tiny" / split
            if out.exists():
                shutil.rmtree(out)
            try:
                cli(["eval", "--model", model, "--variant", "tiny", "--split", f"synth/{split}", "--data-root",
                     args.data_root, "--out", str(out), "--workers", "0", "--protocol", "lavt"])
            except SystemExit as e:
                if e.code:
                    raise
            per_split[split] = json.loads((out / "results.json").read_text())["metrics"]
            index_runs.append({"results": f"synth/{model}-tiny/{split}/results.json",
                               "description": f"{model} tiny, shipped checkpoint, synth/{split} (protocol lavt for every model, "
                                              "as the refbench:synth table states)"})
        rows.append((f"{model}-tiny", DISPLAY[model], per_split))
    trivial: dict[str, dict[str, dict]] = {}
    for split in SPLITS:
        for name, metrics in trivial_metrics(open_split(f"synth/{split}", args.data_root), "lavt").items():
            trivial.setdefault(name, {})[split] = metrics
    for name in ("empty", "full", "largest"):
        rows.append((f"trivial-{name}", DISPLAY[f"trivial-{name}"], trivial[name]))

    from leaderboards import COLUMNS

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r, (key, display, per_split) in enumerate(rows, start=1):
        section = "trivial predictors" if key.startswith("trivial") else "tiny models (trained by refbench)"
        for split in SPLITS:
            for metric in METRICS[split]:
                value = per_split[split][metric]
                note = ("sentence ignored: the largest annotated object of the image" if key == "trivial-largest"
                        else "")
                w.writerow(["refbench", "synth", r, section, key, display, "", "", "", "", "", "synth", split, "",
                            metric, "refbench eval, protocol lavt", f"{value:.2f}", note])
    (ROOT / "leaderboards" / "papers" / "refbench" / "numbers.csv").write_text(buf.getvalue(), encoding="utf-8")
    index_path = reproduced / "index.json"
    index = json.loads(index_path.read_text())
    keep = [e for e in index.get("runs", []) if not e["results"].startswith("synth/")]
    index["runs"] = keep + index_runs
    index["training"] = index_training
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote leaderboards/papers/refbench/numbers.csv ({len(rows)} rows) and {index_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
