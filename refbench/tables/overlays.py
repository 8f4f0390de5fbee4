"""Overlays people can read: ground truth and prediction on any image, in any object colour.

Each mask is drawn as a **light fill** (30 % opacity) plus a **2-pixel outline with a 1-pixel
black halo** on both sides, so the outline stays visible on a white, black or same-coloured
object.  The two masks have colours from the Okabe-Ito palette, distinguishable with the
common colour-vision deficiencies: ground truth sky blue, prediction vermillion.  Every figure
carries a legend.

Sentences, sample ids and labels are shown as plain text: matplotlib text is created with
``parse_math=False`` (``$x^2$`` stays ``$x^2$``; an unbalanced ``$`` cannot break the renderer)
and ``text.usetex`` is off whatever the user's matplotlibrc says.

* :func:`draw_mask` — the fill + outline of one mask on an image (uint8 arrays, vectorized numpy);
* :func:`gallery_tile` — GT | prediction side by side as a small JPEG (the HTML report's gallery);
* :func:`plot_overlays` — image | GT | prediction rows with sentences and a legend (``plot overlays``);
* :func:`plot_prediction` — one image with one prediction and its sentence (``refbench predict``).
"""
from __future__ import annotations

import io
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from refbench.core.errors import RefbenchError
from refbench.tables.figure_io import check_png_out, save_png


@dataclass
class OverlaySample:
    """One row of the overlay grid.  ``image``: uint8 (H, W, 3) or None; masks: bool (H, W) at the image size."""

    sample_id: str
    gt: np.ndarray
    pred: np.ndarray
    image: np.ndarray | None = None
    sentence: str = ""

    @property
    def iou(self) -> float:
        """I / U with IoU = 0 when U = 0, counted by refbench.metrics as every metric is."""
        import torch

        from refbench.metrics.accumulator import intersection_union

        I, U = intersection_union(torch.from_numpy(self.pred)[None], torch.from_numpy(self.gt)[None])[:2, 0].tolist()
        return I / U if U else 0.0

GT_COLOR = (86, 180, 233)      # Okabe-Ito sky blue
PRED_COLOR = (213, 94, 0)      # Okabe-Ito vermillion
HALO_COLOR = (0, 0, 0)
FILL_ALPHA = 0.30
OUTLINE_PX = 2
GT_LABEL = "ground truth (blue: outline + light fill)"
PRED_LABEL = "prediction (vermillion: outline + light fill)"


# ---- drawing on arrays ---------------------------------------------------------------------------------------------
def _erode(mask: np.ndarray) -> np.ndarray:
    """One step of binary erosion with a 3x3 cross (pixels outside the image count as background)."""
    out = mask.copy()
    out[1:, :] &= mask[:-1, :]
    out[:-1, :] &= mask[1:, :]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0, :] = out[-1, :] = False
    out[:, 0] = out[:, -1] = False
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """One step of binary dilation with a 3x3 cross."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def outline_band(mask: np.ndarray, width: int = OUTLINE_PX) -> np.ndarray:
    """bool (H, W): the mask's pixels within ``width`` pixels of its border (its inner outline)."""
    inner = mask
    for _ in range(width):
        inner = _erode(inner)
    return mask & ~inner


def outline_width(shape: tuple[int, int]) -> int:
    """Outline width in pixels for an image of ``shape`` (figures show it at ~300-600 px): 1 px per 120 px
    of the longer side, at least 2."""
    return max(OUTLINE_PX, round(max(shape) / 120))


def draw_mask(image: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float = FILL_ALPHA,
              width: int | None = None) -> np.ndarray:
    """``image`` (uint8 (H, W, 3)) with ``mask`` (bool (H, W)) as a light fill, an outline (``width`` px,
    default :func:`outline_width`) and a 1-px black halo on both sides of it."""
    width = outline_width(mask.shape) if width is None else width
    if image.shape[:2] != mask.shape:
        raise RefbenchError(f"mask {mask.shape[1]}x{mask.shape[0]} does not match image "
                            f"{image.shape[1]}x{image.shape[0]}")
    mask = mask.astype(bool)
    out = image.astype(np.float32)
    col = np.asarray(color, np.float32)
    out[mask] = (1.0 - alpha) * out[mask] + alpha * col
    band = outline_band(mask, width)
    halo = (_dilate(band) & ~band) | (_dilate(mask) & ~mask)  # 1 px inside and outside the coloured band
    out[halo & ~band] = HALO_COLOR
    out[band] = col
    return out.clip(0, 255).astype(np.uint8)


def grey_canvas(shape: tuple[int, int]) -> np.ndarray:
    """A mid-grey uint8 (H, W, 3) background for masks without an image."""
    return np.full((*shape, 3), 128, np.uint8)


def _resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0


