"""MERES: Multi-Expression guidance for Referring Expression Segmentation
("Visual Expression for Referring Expression Segmentation", an anonymous ACL submission).

There is no public code or checkpoint (official_implementations.md §5); this is refbench's
reference implementation from the paper.  It reads top to bottom like the paper's method (§3):

1. **Vision and language feature extraction** (§3.1) — a plain Swin-B gives F_1..F_4
   (B, C_i, H_i, W_i); BERT-base (or CLIP's text transformer, Appendix E) gives the linguistic
   expression tokens Q_l = [w_cls, w_1, ..., w_{T-1}] (B, T, D), w_cls being the global cue.
2. **Visual expression extractor** (§3.2, ``extractor.py``) — Q_l is enhanced by cross-attention
   to F_v = F_4 (Q̂_l); adaptive selection (Eqs. 1–2: joint projections, cosine relevance map S,
   top-k of 30 % of the pixels per token), semantic refinement (Eqs. 4–8: top-k selective mask,
   softmax(S + M), top-k weighted average pooling, masked cross-attention + MLP), visual
   relationship modeling (Eq. 9: MHSA + MLP) -> visual expression tokens Q̂_v (B, T, D).
3. **Segmentation decoder** (§3.3, ``decoder.py``) — at every stage the vision features query the
   guidance set G = {Q̂_l, Q̂_v}; upsampling + skip concatenation; a final linear projection to a
   1-channel ("binary class") mask at stride 4, upsampled bilinearly to the input size inside the
   model.  Prediction: sigmoid(logits) > 0.5.
4. **Objective** (``losses.py``) — BCE on the mask + the pixel contrastive loss of Eq. 3 on the
   global token's relevance map with a learnable temperature.

The ablations of Tables 3–4 are config switches (``config.ABLATIONS``); e.g.
``build("tiny", ablation="ve_only")``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.bert import BertTextEncoder
from refbench.core.checkpoint import CheckpointLayout, load_model_checkpoint
from baselines.common.configs import variant_config
from baselines.common.layers import init_transformer_weights, map_to_tokens
from baselines.common.swin import SwinTransformer, load_pretrained_swin
from baselines.meres.config import ABLATIONS, CONFIGS, MERESConfig
from baselines.meres.decoder import SegmentationDecoder
from baselines.meres.extractor import ExtractorOutput, LinguisticEnhancement, VisualExpressionExtractor
from baselines.meres.losses import PixelContrastiveLoss, check_mask_target, mask_bce, relevance_targets
from refbench.core.errors import RefbenchError, suggest
from refbench.core.models import RISModel

# MERES has no official checkpoints: refbench's own layout ({"refbench": ..., "model": sd}) or a
# bare / {"model": sd} / {"state_dict": sd} state dict in this module's key space.
CHECKPOINT_LAYOUT = CheckpointLayout(dicts={"model": ""})


class MERES(RISModel):
    """MERES with its text encoder: ``forward(images, input_ids, attention_mask) -> (B, 1, S, S)`` logits."""

    name = "meres"
    binarize_rule = "sigmoid>0.5"
    normalization = "imagenet"
    text_encoder_prefix = "text_encoder."

    def __init__(self, config: MERESConfig, bert_path: str | None = None, swin_path: str | None = None,
                 clip_path: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_size = config.input_size
        self.token_length = config.token_length
        self.text_encoder_kind = config.text_encoder
        self.init_notes: list[str] = []

        # 1. vision and language encoders (§3.1)
        self.backbone = SwinTransformer(config.swin)
        if swin_path is not None:
            self.init_notes += load_pretrained_swin(self.backbone, swin_path)
        self.text_encoder = self._build_text_encoder(bert_path, clip_path)
        vis_dims = config.swin.stage_dims
        c4, d = vis_dims[-1], self.lang_dim

        # 2. linguistic enhancement + visual expression extractor (§3.2)
        self.linguistic_enhancement = LinguisticEnhancement(d, c4, config) if config.uses_enhancement else None
        self.extractor = VisualExpressionExtractor(c4, d, config) if config.uses_visual_expression else None
        # Table 3 "Enhanced LE + All pixels": every stage-4 pixel, projected to D, is a guidance token.
        self.pixel_tokens = nn.Linear(c4, d) if config.guidance == "enhanced_le+all_pixels" else None

        # 3. segmentation decoder (§3.3)
        self.decoder = SegmentationDecoder(vis_dims, d, config)

        # 4. Eq. 3's learnable temperature (only where S exists and L_c is on)
        self.contrastive = (PixelContrastiveLoss(config.temperature_init, config.temperature_min)
                            if config.uses_visual_expression and config.contrastive_loss else None)
        for part in (self.linguistic_enhancement, self.extractor, self.pixel_tokens, self.decoder):
            if part is not None:
                init_transformer_weights(part)  # §4.1: "The decoder was randomly initialized"

    # -- 1. vision and language feature extraction (§3.1) -----------------------------------------
    def _build_text_encoder(self, bert_path: str | None, clip_path: str | None) -> nn.Module:
        if self.config.text_encoder == "bert":
            if clip_path is not None:
                raise RefbenchError("clip_path applies to variant 'clip' only; use bert_path for the BERT variants")
            encoder = BertTextEncoder(self.config.text, path=bert_path)
            if bert_path is not None:
                self.init_notes.append(f"BERT initialised from {bert_path}")
            return encoder
        if bert_path is not None:
            raise RefbenchError("bert_path applies to the BERT variants; use clip_path for variant 'clip'")
        from baselines.meres.clip_text import build_clip_text_encoder

        encoder, notes = build_clip_text_encoder(self.config, clip_path)
        self.init_notes += notes
        return encoder

    @property
    def lang_dim(self) -> int:
        """Width D of the linguistic tokens (768 for BERT-base)."""
        return self.text_encoder.hidden_size

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids and 0/1 mask -> Q_l (B, T=L, D) with the global token at index 0, and the
        token mask (B, T) bool (True on real tokens)."""
        words = self.text_encoder(input_ids, attention_mask)
        return words, attention_mask.bool()

    def _check_inputs(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or not torch.is_floating_point(images):
            raise RefbenchError(f"images must be float (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if input_ids.dim() != 2 or input_ids.shape[0] != images.shape[0]:
            raise RefbenchError(f"input_ids must be (B, L) with B = {images.shape[0]} images, "
                                f"got {tuple(input_ids.shape)}")
        if attention_mask.shape != input_ids.shape:
            raise RefbenchError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids "
                                f"{tuple(input_ids.shape)}")
        if attention_mask.numel() and bool(((attention_mask != 0) & (attention_mask != 1)).any()):
            raise RefbenchError("attention_mask must hold 0/1 (1 on real tokens)")
        if attention_mask.numel() and not bool((attention_mask[:, 0] != 0).all()):
            raise RefbenchError("every sentence needs its global token at position 0 (attention_mask[:, 0] == 1); "
                                "tokenize with special tokens ([CLS] ... [SEP]) and pad on the right")

    # -- the whole pass -------------------------------------------------------------------------------
    def forward_features(self, images: torch.Tensor, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor) -> dict:
        """Intermediate tensors of one pass.

        Returns a dict: ``features`` [F_1..F_4] (B, C_i, H_i, W_i); ``words`` Q_l (B, T, D);
        ``token_mask`` (B, T) bool; ``enhanced`` Q̂_l (B, T, D) (= Q_l for the "LE" ablation);
        ``extractor`` :class:`ExtractorOutput` or None; ``guidance`` (B, G, D) and
        ``guidance_mask`` (B, G) bool; ``grid`` (H_4, W_4); ``logits_lowres`` (B, 1, S/4, S/4).
        """
        self._check_inputs(images, input_ids, attention_mask)
        # 1. §3.1
        features = self.backbone(images)
        words, token_mask = self.encode_text(input_ids, attention_mask)
        f4 = features[-1]
        grid = (f4.shape[-2], f4.shape[-1])
        pixels = map_to_tokens(f4)                                                  # F_v (B, N, C_4)
        # 2. §3.2
        enhanced = words if self.linguistic_enhancement is None else self.linguistic_enhancement(words, pixels, grid)
        extracted = None if self.extractor is None else self.extractor(enhanced, pixels, grid, token_mask)
        guidance, guidance_mask = self.guidance_set(words, enhanced, extracted, pixels, token_mask)
        # 3. §3.3
        low = self.decoder(features, guidance, guidance_mask)
        return {"features": features, "words": words, "token_mask": token_mask, "enhanced": enhanced,
                "extractor": extracted, "guidance": guidance, "guidance_mask": guidance_mask, "grid": grid,
                "logits_lowres": low}

    def guidance_set(self, words: torch.Tensor, enhanced: torch.Tensor, extracted: ExtractorOutput | None,
                     pixels: torch.Tensor, token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G of §3.3 (or the Table 3 ablation's set) as tokens (B, G, D) and a mask (B, G) bool."""
        kind = self.config.guidance
        if kind == "le":
            return words, token_mask
        if kind == "enhanced_le":
            return enhanced, token_mask
        if kind == "ve":
            return extracted.tokens, extracted.token_mask
        if kind == "enhanced_le+all_pixels":
            every = torch.ones(pixels.shape[:2], dtype=torch.bool, device=pixels.device)
            return torch.cat([enhanced, self.pixel_tokens(pixels)], 1), torch.cat([token_mask, every], 1)
        return torch.cat([enhanced, extracted.tokens], 1), torch.cat([token_mask, extracted.token_mask], 1)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalized images, (B, L) ids, (B, L) 0/1 mask -> (B, 1, S, S) mask logits."""
        low = self.forward_features(images, input_ids, attention_mask)["logits_lowres"]
        return F.interpolate(low, size=images.shape[-2:], mode="bilinear", align_corners=False)

    # -- 4. training objective ---------------------------------------------------------------------
    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """``bce`` (mask) + ``contrastive_weight`` · ``contrastive`` (Eq. 3), and ``total``.

        Batch keys used: ``image`` (B, 3, S, S), ``input_ids`` / ``attention_mask`` (B, L),
        ``mask`` (B, S, S) bool or 0/1 at the input size.  ``type`` (zero/one/many) needs no
        special case: a no-target sample has an empty mask and all its pixels in Z-.
        """
        for key in ("image", "input_ids", "attention_mask", "mask"):
            if key not in batch:
                raise RefbenchError(f"MERES training batch lacks {key!r} "
                                    "(needs image, input_ids, attention_mask, mask)")
        images = batch["image"]
        feats = self.forward_features(images, batch["input_ids"], batch["attention_mask"])
        logits = F.interpolate(feats["logits_lowres"], size=images.shape[-2:], mode="bilinear", align_corners=False)
        target = check_mask_target(batch["mask"], images.shape[0], tuple(images.shape[-2:]))
        bce = mask_bce(logits, target, self.config.bce_pos_weight)
        terms = {"bce": bce}
        total = bce
        if self.contrastive is not None:
            scores = feats["extractor"].relevance[:, 0]                  # s: the global token's map (B, N)
            positive = relevance_targets(target, feats["grid"], self.config.relevance_positive_fraction)
            contrastive = self.contrastive(scores, positive)
            terms["contrastive"] = contrastive
            total = total + self.config.contrastive_weight * contrastive
        terms["total"] = total
        return terms

    # -- weights -----------------------------------------------------------------------------------
    def load_checkpoint(self, path: "str | dict", strict: bool = True) -> list[str]:
        """Load a refbench MERES checkpoint (or a bare state dict in this key space); strict by
        default.  MERES has no official checkpoints.  Returns notes."""
        return load_model_checkpoint(self, path, CHECKPOINT_LAYOUT, strict=strict)


def build(variant: str = "paper", bert_path: str | None = None, swin_path: str | None = None,
          clip_path: str | None = None, ablation: str | None = None, **overrides) -> MERES:
    """Build MERES (random init unless ``bert_path`` / ``swin_path`` / ``clip_path`` name local
    pretrained files; nothing is downloaded).

    Args:
        variant: ``paper``, ``clip`` or ``tiny``.
        bert_path: local Hugging Face ``bert-base-uncased`` directory (BERT variants).
        swin_path: ImageNet-22k Swin-B checkpoint (``swin_base_patch4_window12_384_22k.pth``).
        clip_path: OpenAI CLIP checkpoint whose text transformer initialises variant ``clip``.
        ablation: a row of Table 3 / Table 4 by name (``config.ABLATIONS``, e.g. ``ve_only``).
        overrides: fields of :class:`MERESConfig` (e.g. ``input_size=416``, ``topk_ratio=0.1``);
            they apply after the ablation's.
    """
    if variant not in CONFIGS:
        raise suggest(variant, CONFIGS, "MERES variant")
    changes: dict = {}
    if ablation is not None:
        if ablation not in ABLATIONS:
            raise suggest(ablation, ABLATIONS, "MERES ablation")
        changes.update(ABLATIONS[ablation])
    changes.update(overrides)
    config = variant_config(CONFIGS, variant, "MERES", changes)
    return MERES(config, bert_path=bert_path, swin_path=swin_path, clip_path=clip_path)
