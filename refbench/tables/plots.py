"""PNG figures with matplotlib, headless: no pyplot, no GUI backend, no global state.

* :func:`plot_published_vs_reproduced` — bars per run and split, published next to
  reproduced with the 95% CI of the reproduced value and Δ written above.
* :func:`plot_iou_histogram` — distribution of per-sentence IoU, one outline per run.
* :func:`plot_precision_curve` — P@X for X in [0, 1] (share of sentences with IoU >= X, or
  > X per protocol), the papers' P@0.5…0.9 marked.
* overlays (image | GT | prediction) are drawn by :mod:`refbench.tables.overlays`.

Text from results files, records, sample ids and sentences is shown as it is: every ``$`` is
escaped (:func:`plain`), so matplotlib never parses it as math (``$x^2$`` stays ``$x^2$``, and
an unbalanced ``$\\frac{$`` cannot make the renderer fail), and figures are drawn with
``text.usetex`` off whatever the user's matplotlibrc says, so no string reaches TeX.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from refbench.core.errors import RefbenchError
from refbench.tables.figure_io import check_png_out, save_png
from refbench.tables.overlays import OverlaySample

F = TypeVar("F", bound=Callable)

PAPER_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def plain(text: object) -> str:
    """``text`` for a matplotlib label, shown literally: each ``$`` escaped, so it is never math."""
    return str(text).replace("$", r"\$")


def _no_tex(fn: F) -> F:
    """Run a plotting function with ``text.usetex`` off (a user's matplotlibrc may turn it on)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.usetex": False}):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


@dataclass
class BarPoint:
    """One bar pair: a run on a split, its published and reproduced value (percent) and the CI."""

    label: str
    published: float | None
    reproduced: float | None
    ci: tuple[float | None, float | None] | None = None
    source: str = ""


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_point(p: BarPoint) -> None:
    """Values and CI of a bar pair must be finite numbers (or None): a NaN or a string from a
    results file would otherwise break the axis limits deep inside matplotlib."""
    where = p.source or p.label
    for name, v in (("published", p.published), ("reproduced", p.reproduced)):
        if v is not None and not _finite(v):
            raise RefbenchError(f"{where}: {name} value {v!r} is not a finite number; fix the results file")
    if p.ci is not None and (len(p.ci) != 2 or any(v is not None and not _finite(v) for v in p.ci)):
        raise RefbenchError(f"{where}: CI {p.ci!r} is not a pair of finite numbers [low, high]; fix the results file")


@_no_tex
def plot_published_vs_reproduced(points: list[BarPoint], metric: str, out: str | Path, title: str = "",
                                 published_label: str = "published") -> Path:
    """Grouped bars: published (grey) vs reproduced (blue, with 95% CI whiskers); Δ above each pair."""
    if not points:
        raise RefbenchError("nothing to plot: no run has a value for this metric")
    for p in points:
        _check_point(p)
    check_png_out(out)
    fig = Figure(figsize=(max(4.0, 1.3 * len(points) + 1.5), 4.2))
    ax = fig.subplots()
    x = np.arange(len(points))
    w = 0.38
    pub = np.array([np.nan if p.published is None else p.published for p in points])
    rep = np.array([np.nan if p.reproduced is None else p.reproduced for p in points])
    ax.bar(x - w / 2, pub, w, color="0.65", label=plain(published_label))
    def whisker(p: BarPoint, k: int) -> float:
        if not p.ci or p.ci[k] is None or p.reproduced is None:
            return 0.0
        return abs(p.ci[k] - p.reproduced)

    lo = np.array([whisker(p, 0) for p in points])
    hi = np.array([whisker(p, 1) for p in points])
    ax.bar(x + w / 2, rep, w, color="tab:blue", label="reproduced (95% CI)", yerr=np.vstack([lo, hi]), capsize=3)
    finite = np.concatenate([pub[~np.isnan(pub)], rep[~np.isnan(rep)] + hi[~np.isnan(rep)]])
    top = float(finite.max()) if len(finite) else 100.0
    for i, p in enumerate(points):
        if p.published is None:
            ax.text(x[i] - w / 2, 1, "n/a", ha="center", va="bottom", fontsize=8, rotation=90)
        elif p.reproduced is not None:
            ax.text(x[i], max(p.published, p.reproduced + hi[i]) + 0.01 * top, f"Δ {p.reproduced - p.published:+.2f}",
                    ha="center", va="bottom", fontsize=8)
    long_labels = max(len(line) for p in points for line in p.label.split("\n")) > 16
    ax.set_xticks(x, [plain(p.label) for p in points], fontsize=8, rotation=20 if long_labels else 0,
                  ha="right" if long_labels else "center")
    ax.set_ylabel(plain(f"{metric} (%)"))
    ax.set_ylim(0, min(100.0, top * 1.12) if top > 0 else 1.0)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(plain(title or f"{metric}: published vs reproduced"), fontsize=10)
    return save_png(fig, out)


@_no_tex
def plot_iou_histogram(series: dict[str, np.ndarray], out: str | Path, bins: int = 20, title: str = "") -> Path:
    """Histogram of per-sentence IoU in [0, 1] for each run (share of sentences per bin, in %)."""
    if not series or all(len(v) == 0 for v in series.values()):
        raise RefbenchError("nothing to plot: the runs have no targeted samples")
    if bins < 1:
        raise RefbenchError("--bins must be at least 1")
    check_png_out(out)
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    edges = np.linspace(0.0, 1.0, bins + 1)
    for label, iou in series.items():
        weights = np.full(len(iou), 100.0 / max(len(iou), 1))
        ax.hist(np.clip(iou, 0.0, 1.0), bins=edges, weights=weights, histtype="step", linewidth=1.6,
                label=plain(f"{label} (n={len(iou)}, mean {100 * iou.mean():.2f})"))
    ax.set_xlabel("IoU per sentence")
    ax.set_ylabel("sentences (%)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(plain(title or "IoU histogram"), fontsize=10)
    return save_png(fig, out)


def precision_at(iou: np.ndarray, thresholds: np.ndarray, compare: str = ">=") -> np.ndarray:
    """P@X in percent for every X (refbench.metrics.definitions.precision_curve)."""
    from refbench.metrics.definitions import precision_curve

    return precision_curve(iou, thresholds, compare)


@_no_tex
def plot_precision_curve(series: dict[str, tuple[np.ndarray, str]], out: str | Path, title: str = "") -> Path:
    """P@X curves (X from 0 to 1) per run; the papers' thresholds 0.5…0.9 are marked with their values."""
    if not series or all(len(v[0]) == 0 for v in series.values()):
        raise RefbenchError("nothing to plot: the runs have no targeted samples")
    check_png_out(out)
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    xs = np.linspace(0.0, 1.0, 201)
    marks = np.array(PAPER_THRESHOLDS)
    for label, (iou, compare) in series.items():
        line, = ax.plot(xs, precision_at(iou, xs, compare), linewidth=1.6, label=plain(f"{label} (IoU {compare} X)"))
        pm = precision_at(iou, marks, compare)
        ax.plot(marks, pm, "o", color=line.get_color(), markersize=4)
        for t, v in zip(marks, pm):
            ax.annotate(f"{v:.1f}", (t, v), textcoords="offset points", xytext=(2, 4), fontsize=7,
                        color=line.get_color())
    ax.set_xlabel("IoU threshold X")
    ax.set_ylabel("P@X (%)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(plain(title or "Precision at IoU threshold"), fontsize=10)
    return save_png(fig, out)


def select_samples(ious: dict[str, float], how: str, n: int, seed: int = 0) -> list[str]:
    """``n`` sample ids by IoU: ``worst`` (lowest first), ``best`` (highest first) or ``random``."""
    if n < 1:
        raise RefbenchError("-n must be at least 1")
    if how == "random" and not 0 <= seed < 2**32:
        raise RefbenchError(f"--seed {seed}: use a number from 0 to {2**32 - 1}")
    ids = sorted(ious)
    if how == "worst":
        return sorted(ids, key=lambda i: (ious[i], i))[:n]
    if how == "best":
        return sorted(ids, key=lambda i: (-ious[i], i))[:n]
    if how == "random":
        rng = np.random.default_rng(seed)
        return [ids[k] for k in sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False))]
    raise RefbenchError(f"--select {how!r}: use worst, best or random")


# ---- inputs -------------------------------------------------------------------------------------------------------
def _image_file(images: Path, sid: str) -> Path:
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
        p = images / f"{sid}{ext}"
        if p.exists():
            return p
    raise RefbenchError(f"no image for sample {sid!r} in {images} (expected {sid}.jpg, .jpeg or .png)")


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if mask.shape == (size[1], size[0]):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0


def load_overlay_samples(gt_dir: Path, pred_dir: Path, images_dir: Path | None = None, ids: list[str] | None = None,
                         select: str = "worst", n: int = 6, seed: int = 0,
                         sentences: dict[str, str] | None = None) -> list[OverlaySample]:
    """Samples for :func:`plot_overlays` from mask directories (as ``refbench score`` reads them).

    ``ids`` picks samples by id; otherwise ``select`` picks ``n`` by IoU.  Masks are resized
    (nearest) to the image size when an image directory is given.
    """
    from refbench.data.transforms import decode, open_image
    from refbench.score import list_masks, read_mask_png

    gts = list_masks(gt_dir, "GT")
    preds = list_masks(pred_dir, "prediction")
    if ids:
        missing = [i for i in ids if i not in gts or i not in preds]
        if missing:
            raise RefbenchError(f"--ids: no GT and prediction PNG for {missing[0]!r} in {gt_dir} / {pred_dir}")
        chosen = list(ids)
    else:
        common = [sid for sid in gts if sid in preds]
        if not common:
            raise RefbenchError(f"no sample id has both a GT PNG in {gt_dir} and a prediction PNG in {pred_dir}")
        ious = {}
        for sid in common:
            s = OverlaySample(sid, read_mask_png(gts[sid]), read_mask_png(preds[sid]))
            if s.gt.shape != s.pred.shape:
                raise RefbenchError(f"sample {sid!r}: prediction and GT sizes differ; "
                                    "predictions must be at the GT size")
            ious[sid] = s.iou
        chosen = select_samples(ious, select, n, seed)
    out = []
    for sid in chosen:
        gt, pred = read_mask_png(gts[sid]), read_mask_png(preds[sid])
        if gt.shape != pred.shape:
            raise RefbenchError(f"sample {sid!r}: prediction {preds[sid]} and GT {gts[sid]} differ in size")
        image = None
        if images_dir is not None:
            path = _image_file(images_dir, sid)
            with open_image(path) as im:  # header first: the pixel limit holds before decoding
                image = np.asarray(decode(im, path, mode="RGB"))
            size = (image.shape[1], image.shape[0])
            gt, pred = _resize_mask(gt, size), _resize_mask(pred, size)
        out.append(OverlaySample(sid, gt, pred, image, (sentences or {}).get(sid, "")))
    return out
