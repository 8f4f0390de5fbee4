"""DMMI: Dual Multi-Modal Interaction network (Hu et al., "Beyond One-to-One: Rethinking the
Referring Image Segmentation", ICCV 2023).

Reads top to bottom like the paper's method (§3):

1. **Text encoder** (§3.1) — BERT-base, last hidden state E (B, 768, L) of the 20 tokens; in
   training also E' of the sentence with one entity phrase erased (``erasing.py``).
2. **Feature encoder with MBA** (§3.1.1–3.1.2) — Swin-B (or ResNet-101) whose every stage ends
   with the Multi-scale Bi-directional Attention module:

   * text-to-image alignment (Eqs. 2–4): each pixel's k×k neighbourhood (k = 1, 3, 5) queries the
     words; the three attention maps are mixed with softmax-normalised learned weights λ^α;
   * image-to-text alignment (Eqs. 5–6): each span of k consecutive words (k = 1, 2, 3) queries
     the pixels, mixed with λ^β;
   * the visual residual goes through LAVT's language gate, ``x <- x + gate(r)·r``; the words are
     updated **without a gate**, ``E <- E + GELU(W_l E*)`` (official code), and carried on.

   The official code computes E* from the *input* visual tokens of the stage (before the gated
   update), and — for Swin — feeds the decoder the ``norm{i}`` of the ungated residual r, as LAVT
   does; the ResNet backbone feeds it the gated maps.
3. **Text-to-image decoder** (§3.2, Eq. 7) and **image-to-text decoder** (§3.3, CCR) in
   ``decoder.py``; the 2-channel logits at stride 4 are upsampled bilinearly (align_corners=True)
   to the input size inside the model, and the prediction is the argmax over the 2 channels.
4. **Training objective** (``losses.py``): weighted cross-entropy + 0.01·L_sim (CCR) +
   0.01·L_con (contrastive), the auxiliary terms switched off for one-to-zero samples.

The official fusion reshapes the stage's tokens into a square map (h = √(HW)), so inputs must be
square; a non-square input raises RefbenchError.

Official checkpoints hold ``{'model': backbone.* + classifier.* + contrastive.*, 'bert_model':
BERT}``; here BERT is the child ``text_encoder``.  Facts: the official DMMI repository
(toggle1995/RIS-DMMI).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.bert import BertTextEncoder
from refbench.core.checkpoint import CheckpointLayout, load_model_checkpoint
from baselines.common.configs import variant_config
from baselines.common.layers import map_to_tokens, tokens_to_map
from baselines.common.pwam import PAD_LOGIT, LanguageGate, word_mask_2d
from baselines.common.resnet import ResNet, load_pretrained_resnet
from baselines.common.swin import SwinTransformer, load_pretrained_swin
from baselines.dmmi.config import CONFIGS, DMMIConfig
from baselines.dmmi.decoder import DecoderOutput, DMMIDecoder
from baselines.dmmi.erasing import erased_input_ids
from baselines.dmmi.losses import MultiModalContrastiveLoss, segmentation_loss, similarity_loss
from refbench.core.errors import RefbenchError
from refbench.core.models import RISModel

CHECKPOINT_LAYOUT = CheckpointLayout(dicts={"model": "", "bert_model": "text_encoder."})
# query width of each alignment kernel relative to the stage width C (official code):
# pixel regions 1×1 / 3×3 / 5×5 -> C, C/2, C/4; word spans 1 / 2 / 3 -> C, C/2, C//3
TEXT_KERNEL_DIVISORS = {1: 1, 3: 2, 5: 4}
WORD_KERNEL_DIVISORS = {1: 1, 2: 2, 3: 3}


def _conv_in(c_in: int, c_out: int) -> nn.Sequential:
    """1×1 Conv1d followed by an affine-free InstanceNorm1d (normalises each channel over the sequence)."""
    return nn.Sequential(nn.Conv1d(c_in, c_out, 1), nn.InstanceNorm1d(c_out))


def _pad_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 on real words, -1e4 on padding (the official ``1e4 * mask - 1e4``)."""
    return PAD_LOGIT * mask.to(dtype) - PAD_LOGIT


# -- 2. Multi-scale Bi-directional Attention (§3.1.2) ---------------------------------------------

