"""Image and GT transforms of the evaluation protocols (refbench.core.protocols.Protocol).

``stretch`` (LAVT family, ReLA; official_implementations.md §1): PIL bilinear resize to
S x S (aspect not kept), ToTensor, ImageNet mean/std.  GT: a full-size mask resized with
PIL NEAREST (``gt_resize="nearest"``), polygons scaled to the canvas and rasterized
(``"polygon"``, ReLA), or kept at the original size (``"none"``).

``letterbox`` (CRIS, §5): the affine map that scales by min(S/H, S/W) and centres the
result (fractional offsets kept), applied with bicubic resampling and the CLIP mean as
fill, then CLIP mean/std.  :func:`letterbox_to_original` maps a prediction back with the
inverse affine, as CRIS does before scoring at the original size.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from refbench.core.errors import RefbenchError
from refbench.data.masks import MAX_PIXELS

MEAN_STD: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


_OPEN_LOCK = threading.Lock()


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open an image lazily (PIL reads only the header) and refuse it, before any pixel is
    decoded, when it is larger than ``MAX_PIXELS`` (100 MP).  The caller closes it.

    PIL's own decompression-bomb guard (a warning above ~89 MP, an error above ~179 MP) is
    kept quiet here: refbench's limit decides, with one line naming the file.  (The warning
    filter is process-global, so opening is serialized by a lock; it reads only the header.)"""
    path = Path(path)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise RefbenchError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise RefbenchError(f"{path}: is a folder, not a file ({what} expected)") from None
    except Image.DecompressionBombError:
        raise RefbenchError(f"{path}: {what} is larger than refbench's limit of {MAX_PIXELS // 1_000_000} MP "
                            f"(checked before decoding); resize it or fix the file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise RefbenchError(f"{path}: cannot read {what} ({e}); re-download or re-save it") from None
    w, h = im.size
    if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
        im.close()
        raise RefbenchError(f"{path}: {what} is {w}x{h} = {w * h / 1e6:.0f} MP, above refbench's limit of "
                            f"{MAX_PIXELS // 1_000_000} MP (checked before decoding); resize it or fix the file")
    return im


def decode(im: Image.Image, path: str | os.PathLike, what: str = "image", mode: str | None = None) -> Image.Image:
    """Decode a lazily opened image (optionally converted to ``mode``); decoding errors (a
    truncated file) become one line naming ``path``."""
    try:
        if mode is not None:
            return im.convert(mode)
        im.load()
        return im
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise RefbenchError(f"{path}: cannot decode {what} ({e}); re-download or re-save it") from None


def to_normalized_tensor(img: Image.Image, normalization: str) -> torch.Tensor:
    """float32 (3, H, W): ToTensor (/255) then (x - mean) / std."""
    if normalization not in MEAN_STD:
        raise RefbenchError(f"unknown normalization {normalization!r}; valid: {', '.join(MEAN_STD)}")
    mean, std = MEAN_STD[normalization]
    # torchvision's ToTensor + Normalize, op for op (same float rounding); made contiguous
    # first, since elementwise ops on the channels-last view are several times slower.
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous().float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(m).div_(s)


def stretch_image(img: Image.Image, size: int) -> Image.Image:
    """PIL bilinear resize to size x size (torchvision F.resize on a PIL image does exactly this)."""
    return img.resize((size, size), Image.BILINEAR)


def resize_mask_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """bool (size, size): a full-size bool mask resized with PIL NEAREST (the official GT resize)."""
    im = Image.fromarray(mask.astype(np.uint8), mode="L")
    return np.asarray(im.resize((size, size), Image.NEAREST)) != 0


@dataclass(frozen=True)
class Letterbox:
    """The CRIS input affine: input = scale * original + (pad_x, pad_y), in OpenCV's pixel-index
    convention (pixel i sits at coordinate i), as CRIS builds it for cv2.warpAffine."""

    scale: float
    pad_x: float
    pad_y: float

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> "Letterbox":
        scale = min(size / height, size / width)
        return cls(scale, (size - width * scale) / 2.0, (size - height * scale) / 2.0)

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.scale, self.pad_x, self.pad_y], dtype=torch.float64)

    def pil_inverse(self) -> tuple[float, ...]:
        """PIL AFFINE data (output -> input).  PIL samples at pixel centres (x + 0.5), so the
        offset carries a half-pixel correction that makes it equal OpenCV's index mapping."""
        a = 1.0 / self.scale
        half = 0.5 - 0.5 * a
        return (a, 0.0, -self.pad_x * a + half, 0.0, a, -self.pad_y * a + half)


def letterbox_image(img: Image.Image, size: int, normalization: str = "clip") -> tuple[Image.Image, Letterbox]:
    """Aspect-preserving, centred S x S image (bicubic, CLIP-mean fill) and its affine."""
    w, h = img.size
    lb = Letterbox.fit(h, w, size)
    mean = MEAN_STD[normalization][0]
    fill = tuple(int(round(c * 255)) for c in mean)
    out = img.transform((size, size), Image.AFFINE, lb.pil_inverse(), resample=Image.BICUBIC, fillcolor=fill)
    return out, lb


def letterbox_mask(mask: np.ndarray, lb: Letterbox, size: int) -> np.ndarray:
    """bool (size, size): a full-size mask under the letterbox affine (nearest, zero fill)."""
    im = Image.fromarray(mask.astype(np.uint8), mode="L")
    return np.asarray(im.transform((size, size), Image.AFFINE, lb.pil_inverse(), resample=Image.NEAREST,
                                   fillcolor=0)) != 0


def letterbox_to_original(pred: torch.Tensor, letterbox: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Map a prediction on the letterboxed S x S input back to the original image.

    pred: float (S, S) or (C, S, S) (probabilities or logits on the model input);
    letterbox: (3,) = (scale, pad_x, pad_y) from the dataset item.  Returns float
    (height, width) or (C, height, width): bicubic sampling of the input at
    ``scale * (x, y) + pad`` for every original pixel (CRIS: cv2.warpAffine with the
    inverse matrix, INTER_CUBIC, zero border); points outside the input read 0.
    """
    squeeze = pred.dim() == 2
    x = pred[None, None] if squeeze else pred[None]
    s = x.shape[-1]
    scale, pad_x, pad_y = (float(v) for v in letterbox.tolist())
    dev = pred.device
    xs = torch.arange(width, device=dev, dtype=torch.float64) * scale + pad_x
    ys = torch.arange(height, device=dev, dtype=torch.float64) * scale + pad_y
    gx = (2 * xs / (s - 1) - 1).to(torch.float32)  # align_corners=True: -1/1 = centres of pixels 0 / S-1
    gy = (2 * ys / (s - 1) - 1).to(torch.float32)
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(x.float(), grid, mode="bicubic", padding_mode="zeros", align_corners=True)[0]
    return out[0] if squeeze else out
