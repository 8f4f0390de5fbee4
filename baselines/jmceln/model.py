"""JMCELN: Joint Mask Contextual Embedding Learning Network (Huang & Satoh, EMNLP 2023).

Reads top to bottom like the paper's method (§3 of Huang & Satoh, EMNLP 2023):

1. **Image & text encoder** (§3.2) — CLIP's ModifiedResNet-101 gives F_v1, F_v2, F_v3 at strides
   8, 16, 32; CLIP's text transformer gives the sentence feature F_s (at <|endoftext|>) and the
   word features F_t (unused by the method: the cascade reasons with learned embeddings, not text).
2. **Neck** (Eq. 1-2) — F_m2 = σ(F_s W_s) ⊙ σ(F_v3 W_v3), then top-down
   F_m{i-1} = σ(W_mi [Up(F_mi), σ(F_vi W_vi)]) down to F_m = F_m0 at stride 8 with C channels.
3. **Long-Short Relation-Aware Network** (§3.3, Fig. 2b) — window attention, four dilated 3×3
   convolutions (relation types), a 1×1 mix, multiplied by a 3×3 convolution of F_m: F_mt^0.
4. **Joint Mask Contextual Embedding Learning** (§3.4), n stages from the learnable contextual
   embedding q^0 (Q × C):
   - contextual embedding learning, Eq. 3: q^{i+1} = MHA(q^i; keys F_m, values F_mt^i) + q^i;
   - mask predicting, Eq. 4: F_mt'^{i+1} = MHA(F_mt^i; keys/values q^{i+1}) + F_mt^i;
   - the Progressive Alignment Network (§3.4.2, Fig. 2c) filters F_mt'^{i+1} by F_mt^i and
     gives F_mt^{i+1}.
5. **Progressive upsampling** (§3.5) of F_mt^n to a 2-channel map at the input size; the loss is
   the cross-entropy, the prediction the argmax over the two channels (§4).

No official code exists: the key names are
refbench's own, and every choice the paper leaves open is a field of
:class:`~baselines.jmceln.config.JMCELNConfig` (documented there).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from refbench.core.checkpoint import CheckpointLayout, load_model_checkpoint
from baselines.common.clip import CLIPTextTransformer, ModifiedResNet, MultiheadAttention, load_clip_state_dict
from baselines.common.configs import variant_config
from baselines.common.layers import map_to_tokens, tokens_to_map
from baselines.common.swin import SwinBlock
from baselines.jmceln.config import ABLATIONS, CONFIGS, JMCELNConfig
from baselines.jmceln.switchable_norm import SwitchableNorm2d
from refbench.core.errors import RefbenchError, suggest
from refbench.core.models import RISModel

CHECKPOINT_LAYOUT = CheckpointLayout(dicts={"model": ""})


class ConvBNAct(nn.Sequential):
    """k×k convolution (dilation d, 'same' padding, no bias) -> BatchNorm -> activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, dilation: int = 1,
                 activation: nn.Module | None = None) -> None:
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(c_in, c_out, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation,
                               bias=False)),
            ("bn", nn.BatchNorm2d(c_out)),
            ("act", activation if activation is not None else nn.ReLU(inplace=True)),
        ]))


