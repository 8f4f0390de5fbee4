"""``refbench predict``: a model on one's own image and sentence(s), through the evaluation's own code path.

    refbench predict --model magnet --variant tiny --image scene.jpg --text "the red circle" --out preds/

For every (image, sentence) pair:

1. the image is opened header first (refused in one line above 100 MP, see
   :func:`refbench.data.transforms.open_image`) and decoded as RGB, as ``refbench eval`` reads images;
2. it is transformed exactly as the model's protocol transforms dataset images
   (:mod:`refbench.data.transforms`: PIL-bilinear stretch to the model's input size, or the CRIS
   letterbox, then the protocol's mean/std), and the sentence is tokenized with the model's
   tokenizer (:func:`refbench.core.tokenize.get_tokenizer`);
3. the batch goes through the one prediction loop, :func:`refbench.eval.predict.predict_batches`,
   which returns the binary mask on the protocol canvas (480x480 under ``lavt``), i.e. exactly the
   mask ``refbench eval`` scores for that image and sentence;
4. the canvas mask is mapped back to the image size with **nearest-neighbour** resampling of the
   binary mask (PIL ``NEAREST``; a protocol whose canvas is the original size needs no mapping).
   So the mask at the image size is the scored prediction, resampled; it is not a new prediction
   from logits resized to the image size (protocol ``lavt-original`` does that).

Outputs in ``--out`` per image ``<stem>`` and sentence ``k`` (0, 1, …): ``<stem>_<k>.png`` (single
channel, 0 = background, 255 = foreground, at the image's size), ``<stem>_<k>_overlay.png`` (the
prediction on the image, the sentence above it, a legend) and one line per pair in
``predictions.jsonl`` (files, foreground share, model, checkpoint sha256, protocol and its hash).

``--batch FILE``: a JSON-lines file, one image per line, ``{"image": PATH, "text": ["…", …]}``;
a relative PATH is relative to the folder of FILE.  Every line is checked before any work (one-line
error naming the line).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from refbench.core.errors import RefbenchError
from refbench.core.models import RISModel, get_model_info
from refbench.core.outdir import MARKER, check_output, is_refbench_output, mark_output, remove_stale_files
from refbench.core.progress import SILENT, Reporter
from refbench.core.protocols import Protocol, get_protocol
from refbench.core.provenance import sha256_file
from refbench.core.results import write_text_atomic
from refbench.core.tokenize import Tokenizer, get_tokenizer
from refbench.data.transforms import (decode, letterbox_image, open_image, stretch_image,
                                      to_normalized_tensor)

MAX_TEXT_CHARS = 2000
MANIFEST = "predictions.jsonl"
_BATCH_KEYS = {"image", "text"}


@dataclass
class Predictor:
    """A loaded model with the protocol and tokenizer its predictions go through."""

    model: RISModel
    protocol: Protocol
    tokenizer: Tokenizer
    device: torch.device
    precision: str
    checkpoint: str | None
    checkpoint_sha256: str | None
    notes: list[str]

    @property
    def label(self) -> str:
        return f"{self.model.name} ({self.model.variant})"


def load_predictor(model: str, variant: str | None = None, checkpoint: str | None = None,
                   protocol: str | None = None, device: str | None = None, precision: str = "fp32") -> Predictor:
    """Build ``model``, load ``checkpoint`` (default: refbench's shipped weights for the variant) and
    resolve the protocol (default: the one the model's paper reports on RefCOCO-style data)."""
    from refbench.eval.device import PRECISIONS, precision_warning, resolve_device

    if precision not in PRECISIONS:
        raise RefbenchError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    info = get_model_info(model)
    variant = info.check_variant(variant)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise RefbenchError(f"--checkpoint {checkpoint}: no such file")
    net = info.build(variant)
    notes: list[str] = []
    path = checkpoint
    if path is None:
        shipped = info.shipped_checkpoint(variant)
        if shipped is None:
            official = [c.file for c in info.checkpoints if c.variant == variant and c.kind == "official"]
            raise RefbenchError(f"model {model!r} variant {variant!r} needs --checkpoint (official files: "
                                f"{', '.join(official) or 'none released; train one with refbench train'}); the "
                                "tiny variants ship with weights")
        path = str(shipped)
        notes.append(f"checkpoint: refbench's shipped {model}/{variant} weights ({shipped.name})")
    notes += list(net.load_checkpoint(str(path)) or [])
    proto = get_protocol(protocol or info.protocol_for(variant, "refer")).resolve(net.binarize_rule)
    dev = resolve_device(device)
    slow = precision_warning(dev, precision)
    if slow:
        notes.append(slow)
    net.eval().to(dev)
    tok = get_tokenizer(net.text_encoder_kind, net.token_length)
    return Predictor(net, proto, tok, dev, precision, str(path), sha256_file(path), notes)


# ---- inputs -----------------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> Image.Image:
    """The image as RGB, read as ``refbench eval`` reads dataset images (header first: size limit
    checked before decoding)."""
    path = Path(path)
    with open_image(path) as im:
        return decode(im, path, mode="RGB")


def check_texts(texts: Sequence[str], where: str) -> list[str]:
    """Non-empty sentences of at most :data:`MAX_TEXT_CHARS` characters (one-line error otherwise)."""
    out = []
    if not texts:
        raise RefbenchError(f"{where}: no sentence given; pass --text \"...\" (repeatable)")
    for k, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise RefbenchError(f"{where}: sentence {k + 1} is empty or not a string; give the referring expression")
        if len(t) > MAX_TEXT_CHARS:
            raise RefbenchError(f"{where}: sentence {k + 1} has {len(t)} characters (limit {MAX_TEXT_CHARS}); "
                                "a referring expression is a sentence")
        out.append(t)
    return out


def read_batch_file(path: str | Path) -> list[tuple[Path, list[str]]]:
    """``--batch FILE``: [(image path, sentences)] from a JSON-lines file (see module doc)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RefbenchError(f"--batch {path}: no such file") from None
    except IsADirectoryError:
        raise RefbenchError(f"--batch {path}: is a folder; give a JSON-lines file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RefbenchError(f"--batch {path}: cannot read ({e})") from None
    jobs: list[tuple[Path, list[str]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--batch {path} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RefbenchError(f"{where}: not valid JSON ({e.msg}); expected {{\"image\": PATH, \"text\": [...]}}") \
                from None
        if not isinstance(obj, dict):
            raise RefbenchError(f"{where}: expected an object {{\"image\": PATH, \"text\": [...]}}")
        unknown = sorted(set(obj) - _BATCH_KEYS)
        if unknown:
            raise RefbenchError(f"{where}: unknown key {unknown[0]!r}; a line has only \"image\" and \"text\"")
        image, texts = obj.get("image"), obj.get("text")
        if not isinstance(image, str) or not image.strip():
            raise RefbenchError(f"{where}: \"image\" must be a non-empty path string")
        if not isinstance(texts, list):
            raise RefbenchError(f"{where}: \"text\" must be a list of sentences, e.g. [\"the red circle\"]")
        img = Path(image)
        jobs.append((img if img.is_absolute() else path.parent / img, check_texts(texts, where)))
    if not jobs:
        raise RefbenchError(f"--batch {path}: no line with an image; one JSON object per line")
    return jobs


def check_jobs(jobs: list[tuple[Path, list[str]]]) -> None:
    """Every image exists and is readable (headers only) and no two images share a file stem
    (their outputs would have the same names); before any model work."""
    stems: dict[str, Path] = {}
    for image, _ in jobs:
        with open_image(image):
            pass
        stem = output_stem(image)
        if stem in stems:
            raise RefbenchError(f"--image {image} and {stems[stem]} would both write {stem}_<k>.png; rename one or "
                                "give all sentences of an image on one line")
        stems[stem] = image


def output_stem(image: Path) -> str:
    """The file-name stem of an image's outputs (characters other than letters, digits, ``.-_`` become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._\-]", "_", image.stem) or "image"


# ---- the model ----------------------------------------------------------------------------------------------------
def make_batch(img: Image.Image, texts: Sequence[str], p: Predictor) -> dict:
    """The collated batch ``refbench.data.RISDataset`` + ``collate`` would build for this image and these
    sentences: image (B, 3, s, s), input_ids / attention_mask (B, L), orig_size (B, 2)[, letterbox (B, 3)]."""
    proto, size = p.protocol, p.model.input_size
    batch: dict = {}
    if proto.image_resize == "stretch":
        x = to_normalized_tensor(stretch_image(img, size), proto.normalization)
    elif proto.image_resize == "letterbox":
        boxed, lb = letterbox_image(img, size, proto.normalization)
        x = to_normalized_tensor(boxed, proto.normalization)
        batch["letterbox"] = lb.as_tensor()[None].repeat(len(texts), 1)
    else:
        raise RefbenchError(f"protocol {proto.name!r}: image_resize must be 'stretch' or 'letterbox'")
    ids, att = p.tokenizer.encode_batch(list(texts))
    batch["image"] = x[None].repeat(len(texts), 1, 1, 1)
    batch["input_ids"] = torch.tensor(ids, dtype=torch.int64).reshape(len(texts), -1)
    batch["attention_mask"] = torch.tensor(att, dtype=torch.int64).reshape(len(texts), -1)
    batch["orig_size"] = torch.tensor([[img.height, img.width]] * len(texts), dtype=torch.int64)
    return batch


def to_image_size(mask: torch.Tensor | np.ndarray, width: int, height: int) -> np.ndarray:
    """A bool canvas mask at the image size (nearest-neighbour; unchanged when already that size)."""
    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    arr = arr.astype(bool)
    if arr.shape == (height, width):
        return arr
    return np.asarray(Image.fromarray(arr.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 0


@dataclass
class Prediction:
    """One sentence's prediction: ``canvas`` bool on the protocol canvas (what eval scores),
    ``mask`` bool (H, W) at the image size."""

    text: str
    canvas: np.ndarray
    mask: np.ndarray


def predict_image(p: Predictor, img: Image.Image, texts: Sequence[str], batch_size: int = 8) -> list[Prediction]:
    """Predictions for every sentence about ``img`` (RGB), ``batch_size`` sentences per forward pass."""
    from refbench.eval.predict import predict_batches

    chunks = [list(texts[k:k + batch_size]) for k in range(0, len(texts), batch_size)]
    out: list[Prediction] = []
    batches = (make_batch(img, chunk, p) for chunk in chunks)
    for chunk, (_, masks) in zip(chunks, predict_batches(p.model, batches, p.protocol, p.device, p.precision)):
        for text, m in zip(chunk, masks):
            canvas = m.detach().cpu().numpy().astype(bool)
            out.append(Prediction(text, canvas, to_image_size(canvas, img.width, img.height)))
    return out


# ---- the command ---------------------------------------------------------------------------------------------------
def check_out(out: Path, inputs: Sequence[str | Path | None]) -> Path:
    """``--out``: a new or empty folder, or one an earlier ``refbench predict`` wrote (its files are replaced)."""
    check_output(out, "--out", inputs=inputs)
    if out.is_dir() and any(out.iterdir()) and not is_refbench_output(out):
        raise RefbenchError(f"--out {out} holds files refbench did not write (no {MARKER}); choose a new --out")
    return out


def run_predict(p: Predictor, jobs: list[tuple[Path, list[str]]], out: Path, batch_size: int = 8,
                reporter: Reporter = SILENT) -> list[dict]:
    """Predict every (image, sentences) job into ``out``; returns the ``predictions.jsonl`` rows."""
    from refbench.tables.overlays import plot_prediction

    if batch_size < 1:
        raise RefbenchError(f"--batch-size must be at least 1, got {batch_size}")
    check_jobs(jobs)
    out.mkdir(parents=True, exist_ok=True)
    if not is_refbench_output(out):
        mark_output(out, "predict")
    remove_stale_files(out, [MANIFEST])
    rows: list[dict] = []
    total = sum(len(t) for _, t in jobs)
    with reporter.progress(total, f"predict {p.label}") as advance:
        for image_path, texts in jobs:
            img = read_image(image_path)
            stem = output_stem(image_path)
            for k, pred in enumerate(predict_image(p, img, texts, batch_size)):
                mask_file, overlay_file = out / f"{stem}_{k}.png", out / f"{stem}_{k}_overlay.png"
                Image.fromarray(pred.mask.astype(np.uint8) * 255, mode="L").save(mask_file, format="PNG")
                plot_prediction(np.asarray(img), pred.mask, pred.text, overlay_file,
                                title=f"{p.label}, protocol {p.protocol.name}")
                area = int(pred.mask.sum())
                rows.append({"image": str(image_path), "k": k, "text": pred.text, "mask": mask_file.name,
                             "overlay": overlay_file.name, "width": img.width, "height": img.height,
                             "foreground_pixels": area, "foreground_share": area / (img.width * img.height),
                             "canvas": p.protocol.canvas, "model": p.model.name, "variant": p.model.variant,
                             "checkpoint_sha256": p.checkpoint_sha256, "protocol": p.protocol.name,
                             "protocol_hash": p.protocol.hash()})
                advance(1, f"{image_path.name} #{k}")
    write_text_atomic(out / MANIFEST, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


__all__ = ["Predictor", "Prediction", "load_predictor", "read_image", "read_batch_file", "check_jobs", "make_batch",
           "predict_image", "to_image_size", "run_predict", "check_out", "output_stem", "check_texts"]