class RegionWordAffinity(nn.Module):
    """Text-to-image affinity of one region size (Eq. 2; official ``RefineVisualSim``).

    The pixel queries are reduced to c_k channels (conv + IN), their k×k neighbourhood
    (zero-padded) is concatenated and projected back to C (conv + IN): the query of pixel i sums
    over the region Ω^α_k(i).  Softmax over words, scale C^-1/2, padded words get -1e4.
    """

    def __init__(self, vis_dim: int, lang_dim: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        inner = vis_dim // TEXT_KERNEL_DIVISORS[kernel]
        self.scale = vis_dim ** -0.5
        self.f_key = nn.Sequential(nn.Conv1d(lang_dim, vis_dim, 1))
        self.f_query = _conv_in(vis_dim, inner)
        self.f_query2 = _conv_in(inner * kernel * kernel, vis_dim)

    def forward(self, x: torch.Tensor, side: int, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, C, N) pixels of a side×side map, words (B, C_l, L), mask (B, L) -> attention (B, N, L)."""
        q = self.f_query(x)
        if self.kernel > 1:
            q = F.unfold(q.reshape(q.shape[0], q.shape[1], side, side), self.kernel, padding=self.kernel // 2)
        q = self.f_query2(q)                                          # (B, C, N)
        key = self.f_key(words) * mask[:, None, :].to(words.dtype)    # (B, C, L)
        logits = torch.matmul(q.transpose(1, 2), key) * self.scale
        return (logits + _pad_bias(mask, logits.dtype)[:, None, :]).softmax(dim=-1)


class SpanPixelAffinity(nn.Module):
    """Image-to-text affinity of one span length (Eq. 5; official ``RefineLanSim``).

    Word queries are reduced to c_k channels, the span of k words starting k//2 before each word
    (replicate-padded at both ends) is concatenated and projected to C_l.  Queries of padded
    words are zeroed; softmax over pixels with the scale C^-1/2 of the *visual* width (official).
    """

    def __init__(self, vis_dim: int, lang_dim: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        inner = vis_dim // WORD_KERNEL_DIVISORS[kernel]
        self.scale = vis_dim ** -0.5
        self.f_key = _conv_in(vis_dim, lang_dim)
        self.f_query = nn.Sequential(nn.Conv1d(lang_dim, inner, 1))
        self.f_query2 = nn.Sequential(nn.Conv1d(inner * kernel, lang_dim, 1))

    def forward(self, x: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, C, N), words (B, C_l, L), mask (B, L) -> attention (B, L, N)."""
        q = self.f_query(words)                                       # (B, c_k, L)
        k = self.kernel
        if k > 1:
            q = F.pad(q, (k // 2, (k - 1) // 2), mode="replicate")    # (B, c_k, L + k - 1)
            q = q.unfold(-1, k, 1).transpose(2, 3)                    # (B, c_k, k, L)
            q = q.reshape(q.shape[0], -1, q.shape[-1])                # (B, c_k·k, L), channel-major
        q = self.f_query2(q) * mask[:, None, :].to(words.dtype)       # (B, C_l, L)
        key = self.f_key(x)                                           # (B, C_l, N)
        logits = torch.matmul(q.transpose(1, 2), key) * self.scale    # (B, L, N)
        return (logits + _pad_bias(mask, logits.dtype)[:, :, None]).softmax(dim=-1)


class MultiScaleBidirectionalAttention(nn.Module):
    """Both alignments of the MBA (Eqs. 2–6; official ``SpatialImageInteraction``).

    V* = W(Σ_r λ^α_r A^α_r · W_v^α E)   (Eqs. 3–4; W = conv + IN over pixels)
    E* = W2(Σ_r λ^β_r A^β_r · W_v^β V)  (Eq. 6; W_v^β = conv + IN over pixels)
    with λ = softmax of the learned ``vis_weight`` / ``lan_weight`` (3 each, initialised to 1).
    """

    def __init__(self, vis_dim: int, lang_dim: int) -> None:
        super().__init__()
        self.f_value = nn.Sequential(nn.Conv1d(lang_dim, vis_dim, 1))
        self.f_value_v = _conv_in(vis_dim, lang_dim)
        self.W = _conv_in(vis_dim, vis_dim)
        self.W2 = nn.Sequential(nn.Conv1d(lang_dim, lang_dim, 1))
        for k in (1, 3, 5):
            self.add_module(f"refineimg{k}{k}", RegionWordAffinity(vis_dim, lang_dim, k))
        for k in (1, 2, 3):
            self.add_module(f"refinelan{k}1", SpanPixelAffinity(vis_dim, lang_dim, k))
        self.vis_weight = nn.Parameter(torch.ones(3))
        self.lan_weight = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor, side: int, words: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, N) pixels, words (B, C_l, L), mask (B, L) -> V* (B, C, N), E* (B, C_l, L)."""
        lam_v = self.vis_weight.softmax(dim=0)
        attn_v = sum(lam_v[i] * getattr(self, f"refineimg{k}{k}")(x, side, words, mask)
                     for i, k in enumerate((1, 3, 5)))                              # (B, N, L)
        value = self.f_value(words) * mask[:, None, :].to(words.dtype)              # (B, C, L)
        out_v = self.W(torch.matmul(attn_v, value.transpose(1, 2)).transpose(1, 2))

        lam_l = self.lan_weight.softmax(dim=0)
        attn_l = sum(lam_l[i] * getattr(self, f"refinelan{k}1")(x, words, mask)
                     for i, k in enumerate((1, 2, 3)))                              # (B, L, N)
        value_v = self.f_value_v(x)                                                 # (B, C_l, N)
        out_l = self.W2(torch.matmul(attn_l, value_v.transpose(1, 2)).transpose(1, 2))
        return out_v, out_l


class MultiScaleBidirectionalFusion(nn.Module):
    """The MBA as wired in the backbone (official ``PWAM`` around ``SpatialImageInteraction``):
    visual residual ``project_mm(vis_project(x) ⊙ V*)`` (1×1 conv + GELU + dropout each) and E*."""

    def __init__(self, dim: int, lang_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.vis_project = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.GELU(), nn.Dropout(dropout))
        self.image_lang_att = MultiScaleBidirectionalAttention(dim, lang_dim)
        self.project_mm = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, side: int, words: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, N) channels-first pixels -> residual (B, C, N), E* (B, C_l, L)."""
        out_v, out_l = self.image_lang_att(x, side, words, mask)
        return self.project_mm(self.vis_project(x) * out_v), out_l


class LanguageUpdate(nn.Sequential):
    """``W_l``: 1×1 Conv1d + GELU on E*; added to the words without a gate (official code)."""

    def __init__(self, lang_dim: int) -> None:
        super().__init__(nn.Conv1d(lang_dim, lang_dim, 1), nn.GELU())


def mba_modules(dim: int, lang_dim: int, dropout: float) -> dict[str, nn.Module]:
    """The per-stage modules: ``fusion`` (MBA), ``res_gate`` (LAVT's gate, ReLU) and ``W_l``."""
    return {"fusion": MultiScaleBidirectionalFusion(dim, lang_dim, dropout),
            "res_gate": LanguageGate(dim, activation="relu"),
            "W_l": LanguageUpdate(lang_dim)}


def mba_step(stage: nn.Module, x: torch.Tensor, side: int, words: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One bi-directional fusion with ``stage.{fusion, res_gate, W_l}`` (§3.1.1).

    x (B, N, C) tokens of a side×side map, words (B, C_l, L), mask (B, L).  Returns the gated
    tokens ``x + gate(r)·r`` (B, N, C), the ungated residual r (B, N, C) and the updated words
    ``E + W_l(E*)`` (B, C_l, L).
    """
    residual, lang = stage.fusion(x.transpose(1, 2), side, words, mask)
    residual = residual.transpose(1, 2)
    return stage.res_gate.gated_sum(x, residual), residual, words + stage.W_l(lang)


def _check_square(height: int, width: int, what: str) -> int:
    if height != width:
        raise RefbenchError(f"DMMI needs square inputs: its fusion reshapes each {what} into a square map, "
                            f"got {height}x{width}; resize images to SxS (the lavt protocol uses 480x480)")
    return height


class MultiModalResNet(nn.Module):
    """ResNet-101 feature encoder with an MBA after every stage (official ``dmmi_res``).

    Keys: ``layer1.{0: conv1, 1: bn1, 4: torchvision layer1}``, ``layer2..4`` (torchvision),
    ``all_fusion{1..4}.{fusion, res_gate, W_l}``.  The stage outputs are the gated maps.
    """

    def __init__(self, resnet: ResNet, lang_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1)
        self.layer2, self.layer3, self.layer4 = resnet.layer2, resnet.layer3, resnet.layer4
        for i, dim in enumerate(resnet.config.stage_dims):
            block = nn.Module()
            for name, module in mba_modules(dim, lang_dim, dropout).items():
                block.add_module(name, module)
            # The official ResNet blocks keep torch's default Linear init for the gate (the Swin
            # backbone re-initialises it with N(0, 0.02)); a gate with both weights at zero would
            # never receive a gradient.
            block.res_gate[0].reset_parameters()
            block.res_gate[2].reset_parameters()
            self.add_module(f"all_fusion{i + 1}", block)

    def forward(self, images: torch.Tensor, words: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, outs = images, []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            h, w = x.shape[-2:]
            tokens, _, words = mba_step(getattr(self, f"all_fusion{i}"), map_to_tokens(x), _check_square(h, w, "map"),
                                        words, mask)
            x = tokens_to_map(tokens, h, w)
            outs.append(x)
        return words, outs


# -- the network -----------------------------------------------------------------------------------

class DMMI(RISModel):
    """DMMI with its BERT: ``forward(images, input_ids, attention_mask) -> (B, 2, S, S)`` raw logits."""

    name = "dmmi"
    binarize_rule = "argmax"
    text_encoder_kind = "bert"
    token_length = 20
    normalization = "imagenet"
    text_encoder_prefix = "text_encoder."

    def __init__(self, config: DMMIConfig, bert_path: str | None = None, swin_path: str | None = None,
                 resnet_path: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_size = config.input_size
        lang_dim = config.lang_dim
        self.init_notes: list[str] = []
        if config.backbone != "swin" and swin_path is not None:
            raise RefbenchError("swin_path applies to the Swin variants; use resnet_path for variant 'resnet101'")
        if config.backbone == "swin" and resnet_path is not None:
            raise RefbenchError("resnet_path applies to variant 'resnet101' only; use swin_path for Swin variants")
        if config.backbone == "swin":
            self.backbone = SwinTransformer(
                config.swin, stage_extras=lambda i, dim: mba_modules(dim, lang_dim, config.fusion_dropout))
            if swin_path is not None:
                self.init_notes += load_pretrained_swin(self.backbone, swin_path)
        else:
            resnet = ResNet(config.resnet)
            if resnet_path is not None:
                self.init_notes += load_pretrained_resnet(resnet, resnet_path)
            self.backbone = MultiModalResNet(resnet, lang_dim, config.fusion_dropout)
        self.classifier = DMMIDecoder(config.stage_dims, config.decoder_hidden, lang_dim, config.decoder_heads,
                                      config.decoder_ffn, config.decoder_dropout)
        self.contrastive = MultiModalContrastiveLoss(lang_dim, config.temperature)
        self.text_encoder = BertTextEncoder(config.text, path=bert_path)
        if bert_path is not None:
            self.init_notes.append(f"BERT initialised from {bert_path}")

    # -- 1. text encoder ---------------------------------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and 0/1 mask -> E (B, C_l, L), padded positions included."""
        return self.text_encoder(input_ids, attention_mask).transpose(1, 2)

    # -- 2. feature encoder with MBA ---------------------------------------------------------------
    def encode(self, images: torch.Tensor, words: torch.Tensor,
               attention_mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Visual stages with MBA.  Returns the final words E4* (B, C_l, L) and the four maps
        V1*..V4* (B, C_i, S/4/2^i, S/4/2^i) that the decoder takes."""
        mask = word_mask_2d(attention_mask, words.shape[0], words.shape[-1])
        if self.config.backbone != "swin":
            return self.backbone(images, words, mask)
        swin = self.backbone
        x, h, w = swin.embed(images)
        outs = []
        for i, stage in enumerate(swin.layers):
            x = stage.forward_blocks(x, h, w)
            x, residual, words = mba_step(stage, x, _check_square(h, w, "stage map"), words, mask)
            outs.append(swin.stage_output(i, residual, h, w))
            x, h, w = stage.downsample_tokens(x, h, w)
        return words, outs

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or not torch.is_floating_point(images):
            raise RefbenchError(f"images must be float (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        _check_square(images.shape[-2], images.shape[-1], "image")

    def forward_features(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         erased_ids: torch.Tensor | None = None) -> dict:
        """Intermediate tensors of one pass: ``bert_out`` E (B, C_l, L), ``lang_final`` E4*
        (B, C_l, L), ``s1..s4`` decoder inputs (NCHW), ``logits_lowres`` (B, 2, S/4, S/4) and
        ``decoder`` (:class:`DecoderOutput`).  With ``erased_ids`` (B, L) the training branch runs
        too (``bert_erased``, ``decoder.pooled``, ``decoder.reconstructed``)."""
        self._check_images(images)
        words = self.encode_text(input_ids, attention_mask)
        erased = self.encode_text(erased_ids, attention_mask) if erased_ids is not None else None
        lang_final, (s1, s2, s3, s4) = self.encode(images, words, attention_mask)
        # -- 3. decoders ---------------------------------------------------------------------------
        dec: DecoderOutput = self.classifier(s4, s3, s2, s1, lang_final, erased)
        return {"bert_out": words, "bert_erased": erased, "lang_final": lang_final, "s1": s1, "s2": s2, "s3": s3,
                "s4": s4, "logits_lowres": dec.logits, "decoder": dec}

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalized images, (B, L) ids, (B, L) mask -> (B, 2, S, S) raw logits."""
        low = self.forward_features(images, input_ids, attention_mask)["logits_lowres"]
        return F.interpolate(low, size=images.shape[-2:], mode="bilinear", align_corners=True)

    # -- 4. training objective ---------------------------------------------------------------------
    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Official objective: ``ce + 0.01·sim + 0.01·con`` (terms under their names + ``total``).

        Batch keys: ``image`` (B, 3, S, S), ``input_ids``/``attention_mask`` (B, L), ``mask``
        (B, S, S) in {0, 1}, ``type`` (B strings; ``"zero"`` switches the auxiliary terms off),
        and either ``input_ids_erased`` (B, L) or ``sentence`` + ``sample_id`` (B strings each), from
        which the erased ids are derived deterministically per sample (same span every epoch).
        """
        for key in ("image", "input_ids", "attention_mask", "mask", "type"):
            if key not in batch:
                raise RefbenchError(f"DMMI training batch lacks {key!r} (needs image, input_ids, attention_mask, "
                                    "mask, type and input_ids_erased or sentence + sample_id)")
        ids, att = batch["input_ids"], batch["attention_mask"]
        erased = batch.get("input_ids_erased")
        if erased is None:
            if "sentence" not in batch or "sample_id" not in batch:
                raise RefbenchError("DMMI training batch needs 'input_ids_erased' or both 'sentence' and 'sample_id' "
                                    "(to erase one entity phrase per sentence)")
            erased = erased_input_ids(ids, att, batch["sentence"], batch["sample_id"], seed=self.config.erase_seed,
                                      max_word_index=self.config.erase_max_word_index)
        if erased.shape != ids.shape:
            raise RefbenchError(f"batch['input_ids_erased'] {tuple(erased.shape)} must match input_ids {tuple(ids.shape)}")
        types = list(batch["type"])
        if len(types) != ids.shape[0] or any(t not in ("zero", "one", "many") for t in types):
            raise RefbenchError(f"batch['type'] must hold one of 'zero'/'one'/'many' per sample, got {types!r}")
        target_flag = torch.tensor([t != "zero" for t in types], dtype=torch.float32, device=ids.device)

        feats = self.forward_features(batch["image"], ids, att, erased_ids=erased.to(ids.device))
        logits = F.interpolate(feats["logits_lowres"], size=batch["image"].shape[-2:], mode="bilinear",
                               align_corners=True)
        dec: DecoderOutput = feats["decoder"]
        ce = segmentation_loss(logits, batch["mask"], self.config.ce_class_weights)
        sim = similarity_loss(feats["lang_final"], dec.reconstructed, att, target_flag)
        con = self.contrastive(dec.pooled, feats["lang_final"], target_flag)
        total = ce + self.config.sim_weight * sim + self.config.contrastive_weight * con
        return {"ce": ce, "sim": sim, "contrastive": con, "total": total}

    # -- weights -----------------------------------------------------------------------------------
    def training_order(self, types: list[str], epoch: int, seed: int) -> list[int] | None:
        """On data with zero-target sentences (Ref-ZOM), the official sampler's order: zero-target
        sentences spread evenly among the others, drawn once and repeated every epoch."""
        if "zero" not in types:
            return None
        from baselines.dmmi.sampler import refzom_order

        return refzom_order(types, seed)

    def load_checkpoint(self, path: str, strict: bool = True) -> list[str]:
        """Load an official DMMI checkpoint (``{'model', 'bert_model', ...}``, ``module.``
        prefixes) or a refbench one; strict by default.  Returns notes."""
        return load_model_checkpoint(self, path, CHECKPOINT_LAYOUT, strict=strict)


def build(variant: str = "paper", bert_path: str | None = None, swin_path: str | None = None,
          resnet_path: str | None = None, **overrides) -> DMMI:
    """Build DMMI (random init unless ``bert_path`` / ``swin_path`` / ``resnet_path`` name local
    pretrained files).  ``overrides`` replace fields of the variant's :class:`DMMIConfig`
    (e.g. ``input_size=448``)."""
    config = variant_config(CONFIGS, variant, "DMMI", overrides, frozen=("variant", "backbone"))
    return DMMI(config, bert_path=bert_path, swin_path=swin_path, resnet_path=resnet_path)
