"""refbench plot: PNG figures, the numbers behind them, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from refbench.metrics import RISMetrics
from refbench.core.records import SampleRecords
from refbench.core.protocols import get_protocol
from refbench.core.results import results_document, write_json_atomic, write_records_jsonl
from refbench.tables.plots import precision_at, select_samples


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


def _run(root: Path, model: str, seed: int, noise: float, types=None, protocol="lavt") -> Path:
    n = 80
    gt = torch.rand(n, 20, 20, generator=torch.Generator().manual_seed(0)) > 0.5
    if types is not None:
        gt[[i for i, t in enumerate(types) if t == "zero"]] = False
    pred = gt ^ (torch.rand(n, 20, 20, generator=torch.Generator().manual_seed(seed)) < noise)
    acc = RISMetrics(protocol)
    acc.update(pred, gt, [f"s{i}" for i in range(n)], types)
    doc = results_document(acc.report(), "eval", None, None, model=model, variant="paper", dataset="refcoco",
                           split="val", subset=None, split_name="refcoco/val")
    root.mkdir(parents=True)
    write_json_atomic(root / "results.json", doc)
    write_records_jsonl(root / "records.jsonl", acc.records)
    return root / "results.json"


def test_precision_at_matches_the_metric_definitions():
    rng = np.random.default_rng(0)
    I = rng.integers(0, 50, 300)
    U = I + rng.integers(0, 50, 300)
    U[:5] = 0
    I[:5] = 0
    I[5:10] = U[5:10] // 2  # exact ties with 0.5 where U is even
    rec = SampleRecords([str(i) for i in range(300)], I, U, I, I, np.ones(300, np.int8), np.full(300, -1, np.int8))
    from refbench.metrics.definitions import contributions

    for proto, op in (("lavt", ">="), ("cris", ">")):
        p = get_protocol(proto).replace(iou_eps=0.0) if proto == "cris" else get_protocol(proto)
        values = contributions(rec, p).values()
        got = precision_at(rec.iou(), np.array([0.5, 0.6, 0.7, 0.8, 0.9]), op)
        assert got == pytest.approx([values[f"P@{t:g}"] for t in (0.5, 0.6, 0.7, 0.8, 0.9)])
    assert precision_at(np.array([0.5]), np.array([0.5]), ">=")[0] == 100.0
    assert precision_at(np.array([0.5]), np.array([0.5]), ">")[0] == 0.0


def test_select_samples():
    ious = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.1}
    assert select_samples(ious, "worst", 2) == ["b", "d"]
    assert select_samples(ious, "best", 1) == ["a"]
    r = select_samples(ious, "random", 3, seed=1)
    assert len(set(r)) == 3 and r == select_samples(ious, "random", 3, seed=1)


def test_plot_compare_iou_hist_pcurve(run_cli, tmp_path):
    a = _run(tmp_path / "a", "magnet", 1, 0.05)
    b = _run(tmp_path / "b", "lavt", 2, 0.2)
    for cmd, extra in (("compare", ["--against", "magnet:1", "--bootstrap", 50]), ("iou-hist", []), ("pcurve", [])):
        out = tmp_path / f"{cmd}.png"
        code, stdout, err = run_cli("plot", cmd, a, b, *extra, "--out", out)
        assert code == 0, err
        w, h = _png(out)
        assert w > 300 and h > 200 and f"wrote {out}" in stdout
    code, _, err = run_cli("plot", "iou-hist", tmp_path / "a" / "records.jsonl", "--out", tmp_path / "r.png")
    assert code == 0, err


def test_zero_target_samples_are_left_out_of_iou_plots(run_cli, tmp_path):
    types = ["zero" if i % 4 == 0 else "one" for i in range(80)]
    path = _run(tmp_path / "z", "dmmi", 1, 0.1, types=types, protocol="refzom")
    from refbench.tables.compare import iou_series

    series, notes = iou_series([path])
    (iou, compare), = series.values()
    assert len(iou) == 60 and compare == ">=" and "20 zero-target samples left out" in notes[0]
    code, out, _ = run_cli("plot", "pcurve", path, "--out", tmp_path / "p.png")
    assert code == 0 and "note: " in out


def _mask_dirs(tmp_path: Path, n: int = 5) -> tuple[Path, Path, Path]:
    gt_dir, pred_dir, img_dir = tmp_path / "gt", tmp_path / "pred", tmp_path / "img"
    for d in (gt_dir, pred_dir, img_dir):
        d.mkdir()
    for i in range(n):
        gt = np.zeros((30, 40), np.uint8)
        gt[5:20, 5:5 + 5 * (i + 1)] = 255
        pred = np.zeros((30, 40), np.uint8)
        pred[5:20, 5:20] = 255
        Image.fromarray(gt).save(gt_dir / f"id{i}.png")
        Image.fromarray(pred).save(pred_dir / f"id{i}.png")
        Image.fromarray(np.full((60, 80, 3), 30 * i, np.uint8)).save(img_dir / f"id{i}.jpg")
    return gt_dir, pred_dir, img_dir


def test_plot_overlays(run_cli, tmp_path):
    gt, pred, img = _mask_dirs(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({"id0": "the small box on the left"}))
    out = tmp_path / "ov.png"
    code, stdout, err = run_cli("plot", "overlays", "--gt", gt, "--pred", pred, "--images", img, "--select", "worst",
                                "-n", 2, "--sentences", tmp_path / "s.json", "--out", out)
    assert code == 0, err
    assert "(2 samples: id0, id4)" in stdout            # IoU 1/3 and 15/25 are the two lowest
    _png(out)
    code, stdout, err = run_cli("plot", "overlays", "--gt", gt, "--pred", pred, "--ids", "id2", "--out", out)
    assert code == 0 and "id2" in stdout, err


def test_overlay_masks_are_resized_to_the_image(tmp_path):
    from refbench.tables.plots import load_overlay_samples

    gt, pred, img = _mask_dirs(tmp_path, n=1)
    (s,) = load_overlay_samples(gt, pred, img, ids=["id0"])
    assert s.image.shape == (60, 80, 3) and s.gt.shape == (60, 80) and s.pred.shape == (60, 80)
    assert s.iou == pytest.approx(1 / 3)


@pytest.mark.parametrize("args,needle", [
    (["overlays", "--gt", "{gt}", "--pred", "{pred}", "--ids", "nope", "--out", "{tmp}/x.png"], "--ids: no GT"),
    (["overlays", "--gt", "{gt}", "--pred", "{pred}", "--images", "{tmp}/none", "--out", "{tmp}/x.png"],
     "--images directory"),
    (["overlays", "--gt", "{gt}", "--pred", "{pred}", "--out", "{tmp}/x.pdf"], "figures are written as PNG"),
    (["overlays", "--gt", "{gt}", "--pred", "{pred}", "--sentences", "{tmp}/none.json", "--out", "{tmp}/x.png"],
     "--sentences file"),
    (["iou-hist", "{tmp}/missing.json", "--out", "{tmp}/x.png"], "no such results file"),
])
def test_plot_bad_input_is_one_line_exit_2(run_cli, tmp_path, args, needle):
    gt, pred, _ = _mask_dirs(tmp_path, n=2)
    args = [a.format(gt=gt, pred=pred, tmp=tmp_path) for a in args]
    code, _, err = run_cli("plot", *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_overlay_missing_image_names_the_file(run_cli, tmp_path):
    gt, pred, img = _mask_dirs(tmp_path, n=2)
    (img / "id1.jpg").unlink()
    code, _, err = run_cli("plot", "overlays", "--gt", gt, "--pred", pred, "--images", img, "--ids", "id1",
                           "--out", tmp_path / "x.png")
    assert code == 2 and "no image for sample 'id1'" in err


def test_plot_compare_unknown_metric(run_cli, tmp_path):
    a = _run(tmp_path / "a", "magnet", 1, 0.05)
    code, _, err = run_cli("plot", "compare", a, "--metric", "gIoU", "--out", tmp_path / "x.png")
    assert code == 2 and "no run reports it" in err
