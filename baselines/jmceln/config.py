"""JMCELN configurations: ``paper`` (the settings of §4) and ``tiny`` (same code, small widths).

Paper: Huang & Satoh, "Referring Image Segmentation via Joint Mask Contextual Embedding Learning
and Progressive Alignment Network", EMNLP 2023.  There is
no official code, so every setting the paper does
not state is a field below, marked OPEN with the choice made and why.

Table 2's ablation rows are the presets in :data:`ABLATIONS` (``build(..., ablation="w/o-pan")``).
"""
from __future__ import annotations

from dataclasses import dataclass

from baselines.common.clip import RN101, CLIPConfig, CLIPTextConfig, CLIPVisionConfig
from refbench.core.errors import RefbenchError


@dataclass(frozen=True)
class JMCELNConfig:
    """Everything that fixes a JMCELN network.

    Stated by the paper:
        input_size: 416 (§4 "The input images were resized to 416×416").
        clip: CLIP encoders, ResNet-101 image encoder (§4 "initiated by CLIP ... ResNet-101").
        dim: C = 1024 (§4), the width of F_m, F_mt and the contextual embeddings.
        num_stages: n = 6 cascade stages (§4); 0 = no cascade (Table 2 rows 1-2).
        num_embeddings: Q = 20 learnable contextual embeddings (§4).
        num_heads: 8 ("All multi-head attentions had eight heads", §4): Eq. 3, Eq. 4 and the
            LSRAN window attention.
        use_lsran: the Long-Short Relation-Aware Network (§3.3; Table 2 row 2).
        use_pan: the Progressive Alignment Network after every stage (§3.4.2; Table 2 rows 4/5).
        adaptive_embedding: Eq. 3 reads the current stage's output F_mt^i; False = "w/o adaptive
            LCE" (Table 2 row 6): every stage's update reads F_m and F_mt^0 instead (§4.2).
        pan_kernel: the PAN's depthwise convolution, 7×7 (§3.4.2).

    OPEN (not stated by the paper; the choice and the reason):
        stride32_feature: ``"attnpool"`` (default) = CLIP's attention pool run densely over the
            layer4 map (output 512 channels for RN101), as CRIS (the CLIP-initialised cascade JMCELN
            compares itself to, same weights, same 416 input) takes its stride-32 feature; or
            ``"layer4"`` = the raw 2048-channel map ("fifth-layer feature map", §3.2).
        neck_slope: negative slope of the neck's LeakyReLU (σ of Eq. 1-2): 0.01, PyTorch's default.
        neck_merge_kernel: kernel of W_{m_i} in Eq. 2 (the paper: "convolution layers for channel
            projection"): 1.  W_{v_i} are 1×1 for the same reason.
        window_size: LSRAN's window w (Fig. 2b does not give it): 13, which tiles the 52×52
            stride-8 map of a 416 input into 4×4 windows without padding.
        window_mlp_ratio: the window attention is a Swin block (W-MSA + MLP, Liu et al. 2021a, the
            paper's citation for it); MLP hidden = 4 × C as in Swin.
        relation_dilations: the four relation types' dilated 3×3 convolutions: rates 1, 3, 6, 12
            (from short to long range on the 52×52 map: receptive fields 3 … 25 pixels at stride 8);
            each branch gives C/4 channels so their concatenation is C for the 1×1 mix.
        embedding_init_std: q^0 ~ N(0, std²) ("randomly initialized", §3.1): 1.0, as nn.Embedding.
        upsample_channels: the progressive upsampling (§3.5): a 3×3 conv-BN-ReLU at each of
            strides 8, 4, 2 with C/4, C/8, C/16 channels, 2× bilinear between them, a 1×1 conv to
            2 classes and a last 2× bilinear to the input size.
        ce_class_weights: the cross-entropy of §3.5 is unweighted: None.
    """

    variant: str
    input_size: int
    clip: CLIPConfig
    dim: int
    num_stages: int
    num_embeddings: int
    num_heads: int = 8
    use_lsran: bool = True
    use_pan: bool = True
    adaptive_embedding: bool = True
    pan_kernel: int = 7
    stride32_feature: str = "attnpool"
    neck_slope: float = 0.01
    neck_merge_kernel: int = 1
    window_size: int = 13
    window_mlp_ratio: float = 4.0
    relation_dilations: tuple[int, ...] = (1, 3, 6, 12)
    embedding_init_std: float = 1.0
    upsample_channels: tuple[int, ...] = (256, 128, 64)
    ce_class_weights: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.stride32_feature not in ("attnpool", "layer4"):
            raise RefbenchError(f"stride32_feature must be 'attnpool' or 'layer4', got {self.stride32_feature!r}")
        if self.dim % 4 or self.dim % self.num_heads:
            raise RefbenchError(f"dim (C) must be divisible by 4 (PAN splits C/4, C/2, C) and by num_heads "
                                f"{self.num_heads}, got {self.dim}")
        if not self.relation_dilations or self.dim % len(self.relation_dilations):
            raise RefbenchError(f"dim {self.dim} must be divisible by the number of relation branches "
                                f"{len(self.relation_dilations)}")
        if self.num_stages < 0 or (self.num_stages > 0 and self.num_embeddings < 1):
            raise RefbenchError("num_stages must be >= 0, and num_embeddings >= 1 when there is a cascade")
        if len(self.upsample_channels) < 1:
            raise RefbenchError("upsample_channels needs at least one stage")
        if self.input_size < 32:
            raise RefbenchError(f"input_size must be at least 32 (the stride-32 map), got {self.input_size}")


PAPER = JMCELNConfig(variant="paper", input_size=416, clip=RN101, dim=1024, num_stages=6, num_embeddings=20)

# Same code, small widths (CPU training on the synthetic benchmark): CLIP-ResNet width 16 with one
# block per stage, a 2-layer text transformer of width 64, C = 64, 2 stages, Q = 4, input 160
# (stride-8 map 20×20, window 5).  The 49,408-token vocabulary is kept so CLIP ids fit.
TINY = JMCELNConfig(
    variant="tiny",
    input_size=160,
    clip=CLIPConfig("tiny", CLIPVisionConfig(layers=(1, 1, 1, 1), width=16, output_dim=64),
                    CLIPTextConfig(width=64, heads=2, layers=2, output_dim=64)),
    dim=64, num_stages=2, num_embeddings=4, num_heads=4, window_size=5, relation_dilations=(1, 2, 4, 8),
    upsample_channels=(32, 16, 16),
)

CONFIGS: dict[str, JMCELNConfig] = {"paper": PAPER, "tiny": TINY}

# Table 2 (RefCOCO testB ablation) as config changes to the full model (row 5, "Ours (w/ PAN)").
ABLATIONS: dict[str, dict] = {
    "full": {},                                                        # row 5
    "baseline": {"use_lsran": False, "num_stages": 0},                 # row 1: encoders + neck + upsampling
    "+lsran": {"num_stages": 0},                                       # row 2
    "+cascade": {"use_lsran": False, "use_pan": False},                # row 3: cascade with LCE, no LSRAN
    "w/o-pan": {"use_pan": False},                                     # row 4: LSRAN + cascade
    "w/o-adaptive-lce": {"adaptive_embedding": False},                 # row 6
}
