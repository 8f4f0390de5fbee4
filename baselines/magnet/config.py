"""MagNet configurations: ``paper`` (480², single dataset), ``all`` (multi-dataset model at 448²), ``tiny``.

Paper: Chng et al., "Mask Grounding for Referring Image Segmentation", CVPR 2024 (§3, Eq. 15) and
its supplementary §3 (implementation details).  Architecture facts of the released checkpoints:
the official MagNet repository (yxchng/mask-grounding).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from baselines.common.bert import BERT_BASE, BertEncoderConfig
from baselines.common.swin import SwinConfig
from baselines.magnet.head import HeadConfig


@dataclass(frozen=True)
class MaskGroundingConfig:
    """Mask Grounding (paper §3.2, supplementary §3).

    Attributes:
        mask_ratio: probability with which each real word token is replaced by the learnable mask
            token ("a corruption probability of 0.15").
        min_masked: words masked per sentence at least (topped up with the smallest draws).  0: the
            paper states a probability and no minimum, so a short sentence may draw no word (it then
            adds nothing to the loss).  The tiny recipe used 1 (an effective rate of 0.24-0.35 on
            3-5-word sentences); it keeps 1 so that its shipped weights stay reproducible.
        predictor_width: width of the masked-token predictor ("8 BERT layers", supplementary §3):
            768, BERT-base's layer width; the words (768) and the image tokens (the pixel decoder's
            coarsest level, 256 wide) are projected to it.  The main text says the words are
            projected to "the same dimension as the image embedding"; a predictor of BERT layers
            cannot also be 256 wide, and the supplement's BERT layers are the more specific statement.
            ``None`` = the image tokens' width (refbench's earlier reading, kept for tiny).
        predictor_layers: BERT layers of the masked-token predictor (8; Tab. 3c).
        predictor_heads, predictor_ffn: their heads and FFN width.  Not given in the paper; BERT's:
            64 channels per head (12 at 768) and FFN = 4 x width (3072).
        mask_encoder_hidden: hidden width of the 2-layer MLP on the mask centre coordinates
            (not given in the paper; we use the predictor width).
        dropout: dropout inside the predictor (BERT's 0.1).
    """

    mask_ratio: float = 0.15
    min_masked: int = 0
    predictor_width: int | None = 768
    predictor_layers: int = 8
    predictor_heads: int = 12
    predictor_ffn: int = 3072
    mask_encoder_hidden: int = 768
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1], got {self.mask_ratio}")
        if self.min_masked < 0:
            raise ValueError(f"min_masked must be >= 0, got {self.min_masked}")
        width = self.predictor_width
        if width is not None and (width < 1 or width % self.predictor_heads):
            raise ValueError(f"predictor_width {width} must be a positive multiple of predictor_heads "
                             f"{self.predictor_heads}")


@dataclass(frozen=True)
class LossConfig:
    """Training objective (paper §3.4–3.5, Eq. 12–15; supplementary §3).

    Attributes:
        bce_weight, dice_weight, cal_weight, grounding_weight: λ of Eq. 15 (2.0 / 2.0 / 0.5 / 1.0).
        tau_p2p, tau_p2t: temperatures τ1 = 0.1 and τ2 = 0.3 of Eq. 13 and Eq. 14.
        cal_max_points: pixels per image entering CAL at most; above it, pixels are sampled at
            random and the negative sums are rescaled to stay unbiased (our choice: a 120×120
            mask-feature map would need a 14400² similarity matrix per image).
        deep_supervision: also apply BCE + Dice to the 9 intermediate decoder predictions and
            average (Mask2Former's auxiliary losses).  Off by default: Eq. 15 names one mask loss.
    """

    bce_weight: float = 2.0
    dice_weight: float = 2.0
    cal_weight: float = 0.5
    grounding_weight: float = 1.0
    tau_p2p: float = 0.1
    tau_p2t: float = 0.3
    cal_max_points: int = 4096
    deep_supervision: bool = False


@dataclass(frozen=True)
class MagNetConfig:
    """Everything that fixes a MagNet network.

    Attributes:
        variant: ``paper``, ``all`` or ``tiny``.
        input_size: side of the square input (480; 448 for ``magnet_all.pth``).
        swin: image encoder (Swin-B, window 12, drop-path 0.3; supplementary §3).
        text: language encoder (BERT-base).
        language_stage_ends: BERT layer index that ends each of the 4 language stages ("we split
            language encoder into 4 stages with an equal number of layers", §3.3; ``pwam_idx``).
        pyramid_sizes: output sizes of the CAM's average pools (1, 2, 3, 6; supplementary §3).
        pyramid_reduction: a pyramid branch has C / pyramid_reduction channels (C/4 in the code).
        head: Mask2Former head (4 encoder layers, 9 decoder layers, 1 query, width 256).
        projection_dim: output of ``lang_proj`` (the word feature projected to the mask-feature
            width for CAL's P2T term).
        fusion_dropout: dropout in the PWAMs (0 in the official code).
        grounding, losses: training-side settings.
    """

    variant: str
    input_size: int
    swin: SwinConfig
    text: BertEncoderConfig
    language_stage_ends: tuple[int, ...]
    head: HeadConfig
    pyramid_sizes: tuple[int, ...] = (1, 2, 3, 6)
    pyramid_reduction: int = 4
    projection_dim: int = 256
    fusion_dropout: float = 0.0
    grounding: MaskGroundingConfig = field(default_factory=MaskGroundingConfig)
    losses: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        ends = self.language_stage_ends
        if len(ends) != len(self.swin.depths):
            raise ValueError(f"language_stage_ends {ends} must have one entry per Swin stage ({len(self.swin.depths)})")
        if list(ends) != sorted(ends) or ends[-1] != self.text.num_layers or ends[0] < 0:
            raise ValueError(f"language_stage_ends {ends} must increase and end at the BERT depth "
                             f"{self.text.num_layers}")
        if self.head.in_channels != self.swin.stage_dims:
            raise ValueError(f"head.in_channels {self.head.in_channels} must equal the Swin stage widths "
                             f"{self.swin.stage_dims}")
        if any(d % self.pyramid_reduction for d in self.swin.stage_dims):
            raise ValueError(f"stage widths {self.swin.stage_dims} must be divisible by pyramid_reduction")
        if self.projection_dim != self.head.mask_dim:
            raise ValueError(f"projection_dim {self.projection_dim} must equal head.mask_dim {self.head.mask_dim} "
                             "(CAL compares projected words with mask features)")


_SWIN_B = SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=12,
                     drop_path_rate=0.3)

PAPER = MagNetConfig(
    variant="paper",
    input_size=480,
    swin=_SWIN_B,
    text=BERT_BASE,
    language_stage_ends=(3, 6, 9, 12),
    head=HeadConfig(),
)

# magnet_all.pth: the same network trained on RefCOCO + RefCOCO+ + G-Ref, evaluated at 448
# (``--img_size 448`` in run_test.sh; spec §2.5).
ALL = MagNetConfig(
    variant="all",
    input_size=448,
    swin=_SWIN_B,
    text=BERT_BASE,
    language_stage_ends=(3, 6, 9, 12),
    head=HeadConfig(),
)

# Same code, small widths: trains on a CPU.  Maps 40/20/10/5 at 160² with window 7 exercise the
# window padding and the odd-size patch merging; the 6×6 pool on the 5×5 stage-4 map exercises
# adaptive pooling to a larger grid.  BERT: one layer per language stage (the paper's equal split).
TINY = MagNetConfig(
    variant="tiny",
    input_size=160,
    swin=SwinConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=7, drop_path_rate=0.0),
    text=BertEncoderConfig(hidden_size=64, num_layers=4, num_heads=2, intermediate_size=128),
    language_stage_ends=(1, 2, 3, 4),
    head=HeadConfig(in_channels=(32, 64, 128, 256), conv_dim=32, mask_dim=32, encoder_layers=1, encoder_heads=4,
                    encoder_ffn=64, encoder_points=2, hidden_dim=32, decoder_layers=2, decoder_heads=4,
                    decoder_ffn=64, group_norm_groups=8),
    projection_dim=32,
    # the shipped tiny weights were trained with this predictor (at the image tokens' width, 32) and
    # at least one masked word per sentence: kept, so that `refbench train --variant tiny` reproduces them
    grounding=MaskGroundingConfig(min_masked=1, predictor_width=None, predictor_layers=1, predictor_heads=2,
                                  predictor_ffn=64, mask_encoder_hidden=32),
    # 1024 of the 40×40 = 1600 mask-feature pixels: CAL is the costliest term at this size
    losses=LossConfig(cal_max_points=1024),
)

CONFIGS: dict[str, MagNetConfig] = {"paper": PAPER, "all": ALL, "tiny": TINY}
