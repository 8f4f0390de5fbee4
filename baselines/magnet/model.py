"""MagNet: Mask-grounded Network (Chng et al., "Mask Grounding for Referring Image Segmentation", CVPR 2024).

Reads top to bottom like the paper's method (§3), in the form of the released checkpoints:

1. **Encoders** (§3.1) — Swin-B image encoder and BERT-base language encoder, both split into
   four stages (BERT: layers [0,3), [3,6), [6,9), [9,12)).
2. **Cross-modal Alignment Module** (CAM, §3.3, Eq. 5–11) at the end of every stage:
   * image side: pyramid branches (average pool to 1/2/3/6 cells, a 3-layer conv MLP, pixel-word
     attention against the words, bilinear upsampling) next to LAVT's pixel-word attention; the
     gated sum ``x + tanh-gate(r0)·r0`` goes on through Swin, and ``mixer([pyramids, r0])`` is the
     stage's feature for the decoder;
   * language side: word-to-pixel attention against the stage's (pre-fusion) visual map, gated
     and added to the words before the next BERT stage.
3. **Mask head** — Mask2Former's deformable pixel decoder and 9-layer masked-attention decoder
   with one query (head.py); the mask logit is upsampled bilinearly (align_corners=True) to the
   input size and binarized with sigmoid > 0.5.
4. **Training** — Mask Grounding (§3.2, Eq. 1–4), the cross-modal alignment loss (§3.4,
   Eq. 12–14) and BCE + Dice, weighted as Eq. 15 (losses.py).

Where the released code differs from the paper, this follows the code (the checkpoints were
trained with it) and says so: the CAM's language side has no pyramid, and the word queries of the
language-side attention are multiplied by BERT's extended mask (see :class:`LanguagePWAM`).
Official checkpoint: ``{'model': image_model.* + language_model.* (BERT inside) + classifier.* +
lang_proj.*}``, 1310 entries, 296,984,954 parameters (spec §2.1, Appendix A).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.bert import BertTextEncoder
from refbench.core.checkpoint import CheckpointLayout, load_model_checkpoint
from baselines.common.configs import variant_config
from baselines.common.layers import apply_pointwise, map_to_tokens, tokens_to_map
from baselines.common.pwam import PWAM, LanguageGate, masked_word_attention
from baselines.common.swin import SwinStage, SwinTransformer, load_pretrained_swin
from baselines.magnet.config import CONFIGS, MagNetConfig
from baselines.magnet.head import MaskDecoderHead, sine_position_embedding
from baselines.magnet.losses import cross_modal_alignment_loss, grounding_loss, mask_losses
from refbench.core.errors import RefbenchError
from refbench.core.records import TYPES
from refbench.core.models import RISModel

CHECKPOINT_LAYOUT = CheckpointLayout(dicts={"model": ""})
# Children whose keys make up the official checkpoint; everything else is training-only.
OFFICIAL_CHILDREN = ("image_model", "language_model", "classifier", "lang_proj")
# bert-base-uncased ids that Mask Grounding never masks
BERT_PAD_ID, BERT_CLS_ID, BERT_SEP_ID = 0, 101, 102


# -- 1. encoders: the language encoder with its language-side fusion ------------------------------

class LanguagePWAM(nn.Module):
    """Word-to-pixel attention of the CAM's language side (official ``pwams.{i}``).

    Every word attends over the pixels of the stage's visual map; the attended visual feature is
    multiplied element-wise with the projected word and projected again:
    ``mm = project_mm(vis_project(w) ⊙ W(attend(f_query(w), f_key(x), f_value(x))))``.

    * ``vis_project.0``: Linear over words; ``f_query.0``: Conv1d over words;
    * ``f_key.0``/``f_value.0``: Conv1d C_vis -> C_l over pixels, each followed by an
      affine-free InstanceNorm (per channel over the pixels);
    * ``W.0``: Conv1d + InstanceNorm over the words; ``project_mm.0``: Conv1d.

    Official quirk, kept for parity: the queries are multiplied by BERT's *extended* attention
    mask (0 on real words, -10000 on padding) instead of the 0/1 mask.  A real word's query is
    therefore exactly 0, so it attends uniformly and receives the mean of the normalized values
    over all pixels; a padded word gets a huge query and copies (about) one pixel.  Through the
    InstanceNorm of ``W`` over the words, the padded words then shift the real ones.
    """

    def __init__(self, l_dim: int, v_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.vis_project = nn.Sequential(nn.Linear(l_dim, l_dim), nn.GELU(), nn.Dropout(dropout))
        self.image_lang_att = nn.Module()
        self.image_lang_att.f_query = nn.Sequential(nn.Conv1d(l_dim, l_dim, kernel_size=1))
        self.image_lang_att.f_key = nn.Sequential(nn.Conv1d(v_dim, l_dim, kernel_size=1), nn.InstanceNorm1d(l_dim))
        self.image_lang_att.f_value = nn.Sequential(nn.Conv1d(v_dim, l_dim, kernel_size=1), nn.InstanceNorm1d(l_dim))
        self.image_lang_att.W = nn.Sequential(nn.Conv1d(l_dim, l_dim, kernel_size=1), nn.InstanceNorm1d(l_dim))
        self.project_mm = nn.Sequential(nn.Conv1d(l_dim, l_dim, kernel_size=1), nn.GELU(), nn.Dropout(dropout))

    def forward(self, words: torch.Tensor, pixels: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        """words (B, L, C_l); pixels (B, N, C_vis) tokens; extended_mask (B, 1, 1, L) 0 / -10000.
        -> (B, L, C_l) multimodal residual."""
        att = self.image_lang_att
        b, length, _ = words.shape
        query = apply_pointwise(att.f_query, words) * extended_mask.reshape(b, length, 1).to(words.dtype)
        key = att.f_key(pixels.transpose(1, 2))  # (B, C_l, N)
        value = att.f_value(pixels.transpose(1, 2))
        attended = masked_word_attention(query, key, value, key_mask=None)  # softmax over pixels
        attended = apply_pointwise(att.W, attended)
        return apply_pointwise(self.project_mm, apply_pointwise(self.vis_project, words) * attended)


class MultimodalBert(BertTextEncoder):
    """BERT split into stages, with a :class:`LanguagePWAM`, a gate and a LayerNorm per stage.

    Keys: BERT's ``embeddings.*``, ``encoder.layer.*`` plus ``pwams.{i}``, ``res_gates.{i}``
    (bias-free Linear, ReLU, Linear, Tanh) and ``norms.{i}`` (official: only used in training;
    here ``norms[-1]`` normalizes the final words for CAL and Mask Grounding).
    """

    def __init__(self, config: MagNetConfig, bert_path: str | None = None) -> None:
        super().__init__(config.text, path=bert_path)
        l_dim = config.text.hidden_size
        self.stage_ends = config.language_stage_ends
        self.pwams = nn.ModuleList(LanguagePWAM(l_dim, c, config.fusion_dropout) for c in config.swin.stage_dims)
        self.res_gates = nn.ModuleList(LanguageGate(l_dim, activation="relu") for _ in config.swin.stage_dims)
        self.norms = nn.ModuleList(nn.LayerNorm(l_dim) for _ in config.swin.stage_dims)
        # LanguageGate starts closed (both weights 0), and a gate with both weights 0 gets no
        # gradient; open it slightly as the Swin side's init does for its gates.
        for gate in self.res_gates:
            for layer in (gate[0], gate[2]):
                nn.init.trunc_normal_(layer.weight, std=0.02)

    def run_stage(self, index: int, hidden: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        """BERT layers of language stage ``index`` on (B, L, H)."""
        start = 0 if index == 0 else self.stage_ends[index - 1]
        return self.run_layers(hidden, extended_mask, start, self.stage_ends[index])

    def fuse(self, index: int, hidden: torch.Tensor, pixels: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        """CAM language side (Eq. 10 in the code's form): ``w + gate(mm)·mm`` with
        ``mm = pwams[index](w, pixels)``; pixels are the stage's pre-fusion tokens (B, N, C_i)."""
        residual = self.pwams[index](hidden, pixels, extended_mask)
        return self.res_gates[index].gated_sum(hidden, residual)

    def encode_with_visual(self, embeddings: torch.Tensor, extended_mask: torch.Tensor,
                           pixels: list[torch.Tensor]) -> torch.Tensor:
        """Run every stage and its fusion on embedded words (B, L, H), given the stages'
        pre-fusion visual tokens; returns the final words (B, L, H) (Mask Grounding's Eq. 1)."""
        hidden = embeddings
        for i, px in enumerate(pixels):
            hidden = self.fuse(i, self.run_stage(i, hidden, extended_mask), px, extended_mask)
        return hidden


# -- 2. cross-modal alignment module ---------------------------------------------------------------

class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (ConvNeXt's channels-first LN)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


def pyramid_branch(dim: int, reduced: int, pool_size: int) -> nn.Sequential:
    """CAM Eq. 6: ``MLP_k(Pool_k(P))`` as the code has it: average pool to pool_size², then
    Conv1×1 C->4C, channels-first LN, Conv1×1 4C->C, GELU, Conv1×1 C->C/4 (all bias-free)."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(pool_size),
        nn.Conv2d(dim, 4 * dim, kernel_size=1, bias=False),
        LayerNorm2d(4 * dim, eps=1e-6),
        nn.Conv2d(4 * dim, dim, kernel_size=1, bias=False),
        nn.GELU(),
        nn.Conv2d(dim, reduced, kernel_size=1, bias=False),
    )


def image_stage_modules(config: MagNetConfig):
    """The CAM image-side modules hung on each Swin stage (keys ``layers.{i}.<name>``)."""
    l_dim = config.text.hidden_size

    def extras(stage: int, dim: int) -> dict[str, nn.Module]:
        reduced = dim // config.pyramid_reduction
        n_pyr = len(config.pyramid_sizes)
        return {
            # LAVT's pixel-word attention with MagNet's Linear+LayerNorm query/output projections
            "fusion": PWAM(dim, l_dim, dropout=config.fusion_dropout, projection="linear_layernorm"),
            "res_gate": LanguageGate(dim, activation="gelu"),
            "pyramids": nn.ModuleList(pyramid_branch(dim, reduced, p) for p in config.pyramid_sizes),
            "fusions": nn.ModuleList(PWAM(reduced, l_dim, dropout=config.fusion_dropout, projection="linear_layernorm")
                                     for _ in config.pyramid_sizes),
            "mixer": nn.Sequential(nn.Linear(dim + n_pyr * reduced, dim), nn.LayerNorm(dim), nn.Linear(dim, dim),
                                   nn.GELU()),
        }

    return extras


@dataclass
class CrossModalAlignmentModule:
    """CAM of one stage (§3.3).  Holds no parameters of its own: they live where the official
    checkpoint puts them (image side on the Swin stage, language side in the BERT wrapper).

    Image side, in the code's form of Eq. 6–11: pyramid branches attend to the words at 1×1 …
    6×6 resolution (Eq. 6–7) and are upsampled (Eq. 9); LAVT's PWAM gives ``r0`` on the full map;
    the map goes on as ``x + gate(r0)·r0`` (Eq. 11); the decoder gets ``mixer([pyramids, r0])``
    (not passed through Swin's ``norm{i}``, which stays unused).  Language side: Eq. 10 with the
    single-scale :class:`LanguagePWAM` on the pre-fusion map (no pyramid in the code).
    """

    stage: SwinStage
    language: MultimodalBert
    index: int

    def image_side(self, x: torch.Tensor, height: int, width: int, words: torch.Tensor,
                   word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, H*W, C) pre-fusion tokens; words (B, C_l, L); word_mask (B, L) 0/1.
        Returns (gated tokens for the next Swin stage, decoder feature (B, C, H, W))."""
        stage = self.stage
        x_map = tokens_to_map(x, height, width)
        branches = []
        for pool, fusion in zip(stage.pyramids, stage.fusions):
            pooled = pool(x_map)  # (B, C/4, p, p)
            p_h, p_w = pooled.shape[-2:]
            fused = tokens_to_map(fusion(map_to_tokens(pooled), words, word_mask), p_h, p_w)
            up = F.interpolate(fused, size=(height, width), mode="bilinear", align_corners=True)
            branches.append(map_to_tokens(up))
        residual = stage.fusion(x, words, word_mask)
        gated = stage.res_gate.gated_sum(x, residual)
        feature = stage.mixer(torch.cat(branches + [residual], dim=-1))
        return gated, tokens_to_map(feature, height, width)

    def language_side(self, hidden: torch.Tensor, x: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, C_l) words after this BERT stage; x the stage's pre-fusion tokens."""
        return self.language.fuse(self.index, hidden, x, extended_mask)


# -- 4. training: Mask Grounding ---------------------------------------------------------------------

class MaskGrounding(nn.Module):
    """Mask Grounding (§3.2, Fig. 3, Eq. 1–4; supplementary §3): predict masked words from words, image and mask.

    * a learnable mask token replaces the word embedding of each real word independently with
      probability ``mask_ratio`` ("a corruption probability of 0.15"; never [CLS]/[SEP]/padding).
      A sentence may draw no word; ``min_masked`` forces at least that many per sentence (0 in the
      paper reading; the tiny recipe used 1, which on 3–5-word sentences is an effective rate of
      0.24–0.35);
    * the masked sentence runs through the language encoder with its language-side fusion (Eq. 1),
      reusing the image encoder's visual maps of the main pass;
    * ``mask_encoder``: 2-layer MLP on the GT mask's centre (x, y) in [0, 1] (Eq. 3; an empty GT
      uses the learned ``empty_mask`` embedding instead);
    * ``language_proj`` / ``image_proj``: Linear layers from the word width and from the image tokens'
      width (the pixel decoder's coarsest level, + sine positions) to the predictor width;
    * ``predictor``: "a masked token predictor with 8 BERT layers" -- post-norm BERT layers (GELU,
      64 channels per head, FFN 4x) of BERT-base width 768 over [words; image; mask] with a modality
      embedding (Eq. 4), then, at the masked positions, BERT's MLM head (dense, GELU, LayerNorm,
      vocabulary classifier).  The paper projects the words to "the image embedding" width; with
      BERT-sized layers both words and image tokens are projected to 768 (config field
      ``predictor_width``; ``None`` = the image tokens' width, refbench's earlier reading, no
      ``image_proj``).

    None of this is in the released checkpoints (inference-only); loading one leaves it freshly
    initialised.
    """

    def __init__(self, config: MagNetConfig) -> None:
        super().__init__()
        g = config.grounding
        image_dim, l_dim = config.head.conv_dim, config.text.hidden_size
        width = g.predictor_width or image_dim
        self.mask_ratio = g.mask_ratio
        self.min_masked = g.min_masked
        self.mask_token = nn.Parameter(torch.empty(l_dim))
        self.mask_encoder = nn.Sequential(nn.Linear(2, g.mask_encoder_hidden), nn.ReLU(),
                                          nn.Linear(g.mask_encoder_hidden, width))
        self.empty_mask = nn.Parameter(torch.empty(width))
        self.language_proj = nn.Linear(l_dim, width)
        # no parameters when the predictor runs at the image tokens' width (tiny; older checkpoints)
        self.image_proj = nn.Linear(image_dim, width) if width != image_dim else nn.Identity()
        self.modality_embed = nn.Embedding(3, width)  # 0 words, 1 image, 2 mask
        self.input_norm = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(g.dropout)
        layer = nn.TransformerEncoderLayer(width, g.predictor_heads, g.predictor_ffn, dropout=g.dropout,
                                           activation="gelu", layer_norm_eps=1e-12, batch_first=True, norm_first=False)
        self.predictor = nn.TransformerEncoder(layer, g.predictor_layers, enable_nested_tensor=False)
        self.token_head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width, eps=1e-12),
                                        nn.Linear(width, config.text.vocab_size))
        for p in (self.mask_token, self.empty_mask):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def choose_masked(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, L) bool: which words to mask -- each real word with probability ``mask_ratio``, then
        topped up to ``min_masked`` per sentence (as many as it has) with its smallest draws."""
        special = (input_ids == BERT_PAD_ID) | (input_ids == BERT_CLS_ID) | (input_ids == BERT_SEP_ID)
        candidate = attention_mask.bool() & ~special
        where = generator.device if generator is not None else input_ids.device
        u = torch.rand(input_ids.shape, device=where, generator=generator).to(input_ids.device)
        masked = candidate & (u < self.mask_ratio)
        if self.min_masked > 0:
            # rank of each candidate's draw within its sentence (0 = smallest); non-candidates rank last
            keyed = torch.where(candidate, u, torch.full_like(u, 2.0))
            rank = keyed.argsort(1).argsort(1)
            masked |= candidate & (rank < self.min_masked)
        return masked

    def mask_embeddings(self, word_embeddings: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Replace the word embeddings (B, L, H) of masked positions by the mask token."""
        return torch.where(masked[..., None], self.mask_token.to(word_embeddings.dtype), word_embeddings)

    @staticmethod
    def mask_centres(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre (x, y) in [0, 1] of each (B, H, W) mask, and whether the mask has any pixel."""
        m = mask.float()
        b, h, w = m.shape
        area = m.sum((1, 2))
        xs = (torch.arange(w, device=m.device, dtype=m.dtype) + 0.5) / w
        ys = (torch.arange(h, device=m.device, dtype=m.dtype) + 0.5) / h
        cx = (m.sum(1) * xs).sum(1) / area.clamp(min=1)
        cy = (m.sum(2) * ys).sum(1) / area.clamp(min=1)
        return torch.stack([cx, cy], dim=-1), area > 0

    def forward(self, words: torch.Tensor, attention_mask: torch.Tensor, image: torch.Tensor,
                centres: torch.Tensor, has_mask: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (N, V) at the N masked positions (row-major over (B, L)).

        words (B, L, C_l) masked-sentence features; attention_mask (B, L); image (B, D, h, w);
        centres (B, 2) and has_mask (B,) from :meth:`mask_centres`; masked (B, L) bool.  Only the
        masked positions go through the vocabulary classifier (the largest layer)."""
        b, length, _ = words.shape
        lang = self.language_proj(words)
        pos = sine_position_embedding(b, image.shape[-2], image.shape[-1], image.shape[1] // 2, image.device)
        img = self.image_proj(map_to_tokens(image + pos.to(image.dtype)).to(lang.dtype))
        mask_emb = torch.where(has_mask[:, None], self.mask_encoder(centres.to(lang.dtype)),
                               self.empty_mask.to(lang.dtype)).unsqueeze(1)
        kinds = self.modality_embed.weight
        seq = torch.cat([lang + kinds[0], img + kinds[1], mask_emb + kinds[2]], dim=1)
        seq = self.dropout(self.input_norm(seq))
        keep_all = attention_mask.new_zeros(b, img.shape[1] + 1, dtype=torch.bool)
        padding = torch.cat([~attention_mask.bool(), keep_all], dim=1)
        out = self.predictor(seq, src_key_padding_mask=padding)
        return self.token_head(out[:, :length][masked])


# -- the network -------------------------------------------------------------------------------------

class MagNet(RISModel):
    """MagNet with its BERT: ``forward(images, input_ids, attention_mask) -> (B, 1, S, S)`` mask logits
    (``pred_masks`` upsampled bilinearly, align_corners=True, to the input size); ``predict`` is
    sigmoid > 0.5 of it.  :meth:`forward_head` exposes ``pred_masks`` / ``pred_logits`` and the
    intermediate features."""

    name = "magnet"
    binarize_rule = "sigmoid>0.5"
    text_encoder_kind = "bert"
    token_length = 20
    normalization = "imagenet"

    def __init__(self, config: MagNetConfig, bert_path: str | None = None, swin_path: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_size = config.input_size
        # Kept although inference never uses them, because the official checkpoints hold them and
        # load strictly: Swin's norm0..3 (the CAM's mixer output goes to the decoder unnormalized),
        # language_model.norms.0..2 (norms[-1] serves our training losses), the decoder's
        # class_embed (one query: its softmax over the query axis is exactly 1) and lang_proj
        # (used here by CAL's pixel-to-text term).
        self.image_model = SwinTransformer(config.swin, stage_extras=image_stage_modules(config))
        self.language_model = MultimodalBert(config, bert_path=bert_path)
        self.classifier = MaskDecoderHead(config.head)
        self.lang_proj = nn.Linear(config.text.hidden_size, config.projection_dim)
        # training only, outside the official key set: allocated but initialised on first use
        # (see materialize_training_modules), so that inference never holds its random weights
        self._training_rng: torch.Tensor | None = torch.get_rng_state()
        with torch.device("meta"):
            self.mask_grounding = MaskGrounding(config)
        self.mask_grounding.to_empty(device="cpu")
        self.mask_grounding.register_state_dict_pre_hook(self._materialize_hook)
        self.mask_grounding.register_forward_pre_hook(self._materialize_hook)
        self.init_notes: list[str] = []
        if swin_path is not None:
            self.init_notes += load_pretrained_swin(self.image_model, swin_path)
        if bert_path is not None:
            self.init_notes.append(f"BERT initialised from {bert_path}")

    def materialize_training_modules(self) -> None:
        """Give the training-only modules (``mask_grounding``) their random initialisation, in place.

        They are built empty (untouched memory: inference, which never uses them, does not hold
        tens of MB of random weights) and filled on first need: :meth:`loss`, any ``state_dict``
        or forward of the module, or loading a checkpoint that lacks them.  The values are those an eager construction would have
        drawn (the CPU generator's state at construction is replayed); the parameter objects stay
        the same, so an optimizer built earlier keeps working.
        """
        rng, self._training_rng = self._training_rng, None
        if rng is None:
            return
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(rng)
            fresh = MaskGrounding(self.config)
        own = self.mask_grounding.state_dict(keep_vars=True)
        with torch.no_grad():
            for key, value in fresh.state_dict().items():
                own[key].copy_(value)

    def _materialize_hook(self, *_) -> None:
        self.materialize_training_modules()

    def _training_keys(self) -> list[str]:
        mg = self.mask_grounding
        return [f"mask_grounding.{k}" for k, _ in [*mg.named_parameters(), *mg.named_buffers()]]

    def cam(self, index: int) -> CrossModalAlignmentModule:
        return CrossModalAlignmentModule(self.image_model.layers[index], self.language_model, index)

    # -- 1.–2. encoders with the cross-modal alignment module ------------------------------------------
    def encode(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """Run both encoders stage by stage with the CAM.

        Returns ``features`` (4 decoder inputs (B, C_i, S/4/2^i, …)), ``pixels`` (the stages'
        pre-fusion tokens (B, N_i, C_i), reused by Mask Grounding), ``words`` (B, L, C_l) after the
        last language fusion, and ``extended_mask`` (B, 1, 1, L).
        """
        self._check_inputs(images, input_ids, attention_mask)
        lm = self.language_model
        hidden = lm.embed(input_ids)
        ext = lm.extended_attention_mask(attention_mask, hidden.dtype)
        x, h, w = self.image_model.embed(images)
        features, pixels = [], []
        for i, stage in enumerate(self.image_model.layers):
            hidden = lm.run_stage(i, hidden, ext)  # Eq. 5, language
            x = stage.forward_blocks(x, h, w)  # Eq. 5, image
            cam = self.cam(i)
            gated, feature = cam.image_side(x, h, w, hidden.transpose(1, 2), attention_mask)
            hidden = cam.language_side(hidden, x, ext)
            features.append(feature)
            pixels.append(x)
            x, h, w = stage.downsample_tokens(gated, h, w)
        return {"features": features, "pixels": pixels, "words": hidden, "extended_mask": ext}

    # -- 3. mask head ---------------------------------------------------------------------------------
    def forward_head(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """Everything the forward computes: ``pred_logits`` (B, 1, 2), ``pred_masks`` (B, 1, S/4, S/4),
        ``logits`` (B, 1, S, S), ``predictions`` (all 10 decoder outputs), ``mask_features``,
        ``levels``, ``s1``..``s4`` (decoder inputs), ``lang_final`` (B, L, C_l) and the encoder state."""
        enc = self.encode(images, input_ids, attention_mask)
        out = self.classifier(enc["features"])
        out["logits"] = F.interpolate(out["pred_masks"], size=images.shape[-2:], mode="bilinear", align_corners=True)
        out.update({f"s{i + 1}": f for i, f in enumerate(enc["features"])})
        out["lang_final"] = enc["words"]
        out["encoder"] = enc
        return out

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalized images, (B, L) ids, (B, L) 0/1 mask -> (B, 1, S, S) mask logits."""
        return self.forward_head(images, input_ids, attention_mask)["logits"]

    def _check_inputs(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or not torch.is_floating_point(images):
            raise RefbenchError(f"images must be float (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        self.language_model.check_inputs(input_ids, attention_mask)
        if input_ids.shape[0] != images.shape[0]:
            raise RefbenchError(f"input_ids hold {input_ids.shape[0]} sentences for {images.shape[0]} images")

    # -- 4. training ---------------------------------------------------------------------------------
    def sentence_feature(self, words: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """CAL's ``T_avg``: mean of the normalized final words over the real tokens, through
        ``lang_proj`` -> (B, projection_dim)."""
        normed = self.language_model.norms[-1](words)
        m = attention_mask.to(normed.dtype)[..., None]
        return self.lang_proj((normed * m).sum(1) / m.sum(1).clamp(min=1))

    def loss(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Eq. 15: ``2·bce + 2·dice + 0.5·cal + 1.0·grounding`` (λ from ``config.losses``).

        ``batch``: ``image`` (B, 3, S, S), ``input_ids`` / ``attention_mask`` (B, L), ``mask``
        (B, S, S) GT at input size (bool or 0/1), optionally ``type`` (list of
        "zero"/"one"/"many"; an empty mask gets no CAL term and the empty-mask embedding).
        Returns the terms ``bce``, ``dice``, ``cal`` (= ``p2p`` + ``p2t``,
        also returned), ``grounding`` and the weighted ``total``.  ``generator`` drives the random
        word masking and the CAL pixel draw.
        """
        self.materialize_training_modules()
        images, ids, attn, target = self._check_batch(batch)
        lc = self.config.losses
        out = self.forward_head(images, ids, attn)
        enc = out["encoder"]

        # BCE + Dice on the mask logit at input size (the final prediction; optionally all of them)
        preds = out["predictions"] if lc.deep_supervision else out["predictions"][-1:]
        bce_terms, dice_terms = [], []
        for pred in preds:
            up = F.interpolate(pred.masks, size=target.shape[-2:], mode="bilinear", align_corners=True)
            bce, dice = mask_losses(up[:, 0], target)
            bce_terms.append(bce)
            dice_terms.append(dice)
        bce, dice = torch.stack(bce_terms).mean(), torch.stack(dice_terms).mean()

        # CAL (Eq. 12-14) on the final mask features against the GT at their resolution
        mask_features = out["mask_features"]
        small = F.adaptive_avg_pool2d(target.float()[:, None], mask_features.shape[-2:])[:, 0] >= 0.5
        p2p, p2t = cross_modal_alignment_loss(
            mask_features, small, self.sentence_feature(enc["words"], attn), lc.tau_p2p, lc.tau_p2t,
            lc.cal_max_points, generator)
        cal = p2p + p2t

        # Mask Grounding (Eq. 1-4)
        mg = self.mask_grounding
        masked = mg.choose_masked(ids, attn, generator)
        lm = self.language_model
        word_emb = lm.embeddings.word_embeddings(ids)
        embedded = lm.embeddings(inputs_embeds=mg.mask_embeddings(word_emb, masked),
                                 token_type_ids=torch.zeros_like(ids))
        masked_words = lm.encode_with_visual(embedded, enc["extended_mask"], enc["pixels"])
        centres, has_mask = mg.mask_centres(target)
        token_logits = mg(lm.norms[-1](masked_words), attn, out["levels"][0], centres, has_mask, masked)
        grounding = grounding_loss(token_logits, ids[masked])

        total = (lc.bce_weight * bce + lc.dice_weight * dice + lc.cal_weight * cal
                 + lc.grounding_weight * grounding)
        return {"bce": bce, "dice": dice, "p2p": p2p, "p2t": p2t, "cal": cal, "grounding": grounding, "total": total}

    def _check_batch(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        for key in ("image", "input_ids", "attention_mask", "mask"):
            if key not in batch:
                raise RefbenchError(f"training batch lacks {key!r} (needs image, input_ids, attention_mask, mask)")
        images, target = batch["image"], batch["mask"]
        if target.dim() != 3 or target.shape[0] != images.shape[0] or target.shape[-2:] != images.shape[-2:]:
            raise RefbenchError(f"batch['mask'] must be (B, H, W) = {(images.shape[0], *images.shape[-2:])} like the "
                                f"images, got {tuple(target.shape)}")
        if target.dtype != torch.bool:
            if torch.is_floating_point(target) and torch.isnan(target).any():
                raise RefbenchError("batch['mask'] contains NaN; expected a binary GT mask (bool or 0/1)")
            if ((target != 0) & (target != 1)).any():
                raise RefbenchError("batch['mask'] must be binary (bool or 0/1); rasterize the GT before training")
            target = target != 0
        types = batch.get("type")
        # the type is informational: an empty GT (a "zero" sentence, or an object too small to
        # survive the resize) is handled from the mask itself (no CAL term, the empty-mask embedding)
        if types is not None and (len(types) != images.shape[0] or any(t not in TYPES for t in types)):
            raise RefbenchError(f"batch['type'] must list one of {TYPES} per sample, got {list(types)[:8]}")
        return images, batch["input_ids"], batch["attention_mask"], target

    # -- weights ------------------------------------------------------------------------------------
    def official_state_view(self) -> nn.Module:
        """A module sharing this model's parameters whose keys are exactly the official checkpoint's."""
        view = nn.Module()
        for name in OFFICIAL_CHILDREN:
            view.add_module(name, getattr(self, name))
        return view

    def load_checkpoint(self, path: "str | os.PathLike | dict", strict: bool = True) -> list[str]:
        """Load an official MagNet checkpoint (``{'model': ...}``, optional ``module.`` prefix) or a
        refbench one (training modules included); strict by default.  ``path`` may also be an
        already loaded checkpoint dict.  Returns notes; loading an official file adds one note
        saying that the training-only modules keep their fresh initialisation."""
        official = []

        def into(state) -> nn.Module:
            if any(k.split(".", 1)[0] not in OFFICIAL_CHILDREN for k in state):
                if all(k in state for k in self._training_keys()):
                    self._training_rng = None  # every training-only tensor comes from the file
                return self
            official.append(True)
            return self.official_state_view()

        notes = load_model_checkpoint(self, path, CHECKPOINT_LAYOUT, strict=strict, into=into)
        if official:
            n_training = len(self._training_keys())
            notes.append(f"training-only modules (mask_grounding, {n_training} tensors) are not in this checkpoint "
                         "and keep their fresh initialisation (inference does not use them)")
        return notes

def build(variant: str = "paper", bert_path: str | None = None, swin_path: str | None = None, **overrides) -> MagNet:
    """Build MagNet (random init unless ``bert_path`` / ``swin_path`` name local pretrained files).

    ``overrides`` replace fields of the variant's :class:`MagNetConfig` (e.g. ``input_size=416``).
    """
    config = variant_config(CONFIGS, variant, "MagNet", overrides)
    return MagNet(config, bert_path=bert_path, swin_path=swin_path)
