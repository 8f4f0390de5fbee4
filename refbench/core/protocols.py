"""Named, versioned evaluation protocols.

A :class:`Protocol` is an immutable record of every choice that changes an RIS number:
the canvas on which prediction and ground truth are compared, how the image and the GT
get there, which GT rasterization rule is used, how logits become a mask, which metric
family is reported, how P@X compares, and what happens to no-target samples.  Its
:meth:`~Protocol.hash` goes into every results file, so two numbers computed under
different protocols can never be silently compared.

Defaults reproduce the official LAVT-family ``test.py`` (LAVT, MagNet on RefCOCO, RefCOCO+,
G-Ref): 480x480 canvas, PIL bilinear image resize, nearest GT resize, GT = 1 where the
polygon sum == 1, per sentence, IoU = 0 when the union is empty, P@X with >=.  ``dmmi`` is the
same loop with DMMI's GT rule (the union of the polygons), which DMMI's own ``refer.py`` uses.

Which paper uses which GT rule (read from each paper's official test code):

==========  ==================================  ===============================================
protocol    used by                             GT rule (why)
==========  ==================================  ===============================================
lavt        LAVT, MagNet (RefCOCO/+/G-Ref)      polygon count == 1 (their test.py keeps
                                                ``mask == 1`` of REFER's summed polygons)
dmmi        DMMI (RefCOCO/+/G-Ref)              union (DMMI's refer.py: summed polygons != 0)
refzom      DMMI on Ref-ZOM                     union of the listed instances (same refer.py)
gres        ReLA on gRefCOCO                    union, polygons rasterized on the 480 canvas
cris        CRIS-style models                   union, original size (CRIS writes mask PNGs)
jmceln      JMCELN (its reading, see there)     polygon count == 1 (LAVT's test.py at 416)
==========  ==================================  ===============================================
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from refbench.core.errors import RefbenchError, suggest
from refbench.core.registry import Registry

FAMILIES = ("lavt", "refzom", "gres", "cris")
BINARIZATIONS = ("argmax", "sigmoid>0.5", "sigmoid>0.35", "nonzero")
NO_TARGET_RULES = ("none", "empty-mask", "flag-or-empty", "flag")


@dataclass(frozen=True)
class Protocol:
    """Every choice that changes a number.  Immutable; hashed into results files.

    Attributes:
        name, version: how the protocol is cited (``lavt`` v1).
        family: which metric set is reported: ``lavt`` (oIoU, mIoU, P@X over all
            sentences), ``refzom`` (the same over one/many-target sentences + Acc over
            zero-target ones), ``gres`` (gIoU, cIoU, N-acc, T-acc, P@X over targeted
            samples), ``cris`` (mIoU of I/(U+1e-6), P@X with strict >).
        input_size: side of the square model input in pixels.
        canvas: side of the square canvas on which I and U are counted; ``None`` means
            the original image size.
        image_resize: ``stretch`` (PIL bilinear to input_size x input_size, aspect not
            kept) or ``letterbox`` (aspect kept, centred, padded with the mean).
        gt_resize: ``nearest`` (full-size mask resized with PIL NEAREST), ``polygon``
            (polygons scaled to the canvas, then rasterized) or ``none`` (original size).
        gt_rule: ``lavt`` (pixel is foreground where the polygon count == 1) or
            ``union`` (where the count != 0).
        normalization: ``imagenet`` or ``clip`` mean/std.
        tokenizer, token_length: text encoding (``bert`` WordPiece truncated after
            [SEP] to 20 ids; ``clip`` BPE).
        binarize: ``None`` = the model's official rule; otherwise one of BINARIZATIONS.
        thresholds: the X of P@X.
        p_compare: ``>=`` (LAVT family, ReLA) or ``>`` (CRIS, CGFormer).
        iou_eps: 0 means IoU = I/U with IoU = 0 when U = 0; CRIS uses I/(U + 1e-6).
        no_target: how a prediction says "no target": ``none`` (not evaluated),
            ``empty-mask`` (DMMI: no foreground pixel), ``flag`` (model's NT head),
            ``flag-or-empty`` (the flag when the model gives one, else an empty mask).
    """

    name: str
    version: int = 1
    family: str = "lavt"
    input_size: int = 480
    canvas: int | None = 480
    image_resize: str = "stretch"
    gt_resize: str = "nearest"
    gt_rule: str = "lavt"
    normalization: str = "imagenet"
    tokenizer: str = "bert"
    token_length: int = 20
    binarize: str | None = None
    thresholds: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
    p_compare: str = ">="
    iou_eps: float = 0.0
    no_target: str = "none"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise RefbenchError(f"protocol {self.name!r}: family must be one of {FAMILIES}, got {self.family!r}")
        if self.binarize is not None and self.binarize not in BINARIZATIONS:
            raise suggest(self.binarize, BINARIZATIONS, "binarization")
        if self.p_compare not in (">=", ">"):
            raise RefbenchError(f"protocol {self.name!r}: p_compare must be '>=' or '>'")
        if self.no_target not in NO_TARGET_RULES:
            raise suggest(self.no_target, NO_TARGET_RULES, "no-target rule")
        if self.gt_rule not in ("lavt", "union"):
            raise RefbenchError(f"protocol {self.name!r}: gt_rule must be 'lavt' or 'union'")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["thresholds"] = list(self.thresholds)
        return d

    def hash(self) -> str:
        """sha256 (first 16 hex) of every field but the description."""
        d = self.to_dict()
        d.pop("description")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes) -> "Protocol":
        return dataclasses.replace(self, **changes)

    def resolve(self, model_binarize: str | None) -> "Protocol":
        """The protocol with ``binarize`` fixed: the model's official rule unless overridden."""
        if self.binarize is not None:
            return self
        if model_binarize is None:
            raise RefbenchError(f"protocol {self.name!r} leaves binarization to the model, but none was given")
        return self.replace(binarize=model_binarize)

    def summary(self) -> str:
        """One line that states the protocol, printed under every table."""
        canvas = f"{self.canvas}x{self.canvas} canvas" if self.canvas else "original-resolution canvas"
        cmp_ = "IoU >= X" if self.p_compare == ">=" else "IoU > X"
        iou = "IoU=I/(U+1e-6)" if self.iou_eps else "IoU=I/U, IoU=0 if U=0"
        binz = self.binarize or "model's official binarization"
        gt = {"lavt": "GT = polygon count == 1", "union": "GT = union of instances"}[self.gt_rule]
        return (f"protocol {self.name} v{self.version} [{self.hash()}]: per sentence, {canvas}, {gt}, "
                f"{binz}, {iou}, P@X: {cmp_}, no-target: {self.no_target}")


_LAVT = Protocol(
    name="lavt",
    description="Official LAVT/MagNet/DMMI test.py on RefCOCO/RefCOCO+/G-Ref: 480x480 canvas, "
    "PIL bilinear image resize, NEAREST GT resize, GT=1 where polygon sum==1, BERT 20 tokens, "
    "per sentence, oIoU=sum(I)/sum(U), mIoU=mean(I/U) with 0 when U=0, P@X with >=.",
)

_BUILTIN: dict[str, Protocol] = {
    "lavt": _LAVT,
    "lavt-448": _LAVT.replace(
        name="lavt-448", input_size=448, canvas=448,
        description="The lavt protocol at 448x448, as used for MagNet's multi-dataset checkpoint magnet_all.pth."),
    "lavt-original": _LAVT.replace(
        name="lavt-original", canvas=None, gt_resize="none",
        description="LAVT metrics counted at the original image size (prediction upsampled bilinearly "
        "from the model canvas); not what the papers report."),
    # DMMI's own test.py on REFER data: the LAVT loop, but DMMI's refer.py returns the union of the
    # annotation's polygons (pixel != 0) for every dataset, where LAVT's keeps pixels covered by
    # exactly one polygon.  The two differ wherever an annotation's polygons overlap (RefCOCO/+/G-Ref
    # have such annotations), so DMMI's published RefCOCO-family numbers are under this rule.
    "dmmi": _LAVT.replace(
        name="dmmi", gt_rule="union",
        description="Official DMMI test.py on RefCOCO/RefCOCO+/G-Ref: as lavt (480x480 canvas, PIL bilinear "
        "image resize, NEAREST GT resize, BERT 20 tokens, per sentence, oIoU, mIoU with 0 when U=0, P@X with "
        ">=, argmax) but with DMMI's GT: the union of the annotation's polygons (pixel != 0), not LAVT's "
        "polygon sum == 1."),
    "refzom": _LAVT.replace(
        name="refzom", family="refzom", gt_rule="union", no_target="empty-mask",
        description="DMMI on Ref-ZOM: lavt metrics over one/many-target sentences only (GT = union of "
        "the listed instances); Acc = share of zero-target sentences whose 480x480 prediction is empty."),
    "gres": _LAVT.replace(
        name="gres", family="gres", gt_rule="union", gt_resize="polygon", thresholds=(0.7, 0.8, 0.9),
        no_target="flag-or-empty",
        description="ReLA/GRES refer_evaluation: gIoU (no-target scores 1 if predicted no-target), "
        "cIoU=sum(I)/sum(U) with missed no-targets adding their predicted area, N-acc, T-acc, "
        "P@0.7/0.8/0.9 over targeted samples with >=."),
    "cris": Protocol(
        name="cris", family="cris", input_size=416, canvas=None, image_resize="letterbox",
        gt_resize="none", gt_rule="union", normalization="clip", tokenizer="clip", token_length=17,
        binarize="sigmoid>0.35", p_compare=">", iou_eps=1e-6,
        description="CRIS test: 416 letterbox input, sigmoid>0.35 after warping back to the original "
        "size, IoU=I/(U+1e-6), headline mIoU, Pr@X with strict >."),
    "jmceln": _LAVT.replace(
        name="jmceln", input_size=416, canvas=416, normalization="clip", tokenizer="clip", token_length=30,
        thresholds=(0.5, 0.9),
        description="JMCELN (EMNLP 2023) as its paper reports it: mIoU, Pr@50, Pr@90 (Tables 1-3). Sec. 4: "
        "images 'resized to 416x416' (stretched: no letterbox is mentioned), CLIP encoders (CLIP mean/std, "
        "CLIP BPE, sentence length 30), argmax over the 2-channel map. Its metric details are in a "
        "supplement we do not have; since every method was retrained at 416 with 'standardized data "
        "preprocessing' against LAVT and the prediction is made at the input size, scoring follows "
        "LAVT's test.py at 416: 416x416 canvas, NEAREST GT resize, GT=1 where polygon sum==1, per "
        "sentence, mIoU=mean(I/U) with 0 when U=0, P@X with >= (oIoU is computed too)."),
}


#: every named protocol (``register_protocol`` adds more, e.g. from a model package)
PROTOCOLS: Registry[Protocol] = Registry("protocol")
for _name, _protocol in _BUILTIN.items():
    PROTOCOLS.register(_name, _protocol)

#: the protocol of a benchmark format, whatever the model: its own benchmark's rules
FORMAT_PROTOCOLS: dict[str, str] = {"refzom": "refzom", "grefcoco": "gres"}


def protocol_for_format(dataset_format: str | None) -> str | None:
    """``refzom`` for Ref-ZOM-format data, ``gres`` for gRefCOCO-format data, else None (the model's own)."""
    return FORMAT_PROTOCOLS.get(dataset_format or "")


def get_protocol(name_or_protocol: "str | Protocol") -> Protocol:
    """Look up a named protocol (or pass a Protocol through)."""
    if isinstance(name_or_protocol, Protocol):
        return name_or_protocol
    return PROTOCOLS.get(str(name_or_protocol))


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol (e.g. a model package's own).  Names are unique."""
    if protocol.name in PROTOCOLS and PROTOCOLS.get(protocol.name) != protocol:
        raise RefbenchError(f"protocol {protocol.name!r} is already registered with other settings")
    PROTOCOLS.register(protocol.name, protocol, replace=True)
    return protocol
