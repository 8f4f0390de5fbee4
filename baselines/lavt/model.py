"""LAVT: Language-Aware Vision Transformer for Referring Image Segmentation (Yang et al., CVPR 2022).

Reads top to bottom like the paper's method:

1. **Language encoder** — BERT-base, last hidden state of the 20 tokens (B, 768, L).
2. **Language-aware visual encoding** — a Swin-B whose every stage ends with a pixel-word
   attention module (PWAM) and a language gate: ``r_i = PWAM(x_i, words)``,
   ``x_i <- x_i + gate(r_i) * r_i``.  The gated sum goes on through Swin; the *ungated*
   residual ``r_i`` after ``norm{i}`` is the stage's feature for the decoder (official code).
3. **Segmentation decoder** — ``SimpleDecoding``: top-down fusion of the four stages with
   3×3 conv-BN-ReLU pairs (hidden 512) and a 1×1 classifier to 2 channels at stride 4.
4. The 2-channel logits are upsampled bilinearly (align_corners=True) to the input size inside
   the model; the prediction is the argmax over the 2 channels.

Official checkpoints (``refcoco.pth`` …) hold ``{'model': backbone.* + classifier.*,
'bert_model': BERT}``; here BERT is the child ``text_encoder`` so that one module is the whole
network.  Facts: the official repository yz93/LAVT-RIS (key names, shapes, test procedure).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.bert import BertTextEncoder
from refbench.core.checkpoint import CheckpointLayout, load_model_checkpoint
from baselines.common.configs import variant_config
from baselines.common.pwam import PWAM, LanguageGate
from baselines.common.swin import SwinTransformer, load_pretrained_swin
from baselines.lavt.config import CONFIGS, LAVTConfig
from refbench.core.errors import RefbenchError
from refbench.core.models import RISModel

# official dict -> prefix in this module's state dict; lavt_one checkpoints already carry
# ``text_encoder.*`` inside ``model`` and load through the same mapping.
CHECKPOINT_LAYOUT = CheckpointLayout(dicts={"model": "", "bert_model": "text_encoder."})


def _batch_norm_relu(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(bn(x))``; at inference (eval, no autograd) in place on ``x``, as
    ``x·(γ/√(var+ε)) + (β − mean·γ/√(var+ε))`` with the running statistics (equal up to rounding),
    so that no second map-sized tensor is allocated."""
    if bn.training or torch.is_grad_enabled() or not bn.track_running_stats or bn.running_var is None:
        return F.relu(bn(x), inplace=True)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    shape = (1, -1, 1, 1)
    return x.mul_(scale.view(shape).to(x.dtype)).add_(shift.view(shape).to(x.dtype)).relu_()


