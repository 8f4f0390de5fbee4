"""The demo behind ``make demo``: refbench's main job on the embedded synthetic benchmark.

No download and no training: the tiny variants of the five reference models ship with trained
weights (``baselines/<model>/weights``).  The demo

1. builds the default synthetic benchmark once (small, seed 0; ~15 s) unless ``--data-root``
   has one;
2. runs ``refbench reproduce refbench:synth``: evaluates every shipped model on synth/val,
   synth/testA and synth/testB and writes refbench's reference table with the published
   (reference) and reproduced numbers side by side, as Markdown and LaTeX;
3. draws two figures: reference vs reproduced mIoU per model and split, and image / GT /
   prediction overlays of the best model on a few test sentences;
4. writes ``report.html`` (through ``reproduce``): one self-contained page with every cell's metrics,
   slices, curves, a gallery of its saved masks and a sortable per-sample table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from refbench.core.errors import RefbenchError
from refbench.core.progress import SILENT, Reporter


def run_demo(out: Path, data_root: str | None = None, reporter: Reporter = SILENT, bootstrap: int = 200) -> dict:
    """Run the demo into ``out``; returns the reproduce document."""
    from refbench.reproduce import reproduce

    out = Path(out)
    if data_root is not None and not Path(data_root).is_dir():
        raise RefbenchError(f"--data-root {data_root}: no such directory; leave it out to build the synthetic "
                            "benchmark into the cache")
    doc = reproduce("refbench:synth", out, rows=("all",), data_root=data_root, device="cpu", bootstrap=bootstrap,
                    reporter=reporter, data_root_explicit=data_root is not None, save_masks=True)
    failed = [c for c in doc["cells"] if c["status"] != "done"]
    if failed:
        raise RefbenchError(f"demo: {len(failed)} cell(s) did not run, e.g. {failed[0]['row']} on "
                            f"{failed[0]['split']}: {failed[0]['hint']}")
    reporter.message("\n" + Path(doc["tables"]["markdown"]).read_text())
    figures = [compare_figure(doc, out / "reference_vs_reproduced.png")]
    best = max((c for c in doc["cells"] if c["split"] == "synth/testB"), key=lambda c: c["metrics"]["mIoU"])
    figures.append(overlay_figure(best["model"], best["checkpoint"], "synth/testB", data_root,
                                  out / f"overlays_{best['model']}_testB.png"))
    reporter.message("figures: " + ", ".join(str(f) for f in figures))
    if doc.get("report"):
        reporter.message(f"report: {doc['report']} (one self-contained page: open it in a browser)")
    doc["figures"] = [str(f) for f in figures]
    return doc


def compare_figure(doc: dict, path: Path) -> Path:
    """Reference vs reproduced mIoU (with 95 % CI) per shipped model and split."""
    import leaderboards

    from refbench.core.results import read_results
    from refbench.tables.plots import BarPoint, plot_published_vs_reproduced

    published = {(n.method_key, n.split): n.value for n in leaderboards.numbers("refbench", "synth")
                 if n.metric == "mIoU"}
    points = []
    for c in doc["cells"]:
        res = read_results(c["results"])
        split = c["split"].split("/", 1)[1]
        points.append(BarPoint(f"{c['model']}\n{split}", published.get((c["row"], split)), res.metrics["mIoU"],
                               res.ci.get("mIoU", (None, None)), "refbench:synth"))
    return plot_published_vs_reproduced(points, "mIoU", path, "tiny models on the synthetic benchmark",
                                        published_label="refbench reference (leaderboards/published/refbench.csv)")


def overlay_figure(model_name: str, checkpoint: str, split_name: str, data_root: str | None, path: Path,
                   n: int = 6) -> Path:
    """Image | GT | prediction rows for the first ``n`` sentences of ``split_name``."""
    import torch

    from refbench.core.models import build_model
    from refbench.core.protocols import get_protocol
    from refbench.core.tokenize import get_tokenizer
    from refbench.data import RISDataset, collate
    from refbench.eval.predict import predict_batch
    from refbench.eval.splits import open_eval_split
    from refbench.tables.overlays import OverlaySample, plot_overlays

    model = build_model(model_name, "tiny")
    model.load_checkpoint(checkpoint)
    protocol = get_protocol("lavt").resolve(model.binarize_rule)
    split = open_eval_split(split_name, data_root, explicit=data_root is not None)
    ds = RISDataset(split, protocol, tokenizer=get_tokenizer(model.text_encoder_kind, model.token_length),
                    input_size=model.input_size)
    idx = list(range(0, len(ds), max(1, len(ds) // n)))[:n]
    batch = collate([ds[i] for i in idx])
    pred = predict_batch(model.eval(), batch, protocol, torch.device("cpu"))
    samples = []
    for k, i in enumerate(idx):
        s = ds.samples[i]
        with Image.open(split.image_path(s)) as im:
            image = np.asarray(im.convert("RGB").resize((protocol.canvas, protocol.canvas), Image.BILINEAR))
        samples.append(OverlaySample(s.sample_id, batch["mask"][k].numpy().astype(bool), pred[k].numpy(), image,
                                     s.sentence))
    return plot_overlays(samples, path, f"{model_name} (tiny) on {split_name}")
