"""MERES configurations: ``paper`` (Swin-B + BERT-base, 480²), ``clip`` (generalization setting,
CLIP text encoder) and ``tiny`` (same code, CPU-sized), plus the ablation switches of Tables 3–4.

Paper: "Visual Expression for Referring Expression Segmentation" (MERES),
the MERES paper: §3 (method, Eqs. 1–9), §4.1 + Appendix C (training), §4.3 (ablations),
Appendix E (generalization setting).  There is no public code,
so every number the paper does not give is a field below whose comment says
"not stated in the paper; chosen because …".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from baselines.common.bert import BERT_BASE, BertEncoderConfig
from baselines.common.clip import CLIPTextConfig
from baselines.common.swin import SwinConfig

# Table 3 guidance sets (§4.3.1): which token sets the decoder's cross-attention reads.
#   le              "LE": the language encoder's tokens Q_l, no enhancement, no extractor
#   enhanced_le     "Enhanced LE": the enhanced tokens Q̂_l only
#   ve              "VE": the visual expression tokens Q̂_v only (Q̂_l still drives the selection)
#   enhanced_le+all_pixels  Q̂_l + every stage-4 pixel token (no extractor)
#   enhanced_le+ve  the full model, G = {Q̂_l, Q̂_v} (§3.3)
GUIDANCE_SETS = ("enhanced_le+ve", "le", "enhanced_le", "ve", "enhanced_le+all_pixels")
# Table 4(a): top-k ranked selection, thresholding sigma(S/tau) > 0.5, or no selection (all pixels).
SELECTIONS = ("topk", "threshold", "none")
# Table 4(b): which linguistic cues produce visual expression tokens.
LINGUISTIC_CUES = ("global+local", "global", "local")
TEXT_ENCODERS = ("bert", "clip")


@dataclass(frozen=True)
class MERESConfig:
    """Everything that fixes a MERES network and its training objective.

    Attributes (paper-given values cite the paper; the rest say why they were chosen):
        variant: ``paper``, ``clip`` or ``tiny``.
        input_size: side of the square input (480, §4.1 / Appendix C).
        swin: vision encoder (Swin-B initialised from ImageNet-22k, §4.1).
        text_encoder: ``bert`` (BERT-base uncased, §4.1) or ``clip`` (Appendix E).
        text: BERT size (used when ``text_encoder == "bert"``).
        clip_text: the CLIP text tower (``clip`` variant): an OpenAI model name known to
            ``baselines.common.clip`` (``RN101``) or a :class:`CLIPTextConfig` (smaller towers
            for tests).
        token_length: token ids per sentence.
        joint_dim: width of the joint embedding space of Eq. 1 (phi^V, phi^L).
        enhance_layers, enhance_heads: the cross-attention layers that enhance Q_l with the
            stage-4 vision features (§3.2, first step of the adaptive selection).
        topk_ratio: k of §4.3.6, the share of stage-4 pixels selected per linguistic token
            (30 %, Fig. 5: "the k of 30 showed higher oIoU"); K = round(k·N), at least 1.
        refine_heads: heads of the masked cross-attention MCA (Eq. 8).
        relation_heads: heads of the MHSA of the visual relationship modeling (Eq. 9).
        mlp_ratio: hidden width / width of every MLP (Eqs. 8, 9 and the attention layers).
        dropout: dropout inside attention and MLPs.
        position_encoding: add a 2-D sine position code to the pixel tokens where they are
            attention keys (enhancement, MCA) or queries (decoder).
        decoder_dims: width of the four decoder stages, coarsest (stage 4) first (§3.3).
        decoder_heads: heads of each decoder stage's cross-attention.
        decoder_norm_groups: GroupNorm groups of the decoder's 3×3 fusion convolutions.
        temperature_init: initial value of the learnable temperature tau of Eq. 3.
        temperature_min: tau is clamped from below (the logits s/tau stay bounded).
        contrastive_weight: weight of L_c (Eq. 3) next to the mask BCE.
        relevance_positive_fraction: a stage-4 pixel is in Z+ (Eq. 3) when at least this share
            of its cell is target.
        guidance, selection, linguistic_cues, semantic_refinement, relationship_modeling,
        contrastive_loss, normalize_with_topk_mask: the ablation switches of Table 3 and
            Table 4 (a)–(f); defaults are the full model.  See :data:`ABLATIONS`.
    """

    variant: str
    input_size: int
    swin: SwinConfig
    text_encoder: str = "bert"
    text: BertEncoderConfig | None = BERT_BASE
    clip_text: str | CLIPTextConfig | None = None
    # not stated in the paper; chosen 20 because MERES builds on LAVT (Swin-B + BERT-base at 480²) and
    # every LAVT-family model it compares with pads/truncates BERT ids to 20 (LAVT's test.py).
    token_length: int = 20
    # not stated in the paper; chosen because 256 is the usual width of a pixel-text embedding
    # space in mask decoders (MaskFormer / Mask2Former mask embeddings) and the cosine map S only
    # needs to rank pixels, so a bottleneck well below C4 = 1024 and D = 768 suffices.
    joint_dim: int = 256
    # not stated in the paper ("the cross-attention layers", plural); chosen: 2, the smallest
    # number the plural allows — each layer is a pre-norm cross-attention + MLP of width D.
    enhance_layers: int = 2
    # not stated in the paper; chosen because 8 heads is the default of every transformer decoder
    # the paper compares with (VLT, CGFormer, ReLA, DMMI) and divides D = 768 (96 per head).
    enhance_heads: int = 8
    topk_ratio: float = 0.3
    # not stated in the paper; chosen as enhance_heads (same width D, same reason).
    refine_heads: int = 8
    # not stated in the paper; chosen as enhance_heads (same width D, same reason).
    relation_heads: int = 8
    # not stated in the paper; chosen because 4 is the transformer default (BERT's 3072 = 4 x 768).
    mlp_ratio: float = 4.0
    # not stated in the paper; chosen 0 because the backbone already regularises with drop-path
    # and the decoder is randomly initialised (§4.1) and trained for only 40 epochs.
    dropout: float = 0.0
    # not stated in the paper; chosen because Swin features carry no absolute position, while
    # expressions name places ("left", "upper", "closest to"); DETR/VLT-style sine codes are
    # added to pixel keys/queries only (never to values, never to Eq. 1's projections).
    position_encoding: bool = True
    # not stated in the paper; chosen 256 at every stage (the Mask2Former / ReLA pixel-decoder
    # width, sharing the paper's Swin-B backbone), cheap enough at stride 4 (120² queries).
    decoder_dims: tuple[int, int, int, int] = (256, 256, 256, 256)
    # not stated in the paper; chosen as enhance_heads (32 channels per head at width 256).
    decoder_heads: int = 8
    # not stated in the paper; chosen GroupNorm(32) because the per-GPU batch is small
    # (batch 16 over several 24 GB GPUs, §4.1), where BatchNorm statistics are noisy.
    decoder_norm_groups: int = 32
    # not stated in the paper ("tau is a learnable temperature"); chosen 0.1 (logit scale 10,
    # SigLIP's sigmoid-loss initialisation): cosines in [-1, 1] map to logits in [-10, 10].
    temperature_init: float = 0.1
    # not stated in the paper; chosen 0.01 (logit scale <= 100, CLIP's clamp).
    temperature_min: float = 0.01
    # not stated in the paper (the objective is "BCE" + L_c, no weight given); chosen 1.0.
    contrastive_weight: float = 1.0
    # The paper's mask loss is plain BCE (§3.3), i.e. pos_weight 1.0.  refbench's tiny CPU recipe
    # raises it (refbench/train/recipes.py) to counter the synthetic benchmark's small foreground.
    bce_pos_weight: float = 1.0
    # not stated in the paper (how Z+/Z- are read at stage-4 resolution); chosen: majority of the
    # cell (area-averaged GT >= 0.5), and a target too small to fill half a cell still marks its
    # best-covered cell(s) as relevant, so no target vanishes from the supervision.
    relevance_positive_fraction: float = 0.5
    # -- ablation switches (Table 3, Table 4) -------------------------------------------------
    guidance: str = "enhanced_le+ve"
    selection: str = "topk"
    linguistic_cues: str = "global+local"
    semantic_refinement: bool = True
    relationship_modeling: bool = True
    contrastive_loss: bool = True
    normalize_with_topk_mask: bool = True

    def __post_init__(self) -> None:
        for name, value, valid in (("guidance", self.guidance, GUIDANCE_SETS),
                                   ("selection", self.selection, SELECTIONS),
                                   ("linguistic_cues", self.linguistic_cues, LINGUISTIC_CUES),
                                   ("text_encoder", self.text_encoder, TEXT_ENCODERS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}")
        if not 0.0 < self.topk_ratio <= 1.0:
            raise ValueError(f"topk_ratio must be in (0, 1], got {self.topk_ratio}")
        if self.text_encoder == "bert" and self.text is None:
            raise ValueError("text_encoder 'bert' needs a BertEncoderConfig (text=)")
        if self.text_encoder == "clip" and not self.clip_text:
            raise ValueError("text_encoder 'clip' needs clip_text (the CLIP model name, e.g. 'RN101')")
        if len(self.decoder_dims) != 4:
            raise ValueError(f"decoder_dims needs 4 widths (stage 4 to stage 1), got {self.decoder_dims}")
        for d in self.decoder_dims:
            if d % self.decoder_heads or d % self.decoder_norm_groups:
                raise ValueError(f"decoder width {d} must be divisible by decoder_heads ({self.decoder_heads}) "
                                 f"and decoder_norm_groups ({self.decoder_norm_groups})")
        if self.temperature_init < self.temperature_min:
            raise ValueError("temperature_init must be >= temperature_min")
        if not 0.0 < self.relevance_positive_fraction <= 1.0:
            raise ValueError("relevance_positive_fraction must be in (0, 1]")

    # -- derived -------------------------------------------------------------------------------
    @property
    def uses_visual_expression(self) -> bool:
        """Whether the visual expression extractor runs (Table 3 rows 'VE' and the full model)."""
        return self.guidance in ("ve", "enhanced_le+ve")

    @property
    def uses_enhancement(self) -> bool:
        """Whether Q_l is enhanced by cross-attention to the vision features (all but 'LE')."""
        return self.guidance != "le"

    def num_selected(self, num_pixels: int) -> int:
        """K of Eq. 2: round(topk_ratio · N) pixels per linguistic token, at least 1, at most N."""
        return max(1, min(num_pixels, int(math.floor(self.topk_ratio * num_pixels + 0.5))))


# Table 3 and Table 4 rows as config overrides (the default is the full model, "Enhanced LE + VE",
# top-k, global + local cues, refinement, relationship modeling, L_c, top-k mask in Eq. 6).
ABLATIONS: dict[str, dict] = {
    "full": {},
    # Table 3
    "le_only": {"guidance": "le"},
    "enhanced_le_only": {"guidance": "enhanced_le"},
    "ve_only": {"guidance": "ve"},
    "enhanced_le_all_pixels": {"guidance": "enhanced_le+all_pixels"},
    # Table 4 (a) selection method
    "no_selection": {"selection": "none"},
    "threshold_selection": {"selection": "threshold"},
    # Table 4 (b) linguistic cues
    "global_cue_only": {"linguistic_cues": "global"},
    "local_cues_only": {"linguistic_cues": "local"},
    # Table 4 (c)–(f)
    "no_refinement": {"semantic_refinement": False},
    "no_relationship": {"relationship_modeling": False},
    "no_contrastive": {"contrastive_loss": False},
    "no_topk_mask_in_normalization": {"normalize_with_topk_mask": False},
}

PAPER = MERESConfig(
    variant="paper",
    input_size=480,
    # window 12 and drop-path 0.3: not stated in the paper; chosen as LAVT/DMMI's Swin-B
    # (swin_base_patch4_window12_384_22k, the ImageNet-22k Swin-B checkpoint of the LAVT family).
    swin=SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=12,
                    drop_path_rate=0.3),
    text_encoder="bert",
    text=BERT_BASE,
    token_length=20,  # not stated in the paper (see the field)
)

# Appendix E: the generalization setting of CGFormer with CLIP's text encoder (50 epochs).
# The CLIP model is not stated; chosen RN101's text transformer (width 512), the one CRIS and
# JMCELN use (shared with JMCELN through baselines.common.clip).  Token length: not stated;
# chosen 20, the paper's BERT length (CLIP's context of 77 is truncated, EOT kept).
CLIP = MERESConfig(
    variant="clip",
    input_size=480,
    swin=PAPER.swin,
    text_encoder="clip",
    text=None,
    clip_text="RN101",
    token_length=20,
)

# Same code at CPU size: maps 40/20/10/5 at 160 px (window 7: padding and shifted windows), N = 25
# stage-4 pixels of which K = 8 are selected per token, BERT hidden 64 / 2 layers / 2 heads.
TINY = MERESConfig(
    variant="tiny",
    input_size=160,
    swin=SwinConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=7,
                    drop_path_rate=0.1),
    text_encoder="bert",
    text=BertEncoderConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
    token_length=20,
    joint_dim=64,
    enhance_heads=2,
    refine_heads=2,
    relation_heads=2,
    decoder_dims=(64, 64, 32, 32),
    decoder_heads=2,
    decoder_norm_groups=8,
)

CONFIGS: dict[str, MERESConfig] = {"paper": PAPER, "clip": CLIP, "tiny": TINY}
