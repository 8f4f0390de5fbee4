"""LAVT configurations: ``paper`` (the official RefCOCO settings) and ``tiny`` (same code, small).

Paper settings: Yang et al., "LAVT: Language-Aware Vision Transformer for Referring Image
Segmentation", CVPR 2022, §4.1 (implementation details) and the official ``test.py`` flags
``--swin_type base --window12 --img_size 480`` (the official yz93/LAVT-RIS test script).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from baselines.common.bert import BERT_BASE, BertEncoderConfig
from baselines.common.swin import SwinConfig


@dataclass(frozen=True)
class LAVTConfig:
    """Everything that fixes an LAVT network.

    Attributes:
        variant: ``paper`` or ``tiny``.
        input_size: side of the square input (480 in the paper).
        swin: backbone (Swin-B, window 12, drop-path 0.3 in the paper).
        text: BERT size (bert-base-uncased in the paper).
        decoder_hidden: channels of the mask decoder (``SimpleDecoding``: C4 / 2 = 512).
        fusion_heads: heads of each PWAM (``--mha`` default 1-1-1-1).
        fusion_dropout: dropout inside PWAM (``--fusion_drop`` default 0).
        ce_class_weights: background/foreground weights of the training cross-entropy (0.9, 1.1
            in the official ``train.py``).
    """

    variant: str
    input_size: int
    swin: SwinConfig
    text: BertEncoderConfig
    decoder_hidden: int
    fusion_heads: int = 1
    fusion_dropout: float = 0.0
    ce_class_weights: tuple[float, float] = field(default=(0.9, 1.1))


PAPER = LAVTConfig(
    variant="paper",
    input_size=480,
    swin=SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=12,
                    drop_path_rate=0.3),
    text=BERT_BASE,
    decoder_hidden=512,
)

# Same code, small widths: trains on a CPU (forward + backward + AdamW step of a batch of 8 at
# 160x160 takes ~0.3 s on 2 cores) and still exercises every path of the paper model: window
# padding (stage maps 40/20/10/5 with window 7), shifted windows, a 2-layer BERT; 4.5 M parameters.
TINY = LAVTConfig(
    variant="tiny",
    input_size=160,
    swin=SwinConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8), window_size=7,
                    drop_path_rate=0.1),
    text=BertEncoderConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
    decoder_hidden=64,
)

CONFIGS: dict[str, LAVTConfig] = {"paper": PAPER, "tiny": TINY}