class SimpleDecoding(nn.Module):
    """LAVT's mask decoder (official ``SimpleDecoding``): Y4+Y3 -> +Y2 -> +Y1 -> 2 logits at stride 4.

    At each step the coarser map is upsampled bilinearly (align_corners=True) to the finer one
    when it is smaller, concatenated, and passed through two bias-free 3×3 conv + BN + ReLU.
    """

    def __init__(self, stage_dims: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = stage_dims
        self.conv1_4 = nn.Conv2d(c4 + c3, hidden, 3, padding=1, bias=False)
        self.bn1_4 = nn.BatchNorm2d(hidden)
        self.conv2_4 = nn.Conv2d(hidden, hidden, 3, padding=1, bias=False)
        self.bn2_4 = nn.BatchNorm2d(hidden)
        self.conv1_3 = nn.Conv2d(hidden + c2, hidden, 3, padding=1, bias=False)
        self.bn1_3 = nn.BatchNorm2d(hidden)
        self.conv2_3 = nn.Conv2d(hidden, hidden, 3, padding=1, bias=False)
        self.bn2_3 = nn.BatchNorm2d(hidden)
        self.conv1_2 = nn.Conv2d(hidden + c1, hidden, 3, padding=1, bias=False)
        self.bn1_2 = nn.BatchNorm2d(hidden)
        self.conv2_2 = nn.Conv2d(hidden, hidden, 3, padding=1, bias=False)
        self.bn2_2 = nn.BatchNorm2d(hidden)
        self.conv1_1 = nn.Conv2d(hidden, 2, 1)

    @staticmethod
    def channels_last(*maps: torch.Tensor) -> list[torch.Tensor]:
        """The maps in channels-last layout: oneDNN convolves NHWC maps without reordering them
        into (and back out of) its blocked layout, which otherwise doubles the memory of every
        3x3 convolution at 1/4 scale, the forward's memory peak."""
        return [m.contiguous(memory_format=torch.channels_last) for m in maps]

    @staticmethod
    def _up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] < ref.shape[-2] or x.shape[-1] < ref.shape[-1]:
            return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)
        return x

    def _fuse(self, x: torch.Tensor, skip: torch.Tensor, step: str) -> torch.Tensor:
        # one statement per op, so that each input is released as soon as it is consumed, and the
        # ReLU in place on the BatchNorm output: at most two map-sized tensors live at once (the
        # decoder's 1/4-scale maps are the memory peak of the forward)
        x = torch.cat([self._up_to(x, skip), skip], dim=1)
        for i in (1, 2):
            x = getattr(self, f"conv{i}_{step}")(x)
            x = _batch_norm_relu(getattr(self, f"bn{i}_{step}"), x)
        return x

    def forward(self, y4: torch.Tensor, y3: torch.Tensor, y2: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
        """Stage maps (B, C_i, H_i, W_i), coarsest first -> (B, 2, H_1, W_1) logits (contiguous)."""
        y4, y3, y2, y1 = self.channels_last(y4, y3, y2, y1)
        x = self._fuse(y4, y3, "4")
        x = self._fuse(x, y2, "3")
        return self.finest(x, y1)

    def finest(self, x: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
        """The 1/4-scale step and the classifier: (B, 2, H_1, W_1) logits (contiguous).

        At inference it runs image by image: its maps are the largest tensors of the whole
        forward, and per image they stay the size of one image's whatever the batch."""
        if torch.is_grad_enabled() or x.shape[0] == 1:
            return self.conv1_1(self._fuse(x, y1, "2")).contiguous()
        return torch.cat([self.conv1_1(self._fuse(x[i:i + 1], y1[i:i + 1], "2")) for i in range(x.shape[0])]
                         ).contiguous()


class LAVT(RISModel):
    """LAVT with its BERT: ``forward(images, input_ids, attention_mask) -> (B, 2, S, S)`` raw logits."""

    name = "lavt"
    binarize_rule = "argmax"
    text_encoder_kind = "bert"
    token_length = 20
    normalization = "imagenet"
    text_encoder_prefix = "text_encoder."

    def __init__(self, config: LAVTConfig, bert_path: str | None = None, swin_path: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_size = config.input_size
        l_dim = config.text.hidden_size

        def fusion(stage: int, dim: int) -> dict[str, nn.Module]:
            return {"fusion": PWAM(dim, l_dim, num_heads=config.fusion_heads, dropout=config.fusion_dropout,
                                   projection="conv_instancenorm"),
                    "res_gate": LanguageGate(dim, activation="relu")}

        self.backbone = SwinTransformer(config.swin, stage_extras=fusion)
        self.classifier = SimpleDecoding(config.swin.stage_dims, config.decoder_hidden)
        self.text_encoder = BertTextEncoder(config.text, path=bert_path)
        self.init_notes: list[str] = []
        if swin_path is not None:
            self.init_notes += load_pretrained_swin(self.backbone, swin_path)
        if bert_path is not None:
            self.init_notes.append(f"BERT initialised from {bert_path}")

    # -- 1. language encoder -------------------------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and 0/1 mask -> word features (B, C_l, L), channels first as the PWAM takes them."""
        return self.text_encoder(input_ids, attention_mask).transpose(1, 2)

    # -- 2. language-aware visual encoding -----------------------------------------------------
    def encode_image(self, images: torch.Tensor, words: torch.Tensor,
                     attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """Swin stages with PWAM + gate; returns the 4 normalized residuals (B, C_i, S/4/2^i, …)."""
        swin = self.backbone
        x, h, w = swin.embed(images)
        outs = []
        for i, stage in enumerate(swin.layers):
            x = stage.forward_blocks(x, h, w)
            residual = stage.fusion(x, words, attention_mask)
            x = stage.res_gate.gated_sum(x, residual)
            outs.append(swin.stage_output(i, residual, h, w))
            x, h, w = stage.downsample_tokens(x, h, w)
        return outs

    def forward_features(self, images: torch.Tensor, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Intermediate tensors: ``words`` (B, C_l, L), ``s1..s4`` decoder inputs (NCHW), and
        ``logits_lowres`` (B, 2, S/4, S/4) before the in-model upsampling."""
        self._check_images(images)
        words = self.encode_text(input_ids, attention_mask)
        s1, s2, s3, s4 = self.encode_image(images, words, attention_mask)
        # -- 3. segmentation decoder ---------------------------------------------------------
        low = self.classifier(s4, s3, s2, s1)
        return {"words": words, "s1": s1, "s2": s2, "s3": s3, "s4": s4, "logits_lowres": low}

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalized images, (B, L) ids, (B, L) mask -> (B, 2, S, S) raw logits."""
        low = self.forward_features(images, input_ids, attention_mask)["logits_lowres"]
        # -- 4. in-model upsampling to the input size (official) ---------------------------------
        return F.interpolate(low, size=images.shape[-2:], mode="bilinear", align_corners=True)

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or not torch.is_floating_point(images):
            raise RefbenchError(f"images must be float (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")

    # -- training ------------------------------------------------------------------------------
    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Official LAVT objective: class-weighted cross-entropy (0.9 bg, 1.1 fg) of the 2-channel
        logits at input size against ``batch["mask"]`` (B, S, S) in {0, 1}."""
        for key in ("image", "input_ids", "attention_mask", "mask"):
            if key not in batch:
                raise RefbenchError(f"training batch lacks {key!r} (needs image, input_ids, attention_mask, mask)")
        logits = self(batch["image"], batch["input_ids"], batch["attention_mask"])
        target = batch["mask"]
        if target.shape != (logits.shape[0], *logits.shape[-2:]):
            raise RefbenchError(f"batch['mask'] must be (B, H, W) = {(logits.shape[0], *logits.shape[-2:])}, "
                                f"got {tuple(target.shape)}")
        weight = torch.tensor(self.config.ce_class_weights, dtype=torch.float32, device=logits.device)
        ce = F.cross_entropy(logits.float(), target.long(), weight=weight)
        return {"ce": ce, "total": ce}

    # -- weights -------------------------------------------------------------------------------
    def load_checkpoint(self, path: "str | dict", strict: bool = True) -> list[str]:
        """Load an official LAVT checkpoint (``{'model', 'bert_model'}``, lavt_one's single
        ``model``, ``module.`` prefixes) or a refbench one; strict by default.  Returns notes."""
        return load_model_checkpoint(self, path, CHECKPOINT_LAYOUT, strict=strict)


def build(variant: str = "paper", bert_path: str | None = None, swin_path: str | None = None,
          **overrides) -> LAVT:
    """Build LAVT (random init unless ``bert_path`` / ``swin_path`` name local pretrained files).

    ``overrides`` replace fields of the variant's :class:`LAVTConfig` (e.g. ``input_size=416``).
    """
    config = variant_config(CONFIGS, variant, "LAVT", overrides)
    return LAVT(config, bert_path=bert_path, swin_path=swin_path)