# ---------------------------------------------------------------------------------------------
# 2. Neck (§3.2, Eq. 1-2)
# ---------------------------------------------------------------------------------------------
class Neck(nn.Module):
    """Multi-modal feature F_m from F_v1..F_v3 and F_s, top-down (Eq. 1-2).

    σ = BatchNorm + LeakyReLU; W_s a linear embedding; W_vi, W_mi convolutions projecting to C.
    Up = bilinear upsampling to the next finer map (2× for inputs divisible by 32).
    """

    def __init__(self, visual_dims: tuple[int, int, int], text_dim: int, dim: int, slope: float = 0.01,
                 merge_kernel: int = 1) -> None:
        super().__init__()

        def sigma() -> nn.Module:
            return nn.LeakyReLU(slope, inplace=True)

        self.sentence_proj = nn.Sequential(OrderedDict([  # σ(F_s W_s)
            ("linear", nn.Linear(text_dim, dim, bias=False)), ("bn", nn.BatchNorm1d(dim)), ("act", sigma())]))
        self.visual_proj = nn.ModuleList([ConvBNAct(c, dim, 1, activation=sigma()) for c in visual_dims])  # σ(F_vi W_vi)
        self.merge = nn.ModuleList([ConvBNAct(2 * dim, dim, merge_kernel, activation=sigma()) for _ in range(2)])  # W_m1, W_m2

    def forward(self, f_v: list[torch.Tensor], f_s: torch.Tensor) -> torch.Tensor:
        """f_v: [F_v1 (B, C1, S/8, S/8), F_v2 (B, C2, S/16, …), F_v3 (B, C3, S/32, …)]; f_s (B, D_s)
        -> F_m (B, C, S/8, S/8)."""
        # Eq. 1: F_m2 = σ(F_s W_s) ⊙ σ(F_v3 W_v3), the sentence vector repeated over the map
        f_m = self.sentence_proj(f_s)[:, :, None, None] * self.visual_proj[2](f_v[2])
        # Eq. 2 for i = 2, 1: F_m{i-1} = σ(W_mi [Up(F_mi), σ(F_vi W_vi)])
        for i in (1, 0):
            skip = self.visual_proj[i](f_v[i])
            up = F.interpolate(f_m, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            f_m = self.merge[i](torch.cat([up, skip], dim=1))
        return f_m


# ---------------------------------------------------------------------------------------------
# 3. Long-Short Relation-Aware Network (§3.3, Fig. 2b)
# ---------------------------------------------------------------------------------------------
class LongShortRelationAwareNetwork(nn.Module):
    """F_mt = Mix1×1([Conv(3, d_k)(WindowAttention(F_m))]_k=1..4) ⊙ Conv3×3(F_m).

    The window attention (Liu et al. 2021a) is a Swin block without shift over w×w windows; each
    dilated branch is conv-BN-ReLU with C/4 channels; the mix and the boundary conv are
    conv-BN-ReLU with C channels.
    """

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.window_attention = SwinBlock(dim, num_heads, window, shift=0, mlp_ratio=mlp_ratio)
        branch = dim // len(dilations)
        self.relations = nn.ModuleList([ConvBNAct(dim, branch, 3, dilation=d) for d in dilations])
        self.mix = ConvBNAct(branch * len(dilations), dim, 1)
        self.boundary = ConvBNAct(dim, dim, 3)

    def forward(self, f_m: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> F_mt^0 (B, C, H, W)."""
        b, c, h, w = f_m.shape
        x = tokens_to_map(self.window_attention(map_to_tokens(f_m), h, w, None), h, w)
        relations = self.mix(torch.cat([branch(x) for branch in self.relations], dim=1))
        return relations * self.boundary(f_m)


# ---------------------------------------------------------------------------------------------
# 4. Joint Mask Contextual Embedding Learning (§3.4)
# ---------------------------------------------------------------------------------------------
class LearnableContextualEmbedding(nn.Module):
    """q^0 ∈ R^{Q×C} (§3.1): Q embeddings, each randomly initialised with its own values."""

    def __init__(self, num_embeddings: int, dim: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_embeddings, dim) * init_std)

    def forward(self, batch_size: int) -> torch.Tensor:
        """-> q^0 repeated over the batch, (B, Q, C) (a copy, not a view of the parameter)."""
        return self.weight.unsqueeze(0).repeat(batch_size, 1, 1)


class ContextualEmbeddingLearning(nn.Module):
    """Eq. 3: q^{i+1} = softmax(q^i F_m^T / sqrt(d_k)) F_mt^i + q^i, as multi-head attention
    (queries q^i, keys F_m, values F_mt^i; Vaswani et al.'s projections per head)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention = MultiheadAttention(dim, num_heads)

    def forward(self, q: torch.Tensor, f_m: torch.Tensor, f_mt: torch.Tensor) -> torch.Tensor:
        """q (B, Q, C); f_m, f_mt (B, HW, C) tokens -> q^{i+1} (B, Q, C)."""
        return self.attention(q, f_m, f_mt) + q


class ProgressiveAlignmentNetwork(nn.Module):
    """§3.4.2, Fig. 2c (after HorNet's recursive gated convolution, order 3).

    F_mt'^{i+1} -> 1×1 conv to C/4 + C/2 + C -> 7×7 depthwise conv -> split into F1 (C/4),
    F2 (C/2), F3 (C).  The previous stage's output F_mt^i, projected by a 1×1 conv to C/4, filters
    F1; a 3×3 conv of the result (C/2) filters F2; a 3×3 conv of that (C) filters F3 — three
    progressive filterings.  Then Switchable Normalization and the residual F_mt^i:
    F_mt^{i+1} = F_mt^i + SN(filtered).
    """

    def __init__(self, dim: int, kernel: int = 7) -> None:
        super().__init__()
        self.split_dims = (dim // 4, dim // 2, dim)
        total = sum(self.split_dims)
        self.proj_in = nn.Conv2d(dim, total, 1)
        self.dwconv = nn.Conv2d(total, total, kernel, padding=kernel // 2, groups=total)
        self.proj_previous = nn.Conv2d(dim, self.split_dims[0], 1)
        self.filters = nn.ModuleList([nn.Conv2d(self.split_dims[0], self.split_dims[1], 3, padding=1),
                                      nn.Conv2d(self.split_dims[1], self.split_dims[2], 3, padding=1)])
        self.norm = SwitchableNorm2d(dim)

    def forward(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """current F_mt'^{i+1}, previous F_mt^i: (B, C, H, W) -> F_mt^{i+1} (B, C, H, W)."""
        f1, f2, f3 = self.dwconv(self.proj_in(current)).split(self.split_dims, dim=1)
        x = self.proj_previous(previous) * f1
        x = self.filters[0](x) * f2
        x = self.filters[1](x) * f3
        return previous + self.norm(x)


class CascadeStage(nn.Module):
    """One stage i -> i+1: contextual embedding learning (Eq. 3), mask predicting (Eq. 4), PAN."""

    def __init__(self, dim: int, num_heads: int, use_pan: bool, pan_kernel: int) -> None:
        super().__init__()
        self.embedding_learning = ContextualEmbeddingLearning(dim, num_heads)
        self.mask_attention = MultiheadAttention(dim, num_heads)
        self.pan = ProgressiveAlignmentNetwork(dim, pan_kernel) if use_pan else None

    def forward(self, q: torch.Tensor, f_m: torch.Tensor, f_mt: torch.Tensor,
                values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q^i (B, Q, C); F_m tokens (B, HW, C); F_mt^i map (B, C, H, W); Eq. 3 values (B, HW, C)
        -> (q^{i+1}, F_mt^{i+1})."""
        h, w = f_mt.shape[-2:]
        q = self.embedding_learning(q, f_m, values)  # Eq. 3
        tokens = map_to_tokens(f_mt)
        aligned = tokens_to_map(self.mask_attention(tokens, q, q) + tokens, h, w)  # Eq. 4: F_mt'^{i+1}
        if self.pan is None:  # Table 2 "w/o PAN"
            return q, aligned
        return q, self.pan(aligned, f_mt)


class JointMaskContextualEmbeddingLearning(nn.Module):
    """The cascade (Fig. 2a): q^0 and n stages; returns F_mt^n and every stage's output."""

    def __init__(self, config: JMCELNConfig) -> None:
        super().__init__()
        self.adaptive = config.adaptive_embedding
        self.embedding = LearnableContextualEmbedding(config.num_embeddings, config.dim, config.embedding_init_std)
        self.stages = nn.ModuleList([CascadeStage(config.dim, config.num_heads, config.use_pan, config.pan_kernel)
                                     for _ in range(config.num_stages)])

    def forward(self, f_m: torch.Tensor, f_mt0: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """F_m, F_mt^0 (B, C, H, W) -> F_mt^n (B, C, H, W), [F_mt^1 … F_mt^n]."""
        f_m_tokens, f_mt0_tokens = map_to_tokens(f_m), map_to_tokens(f_mt0)
        q = self.embedding(f_m.shape[0]).to(f_m_tokens.dtype)
        f_mt, outputs = f_mt0, []
        for stage in self.stages:
            # adaptive LCE: Eq. 3 reads the current stage's output; "w/o adaptive LCE": always F_mt^0
            values = map_to_tokens(f_mt) if self.adaptive else f_mt0_tokens
            q, f_mt = stage(q, f_m_tokens, f_mt, values)
            outputs.append(f_mt)
        return f_mt, outputs


# ---------------------------------------------------------------------------------------------
# 5. Progressive upsampling (§3.5)
# ---------------------------------------------------------------------------------------------
class ProgressiveUpsampling(nn.Module):
    """Stride 8 -> input size: [3×3 conv-BN-ReLU, 2× bilinear] per stage, a 1×1 conv to 2 classes,
    and the last 2× bilinear to the input size (a 1×1 conv commutes with bilinear resizing, so
    classifying before the last resize gives the same map at a quarter of the cost)."""

    def __init__(self, dim: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        dims = (dim, *channels)
        self.blocks = nn.ModuleList([ConvBNAct(dims[i], dims[i + 1], 3) for i in range(len(channels))])
        self.classifier = nn.Conv2d(channels[-1], 2, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, C, S/8, S/8) -> (B, 2, S, S) logits."""
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.interpolate(self.classifier(x), size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
class JMCELN(RISModel):
    """JMCELN with its CLIP encoders: ``forward(images, input_ids, attention_mask) -> (B, 2, S, S)``."""

    name = "jmceln"
    binarize_rule = "argmax"
    text_encoder_kind = "clip"
    token_length = 30
    normalization = "clip"
    text_encoder_prefix = "text_encoder."

    def __init__(self, config: JMCELNConfig, clip_path: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_size = config.input_size
        vision, text = config.clip.vision, config.clip.text
        self.backbone = ModifiedResNet(vision)
        self.text_encoder = CLIPTextTransformer(text)
        stride32 = vision.output_dim if config.stride32_feature == "attnpool" else vision.stage_dims[3]
        self.neck = Neck((vision.stage_dims[1], vision.stage_dims[2], stride32), text.output_dim, config.dim,
                         config.neck_slope, config.neck_merge_kernel)
        self.lsran = (LongShortRelationAwareNetwork(config.dim, config.num_heads, config.window_size,
                                                    config.window_mlp_ratio, config.relation_dilations)
                      if config.use_lsran else None)
        self.cascade = JointMaskContextualEmbeddingLearning(config) if config.num_stages > 0 else None
        self.upsampling = ProgressiveUpsampling(config.dim, config.upsample_channels)
        self.init_notes: list[str] = []
        if clip_path is not None:
            self.init_notes += self.load_clip(clip_path)

    # -- 1. image & text encoder ---------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) -> [F_v1 (stride 8), F_v2 (stride 16), F_v3 (stride 32)]."""
        _, f_v1, f_v2, layer4 = self.backbone.forward_features(images)
        f_v3 = self.backbone.attnpool.forward_dense(layer4) if self.config.stride32_feature == "attnpool" else layer4
        return [f_v1, f_v2, f_v3]

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) -> F_s (B, D_s), the sentence feature at <|endoftext|>."""
        return self.text_encoder(input_ids, attention_mask).sentence

    def forward_features(self, images: torch.Tensor, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Intermediates: ``f_s`` (B, D_s), ``f_v`` [3 maps], ``f_m`` and ``f_mt0`` (B, C, S/8, S/8),
        ``stages`` [F_mt^1 … F_mt^n], ``f_mt`` (the cascade's output), ``logits`` (B, 2, S, S)."""
        self._check_images(images)
        f_s = self.encode_text(input_ids, attention_mask)
        f_v = self.encode_image(images)
        f_m = self.neck(f_v, f_s)  # 2. Eq. 1-2
        f_mt0 = self.lsran(f_m) if self.lsran is not None else f_m  # 3. LSRAN (Table 2 rows 1, 3: none)
        if self.cascade is not None:  # 4. the cascade (Table 2 rows 1-2: none)
            f_mt, stages = self.cascade(f_m, f_mt0)
        else:
            f_mt, stages = f_mt0, []
        logits = self.upsampling(f_mt, images.shape[-2:])  # 5.
        return {"f_s": f_s, "f_v": f_v, "f_m": f_m, "f_mt0": f_mt0, "stages": stages, "f_mt": f_mt,
                "logits": logits}

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) CLIP-normalized images, (B, L) CLIP ids, (B, L) mask -> (B, 2, S, S) logits."""
        return self.forward_features(images, input_ids, attention_mask)["logits"]  # type: ignore[return-value]

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or not torch.is_floating_point(images):
            raise RefbenchError(f"images must be float (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if min(images.shape[-2:]) < 32:
            raise RefbenchError(f"images must be at least 32x32 (stride-32 features), got {tuple(images.shape[-2:])}")

    # -- training (§3.5) -----------------------------------------------------------------------
    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Cross-entropy of the 2-channel logits at the input size against ``batch["mask"]`` (B, S, S)."""
        for key in ("image", "input_ids", "attention_mask", "mask"):
            if key not in batch:
                raise RefbenchError(f"training batch lacks {key!r} (needs image, input_ids, attention_mask, mask)")
        if self.training and batch["image"].shape[0] < 2:
            raise RefbenchError("JMCELN normalizes the sentence feature with BatchNorm (Eq. 1): training needs "
                                "micro-batches of at least 2 samples (raise --micro-batch)")
        logits = self(batch["image"], batch["input_ids"], batch["attention_mask"])
        target = batch["mask"]
        if target.shape != (logits.shape[0], *logits.shape[-2:]):
            raise RefbenchError(f"batch['mask'] must be (B, H, W) = {(logits.shape[0], *logits.shape[-2:])}, "
                                f"got {tuple(target.shape)}")
        weight = None
        if self.config.ce_class_weights is not None:
            weight = torch.tensor(self.config.ce_class_weights, dtype=torch.float32, device=logits.device)
        ce = F.cross_entropy(logits.float(), target.long(), weight=weight)
        return {"ce": ce, "total": ce}

    # -- weights -------------------------------------------------------------------------------
    def load_checkpoint(self, path: "str | dict", strict: bool = True) -> list[str]:
        """Load a refbench JMCELN checkpoint (or a bare / ``{'model'}`` / ``{'state_dict'}`` state
        dict with this module's keys); strict by default.  No official checkpoint exists."""
        return load_model_checkpoint(self, path, CHECKPOINT_LAYOUT, strict=strict)

    def load_clip(self, path: "str | dict", strict: bool = True) -> list[str]:
        """Initialise the image and text encoders from OpenAI CLIP weights of the configured size
        (``RN101.pt`` TorchScript archive or a state dict with OpenAI's keys), as §4 does."""
        return load_clip_state_dict(path, visual=self.backbone, text=self.text_encoder, strict=strict)


def build(variant: str = "paper", ablation: str | None = None, clip_path: str | None = None,
          **overrides) -> JMCELN:
    """Build JMCELN (random init unless ``clip_path`` names local CLIP RN101 weights).

    ``ablation`` picks a Table 2 row (:data:`~baselines.jmceln.config.ABLATIONS`); ``overrides``
    replace fields of the variant's :class:`JMCELNConfig` (e.g. ``input_size=416``).
    """
    changes: dict = {}
    if ablation is not None:
        if ablation not in ABLATIONS:
            raise suggest(ablation, ABLATIONS, "JMCELN ablation (Table 2 row)")
        changes.update(ABLATIONS[ablation])
    changes.update(overrides)
    config = variant_config(CONFIGS, variant, "JMCELN", changes)
    return JMCELN(config, clip_path=clip_path)
