"""DMMI configurations: ``paper`` (Swin-B), ``resnet101`` and ``tiny`` (same code, small widths).

Paper: Hu et al., "Beyond One-to-One: Rethinking the Referring Image Segmentation", ICCV 2023,
§3 (method) and §5.1 (implementation details).  Where the official code
(``toggle1995/RIS-DMMI`` @ 753cd60) fixes a
number the paper does not state, the field says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from baselines.common.bert import BERT_BASE, BertEncoderConfig
from baselines.common.resnet import RESNET101, ResNetConfig
from baselines.common.swin import SwinConfig

BACKBONES = ("swin", "resnet101")


@dataclass(frozen=True)
class DMMIConfig:
    """Everything that fixes a DMMI network and its training objective.

    Attributes:
        variant: ``paper``, ``resnet101`` or ``tiny``.
        input_size: side of the square input (the released checkpoints are evaluated at 480;
            §5.1 trains at 448, the official ``train.sh`` at 480).
        backbone: ``swin`` (official ``dmmi_swin``) or ``resnet101`` (``dmmi_res``).
        swin: Swin settings (Swin-B, window 12, drop-path 0.3 in the official code).
        resnet: ResNet settings (ResNet-101, torchvision layout).
        text: BERT size (bert-base-uncased, §5.1).  Its hidden size is the language width
            ``lang_dim`` that the official modules hard-wire to 768.
        decoder_hidden: channels of the text-to-image decoder; the official ``Decoder`` ties
            it to the language width (768), because its transformer layers take the words as
            memory without a projection.
        decoder_heads: heads of every decoder transformer layer (8, §5.1).
        decoder_ffn: feed-forward width of those layers (2048, torch's default in the code).
        decoder_dropout: dropout inside those layers (0.1, torch's default in the code).
        fusion_dropout: dropout after the MBA projections (``--fusion_drop`` default 0).
        text_kernels: region sides of the text-to-image alignment Ω^α_r (1, 3, 5, §5.1).
        word_kernels: span lengths of the image-to-text alignment Ω^β_r (1, 2, 3, §5.1).
        ce_class_weights: background/foreground weights of the cross-entropy (official
            ``train.py``: 0.9, 1.1).
        sim_weight, contrastive_weight: weights of L_sim and L_con in the total loss (official
            ``train.py``: 0.01 each; the paper says only "summation").
        temperature: τ of L_con (official 0.05; §5.1 states 20, i.e. the inverse).
        erase_max_word_index: entity-phrase erasing considers word indices below this (19).
        erase_seed: seed of the per-sentence span choice (refbench; the official code draws
            once from Python's global RNG when the dataset is built).
    """

    variant: str
    input_size: int
    backbone: str
    swin: SwinConfig | None
    resnet: ResNetConfig | None
    text: BertEncoderConfig
    decoder_hidden: int
    decoder_heads: int = 8
    decoder_ffn: int = 2048
    decoder_dropout: float = 0.1
    fusion_dropout: float = 0.0
    text_kernels: tuple[int, ...] = (1, 3, 5)
    word_kernels: tuple[int, ...] = (1, 2, 3)
    ce_class_weights: tuple[float, float] = field(default=(0.9, 1.1))
    sim_weight: float = 0.01
    contrastive_weight: float = 0.01
    temperature: float = 0.05
    erase_max_word_index: int = 19
    erase_seed: int = 0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"DMMI backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if (self.backbone == "swin") != (self.swin is not None) or (self.backbone == "resnet101") != (
                self.resnet is not None):
            raise ValueError(f"DMMI backbone {self.backbone!r} needs exactly its own config (swin= or resnet=)")
        if self.decoder_hidden != self.lang_dim:
            raise ValueError(f"decoder_hidden ({self.decoder_hidden}) must equal the language width "
                             f"({self.lang_dim}): the decoder's transformer layers read the words as memory")
        if self.decoder_hidden % self.decoder_heads:
            raise ValueError(f"decoder_hidden {self.decoder_hidden} is not divisible by {self.decoder_heads} heads")
        if tuple(self.text_kernels) != (1, 3, 5) or tuple(self.word_kernels) != (1, 2, 3):
            # the official key names (refineimg11/33/55, refinelan11/21/31) and the per-kernel
            # query widths (C, C/2, C/4 and C, C/2, C//3) exist only for these kernels
            raise ValueError("DMMI supports the paper's kernels only: text (1, 3, 5), words (1, 2, 3)")

    @property
    def lang_dim(self) -> int:
        """Language feature width (768 for BERT-base, hard-wired in the official modules)."""
        return self.text.hidden_size

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channels of the four visual stages fed to the decoder."""
        return self.swin.stage_dims if self.swin is not None else self.resnet.stage_dims


PAPER = DMMIConfig(
    variant="paper",
    input_size=480,
    backbone="swin",
    swin=SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=12,
                    drop_path_rate=0.3),
    resnet=None,
    text=BERT_BASE,
    decoder_hidden=768,
)

RESNET101_VARIANT = DMMIConfig(
    variant="resnet101",
    input_size=480,
    backbone="resnet101",
    swin=None,
    resnet=RESNET101,
    text=BERT_BASE,
    decoder_hidden=768,
)

# Same code at CPU size (forward + backward of a batch of 8 well under a second or two on a
# 2-core CPU): maps 40/20/10/5 at 160 px with window 7 exercise window padding and odd patch
# merging; the MBA runs every kernel; the decoder's transformer layers run at d = 64, 2 heads.
TINY = DMMIConfig(
    variant="tiny",
    input_size=160,
    backbone="swin",
    swin=SwinConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=7,
                    drop_path_rate=0.1),
    resnet=None,
    text=BertEncoderConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
    decoder_hidden=64,
    decoder_heads=2,
    decoder_ffn=128,
)

CONFIGS: dict[str, DMMIConfig] = {"paper": PAPER, "resnet101": RESNET101_VARIANT, "tiny": TINY}