def gallery_tile(image: np.ndarray | None, gt: np.ndarray, pred: np.ndarray, side: int = 224,
                 quality: int = 85) -> bytes:
    """GT (left) and prediction (right) on the image, each ``side`` pixels high, as JPEG bytes.

    The masks are resized (nearest) before drawing, so the outlines keep their width at the tile size."""
    if gt.shape != pred.shape:
        raise RefbenchError(f"GT {gt.shape[1]}x{gt.shape[0]} and prediction {pred.shape[1]}x{pred.shape[0]} "
                            "differ in size")
    base = grey_canvas(gt.shape) if image is None else image
    if base.shape[:2] != gt.shape:
        raise RefbenchError(f"image {base.shape[1]}x{base.shape[0]} and masks {gt.shape[1]}x{gt.shape[0]} differ "
                            "in size")
    h, w = gt.shape
    size = (max(1, round(side * w / h)), side)
    small = _resize_rgb(base, size)
    left = draw_mask(small, _resize_mask(gt, size), GT_COLOR, width=OUTLINE_PX)
    right = draw_mask(small, _resize_mask(pred, size), PRED_COLOR, width=OUTLINE_PX)
    gap = np.full((side, 4, 3), 255, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.concatenate([left, gap, right], axis=1)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# ---- matplotlib figures --------------------------------------------------------------------------------------------
@contextmanager
def _plain_text() -> Iterator[None]:
    """No TeX, whatever the user's matplotlibrc says (text is also created with parse_math=False)."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):
        yield


def wrap(text: str, width: int = 42, lines: int = 3) -> str:
    """``text`` on at most ``lines`` lines of ``width`` characters (``…`` when cut)."""
    parts = textwrap.wrap(" ".join(str(text).split()), width) or [""]
    return "\n".join(parts[:lines]) + (" …" if len(parts) > lines else "")


def _legend(fig, which: Sequence[str] = ("gt", "pred")) -> None:
    from matplotlib.patches import Patch

    handles = []
    for name in which:
        color, label = (GT_COLOR, GT_LABEL) if name == "gt" else (PRED_COLOR, PRED_LABEL)
        rgb = tuple(c / 255 for c in color)
        handles.append(Patch(facecolor=(*rgb, FILL_ALPHA), edgecolor=rgb, linewidth=2, label=label))
    legend = fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    for t in legend.get_texts():
        t.set_parse_math(False)


def plot_overlays(samples: Sequence[OverlaySample], out: str | Path, title: str = "") -> Path:
    """One row per sample: the image with the sentence above it, the ground truth, the prediction with its IoU."""
    if not samples:
        raise RefbenchError("no samples to show; pick some with --ids or --select")
    check_png_out(out)
    from matplotlib.figure import Figure

    with _plain_text():
        aspect = max(s.gt.shape[0] / max(s.gt.shape[1], 1) for s in samples)
        row_h = 2.6 * min(max(aspect, 0.3), 2.0) + 0.8
        fig = Figure(figsize=(9.0, row_h * len(samples) + 0.9), layout="constrained")
        axes = fig.subplots(len(samples), 3, squeeze=False)
        for row, s in zip(axes, samples):
            base = grey_canvas(s.gt.shape) if s.image is None else s.image
            panels = [(base, f"{s.sample_id}" + (f"\n{wrap(s.sentence)}" if s.sentence else "")),
                      (draw_mask(base, s.gt, GT_COLOR), "ground truth" + ("" if s.gt.any() else " (empty: no target)")),
                      (draw_mask(base, s.pred, PRED_COLOR),
                       f"prediction, IoU {s.iou:.3f}" + ("" if s.pred.any() else " (empty)"))]
            for ax, (img, label) in zip(row, panels):
                ax.imshow(img)
                ax.set_title(label, fontsize=8, parse_math=False)
                ax.set_xticks([])
                ax.set_yticks([])
        if title:
            fig.suptitle(title, fontsize=10, parse_math=False)
        _legend(fig)
        return save_png(fig, out, dpi=100)


def plot_prediction(image: np.ndarray, mask: np.ndarray, sentence: str, out: str | Path, title: str = "") -> Path:
    """The image with one predicted mask (fill + outline), the sentence above it and a legend."""
    from matplotlib.figure import Figure

    with _plain_text():
        h, w = mask.shape
        fig_w = 6.0
        fig = Figure(figsize=(fig_w, fig_w * min(max(h / max(w, 1), 0.3), 2.5) + 1.2), layout="constrained")
        ax = fig.subplots()
        ax.imshow(draw_mask(image, mask, PRED_COLOR))
        ax.set_title(wrap(sentence, 60, 4) + ("" if mask.any() else "\n(empty prediction: nothing found)"),
                     fontsize=10, parse_math=False)
        ax.set_xticks([])
        ax.set_yticks([])
        if title:
            fig.suptitle(title, fontsize=8, parse_math=False)
        _legend(fig, ("pred",))
        return save_png(fig, out, dpi=100)


__all__ = ["OverlaySample", "GT_COLOR", "PRED_COLOR", "draw_mask", "outline_band", "gallery_tile", "plot_overlays",
           "plot_prediction", "wrap", "grey_canvas"]
