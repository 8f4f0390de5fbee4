"""CLIP encoders (Radford et al., ICML 2021) with OpenAI's state-dict key names.

Image tower: the ``ModifiedResNet`` (3-conv stem + average pool, anti-aliased bottlenecks with an
average pool in front of every strided conv, attention pooling instead of a global average).
Text tower: a causal Transformer over BPE tokens, the sentence feature taken at <|endoftext|>.

Key names and shapes are those of OpenAI's ``RN101.pt`` (and open_clip's ``RN101/openai``), so
a user's CLIP weights load strictly (:func:`load_clip_state_dict`)::

    visual.conv{1,2,3}, visual.bn{1,2,3}                              3-conv stem
    visual.layer{1..4}.{j}.{conv1,bn1,conv2,bn2,conv3,bn3}             bottlenecks (4x expansion)
    visual.layer{1..4}.0.downsample.{0: conv 1x1, 1: BN}               (index -1 = the AvgPool, no keys)
    visual.attnpool.{positional_embedding, q_proj, k_proj, v_proj, c_proj}
    token_embedding, positional_embedding                              (vocab, width), (context, width)
    transformer.resblocks.{i}.{ln_1, attn.{in_proj_weight, in_proj_bias, out_proj}, ln_2,
                               mlp.{c_fc, c_proj}}
    ln_final, text_projection, logit_scale

Dense features for segmentation (CRIS, JMCELN): :meth:`ModifiedResNet.forward_features` returns
the four stage maps (strides 4, 8, 16, 32) and :meth:`AttentionPool2d.forward_dense` runs the
attention pool over every position (all H*W + 1 tokens are queries, the positional embedding
resized bicubically from the 7x7 grid of 224-pixel training), giving an (output_dim, H/32, W/32)
map in CLIP's joint embedding space, as CRIS does.

The text tower is usable on its own (MERES' CLIP variant, JMCELN)::

    text = CLIPTextTransformer(RN101.text)
    out = text(input_ids, attention_mask)   # out.tokens (B, L, width), out.sentence (B, embed_dim)
"""
from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from refbench.core.errors import RefbenchError


# ---------------------------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CLIPVisionConfig:
    """ModifiedResNet sizes.

    Attributes:
        layers: bottlenecks per stage (RN101: 3, 4, 23, 3).
        width: stem output channels = first stage's bottleneck width (64).
        output_dim: attention-pool output = CLIP's joint embedding size (RN101: 512).
        heads: attention-pool heads; None = width * 32 // 64 as OpenAI builds it (RN101: 32).
        image_size: training resolution; the positional embedding is (image_size/32)² + 1 long.
    """

    layers: tuple[int, int, int, int] = (3, 4, 23, 3)
    width: int = 64
    output_dim: int = 512
    heads: int | None = None
    image_size: int = 224

    @property
    def embed_dim(self) -> int:
        """Channels of layer4 (= width * 32) on which the attention pool runs."""
        return self.width * 32

    @property
    def num_heads(self) -> int:
        return self.heads if self.heads is not None else self.width * 32 // 64

    @property
    def stage_dims(self) -> tuple[int, int, int, int]:
        """Channels of layer1..layer4 outputs (RN101: 256, 512, 1024, 2048)."""
        return tuple(self.width * 4 * 2 ** i for i in range(4))  # type: ignore[return-value]


@dataclass(frozen=True)
class CLIPTextConfig:
    """Text Transformer sizes (RN101: context 77, vocab 49,408, width 512, 8 heads, 12 layers,
    projection to the 512-d joint space)."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    output_dim: int = 512


@dataclass(frozen=True)
class CLIPConfig:
    """Both towers; ``name`` is the OpenAI model name (``RN101``)."""

    name: str
    vision: CLIPVisionConfig = field(default_factory=CLIPVisionConfig)
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)

    @property
    def embed_dim(self) -> int:
        return self.vision.output_dim


RN50 = CLIPConfig("RN50", CLIPVisionConfig(layers=(3, 4, 6, 3), output_dim=1024), CLIPTextConfig(output_dim=1024))
RN101 = CLIPConfig("RN101", CLIPVisionConfig(layers=(3, 4, 23, 3), output_dim=512), CLIPTextConfig(output_dim=512))
KNOWN_CONFIGS = {c.name: c for c in (RN50, RN101)}


# ---------------------------------------------------------------------------------------------
# shared layers
# ---------------------------------------------------------------------------------------------
class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (OpenAI's subclass; fp16/bf16 safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), CLIP's activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MultiheadAttention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout (``in_proj_weight``
    (3D, D) stacking q/k/v, ``in_proj_bias``, ``out_proj``), run batch-first through
    ``F.scaled_dot_product_attention`` (so FLOP counters and autocast see one SDPA call).

    forward(query (B, Nq, D), key (B, Nk, D), value (B, Nk, D), attn_mask=None, is_causal=False)
    -> (B, Nq, D).  ``attn_mask``: bool (True = attend) or additive float, broadcastable to
    (B, heads, Nq, Nk).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.dim, self.num_heads = dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's init
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        if query is key and key is value:  # self-attention: one packed projection
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v),
                                             attn_mask=attn_mask, is_causal=is_causal)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.dim))


# ---------------------------------------------------------------------------------------------
# image tower: ModifiedResNet
# ---------------------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """CLIP's anti-aliased bottleneck: 1x1 -> 3x3 -> [AvgPool(stride)] -> 1x1 (x4), every conv
    stride 1; the projected shortcut is AvgPool(stride) -> 1x1 conv -> BN."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                ("1", nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """QKV attention over the layer4 map with the map's mean as an extra (first) token.

    ``forward``: OpenAI's global pooling, the mean token's output (B, output_dim).
    ``forward_dense``: every token is a query (CRIS); returns the spatial tokens' outputs as a
    map (B, output_dim, H, W).  The positional embedding of the ``spacial_dim``² grid is resized
    bicubically (align_corners=False) when the map has another size.
    """

    def __init__(self, spacial_dim: int, embed_dim: int, num_heads: int, output_dim: int | None = None) -> None:
        super().__init__()
        self.spacial_dim, self.num_heads = spacial_dim, num_heads
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)

    def positional_embedding_for(self, height: int, width: int) -> torch.Tensor:
        """(1 + height*width, C): the mean token's row, then the grid resized to height x width."""
        pe = self.positional_embedding
        if (height, width) == (self.spacial_dim, self.spacial_dim):
            return pe
        s, c = self.spacial_dim, pe.shape[1]
        grid = pe[1:].reshape(1, s, s, c).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return torch.cat([pe[:1], grid.to(pe.dtype).flatten(2)[0].t()], dim=0)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)  # (B, 1 + HW, C)
        return x + self.positional_embedding_for(h, w).to(x.dtype)

    def _attend(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, nq, c = query.shape
        d = c // self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.num_heads, d).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q_proj(query)), heads(self.k_proj(tokens)),
                                             heads(self.v_proj(tokens)))
        return self.c_proj(out.transpose(1, 2).reshape(b, nq, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, output_dim): the mean token attends over all tokens."""
        tokens = self._tokens(x)
        return self._attend(tokens[:, :1], tokens)[:, 0]

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, output_dim, H, W): every spatial token attends over all tokens."""
        b, _, h, w = x.shape
        tokens = self._tokens(x)
        out = self._attend(tokens, tokens)[:, 1:]
        return out.transpose(1, 2).reshape(b, -1, h, w)


class ModifiedResNet(nn.Module):
    """CLIP's image tower.  Keys are OpenAI's under ``visual.`` (see module doc).

    ``forward_features(images)`` -> [layer1, layer2, layer3, layer4] maps with strides 4, 8, 16,
    32 and ``config.stage_dims`` channels; ``forward(images)`` -> (B, output_dim) image embedding.
    """

    def __init__(self, config: CLIPVisionConfig = RN101.vision) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.conv1 = nn.Conv2d(3, w // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(w // 2, w // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(w // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(w // 2, w, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(w)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = w
        for i, blocks in enumerate(config.layers):
            planes, stride = w * 2 ** i, 1 if i == 0 else 2
            layer = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            layer += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.attnpool = AttentionPool2d(config.image_size // 32, config.embed_dim, config.num_heads, config.output_dim)
        self.init_parameters()

    def init_parameters(self) -> None:
        """OpenAI's init: attention-pool projections N(0, C^-1/2); every block's last BN gamma 0."""
        std = self.attnpool.c_proj.in_features ** -0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for name, p in self.named_parameters():
            if name.startswith("layer") and name.endswith("bn3.weight"):
                nn.init.zeros_(p)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """Three 3x3 convs (the first stride 2) with BN+ReLU, then 2x2 average pool: stride 4."""
        x = self.relu1(self.bn1(self.conv1(images)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> four maps (B, C_i, H/s, W/s), s = 4, 8, 16, 32 (floor division)."""
        x = self.stem(images)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, output_dim): CLIP's ``encode_image``."""
        return self.attnpool(self.forward_features(images)[-1])


# ---------------------------------------------------------------------------------------------
# text tower
# ---------------------------------------------------------------------------------------------
class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)) (causal), then x + mlp(ln_2(x)) with QuickGELU, 4x width."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, width) -> (B, L, width); token t attends to tokens 0..t."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, is_causal=True)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """``resblocks``: the stack of :class:`ResidualAttentionBlock` (key ``transformer.resblocks.{i}``)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class CLIPTextOutput(NamedTuple):
    """tokens: (B, L, width) after ``ln_final`` (CRIS' word features; padded positions hold
    values but carry no meaning); sentence: (B, output_dim) = tokens[<|endoftext|>] @ text_projection."""

    tokens: torch.Tensor
    sentence: torch.Tensor


class CLIPTextTransformer(nn.Module):
    """CLIP's text tower; its keys sit at the root of OpenAI's CLIP state dict.

    ``forward(input_ids (B, L), attention_mask (B, L))`` -> :class:`CLIPTextOutput`.  ``L`` may
    be shorter than the context (positions 0..L-1 are used).  The attention is causal, so a
    real token never sees padding; the sentence feature is read at the last real token, which
    is <|endoftext|> for :class:`~refbench.core.clip_tokenizer.CLIPTokenizer` ids (the same
    position as OpenAI's ``input_ids.argmax(-1)``).
    """

    def __init__(self, config: CLIPTextConfig = RN101.text) -> None:
        super().__init__()
        self.text_config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.width))
        self.transformer = Transformer(config.width, config.layers, config.heads)
        self.ln_final = LayerNorm(config.width)
        self.text_projection = nn.Parameter(torch.empty(config.width, config.output_dim))
        self.init_text_parameters()

    @property
    def width(self) -> int:
        return self.text_config.width

    @property
    def output_dim(self) -> int:
        return self.text_config.output_dim

    def init_text_parameters(self) -> None:
        """OpenAI's init: embeddings N(0, .02) / N(0, .01); attention, MLP and projection weights
        N(0, std) with std from width and depth (``CLIP.initialize_parameters``)."""
        c = self.text_config
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (c.width ** -0.5) * ((2 * c.layers) ** -0.5)
        attn_std, fc_std = c.width ** -0.5, (2 * c.width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=c.width ** -0.5)

    def check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Raise RefbenchError for ids/mask the tower cannot take (shape, dtype, vocabulary, length)."""
        c = self.text_config
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise RefbenchError(f"input_ids must be int64 (B, L), got {input_ids.dtype} {tuple(input_ids.shape)}")
        if attention_mask.shape != input_ids.shape:
            raise RefbenchError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids "
                                f"{tuple(input_ids.shape)}")
        if input_ids.shape[1] > c.context_length:
            raise RefbenchError(f"{input_ids.shape[1]} tokens exceed CLIP's context of {c.context_length}")
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= c.vocab_size:
            raise RefbenchError(f"token ids must lie in [0, {c.vocab_size}), got [{lo}, {hi}]; tokenize with the "
                                f"CLIP BPE tokenizer (tokenizer kind 'clip')")
        if bool((attention_mask.sum(1) == 0).any()):
            raise RefbenchError("a sentence has no real token (attention_mask all 0); CLIP ids start with "
                                "<|startoftext|> and end with <|endoftext|>")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> CLIPTextOutput:
        """(B, L) ids and 0/1 mask -> per-token features (B, L, width), sentence feature (B, output_dim)."""
        self.check_inputs(input_ids, attention_mask)
        length = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:length]
        x = self.ln_final(self.transformer(x))
        eot = attention_mask.sum(1).long() - 1
        sentence = x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection.to(x.dtype)
        return CLIPTextOutput(tokens=x, sentence=sentence)


class CLIP(CLIPTextTransformer):
    """Both towers with OpenAI's keys: the text tower at the root (as in OpenAI's ``CLIP``), the
    image tower under ``visual``, and ``logit_scale``.  ``build_clip_rn101()`` builds RN101."""

    def __init__(self, config: CLIPConfig = RN101) -> None:
        super().__init__(config.text)
        self.config = config
        self.visual = ModifiedResNet(config.vision)
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized with CLIP mean/std -> (B, embed_dim)."""
        return self.visual(images)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, embed_dim)."""
        return super().forward(input_ids, attention_mask).sentence

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor,  # type: ignore[override]
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-text logits (B_img, B_txt) and their transpose, as OpenAI's ``CLIP.forward``."""
        img = F.normalize(self.encode_image(images), dim=-1)
        txt = F.normalize(self.encode_text(input_ids, attention_mask), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()


def build_clip_rn101() -> CLIP:
    """CLIP RN101 (random init): vision width 64, layers (3, 4, 23, 3), embed 512; text width 512,
    12 layers, 8 heads, context 77, vocabulary 49,408."""
    return CLIP(RN101)


# ---------------------------------------------------------------------------------------------
# reading OpenAI weights
# ---------------------------------------------------------------------------------------------
# Entries of OpenAI's TorchScript archives that are sizes, not weights (dropped, as OpenAI's
# clip.build_model drops them).
METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")
TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def infer_clip_config(state: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """The CLIP sizes a state dict holds (as OpenAI's ``build_model`` reads them).

    Raises RefbenchError for a ViT CLIP or a dict that is not CLIP.
    """
    if "visual.proj" in state or "visual.class_embedding" in state:
        raise RefbenchError("these are weights of a ViT CLIP; refbench's CLIP image tower is the ModifiedResNet "
                            "(use OpenAI's RN101 weights)")
    needed = ("visual.layer1.0.conv1.weight", "visual.attnpool.positional_embedding", "ln_final.weight",
              "positional_embedding", "token_embedding.weight", "text_projection")
    missing = [k for k in needed if k not in state]
    if missing:
        raise RefbenchError(f"not a CLIP ModifiedResNet state dict (no {', '.join(missing[:3])}); expected OpenAI's "
                            f"key layout (visual.*, transformer.resblocks.*, token_embedding, ...)")
    layers = tuple(len({k.split(".")[2] for k in state if k.startswith(f"visual.layer{i}.")}) for i in (1, 2, 3, 4))
    width = state["visual.layer1.0.conv1.weight"].shape[0]
    grid = round((state["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]
    vision = CLIPVisionConfig(layers=layers, width=width, output_dim=state["visual.attnpool.c_proj.weight"].shape[0]
                              if "visual.attnpool.c_proj.weight" in state else 0, image_size=grid * 32)
    text = CLIPTextConfig(context_length=state["positional_embedding"].shape[0],
                          vocab_size=state["token_embedding.weight"].shape[0], width=text_width,
                          heads=text_width // 64,  # OpenAI's rule; heads leave no trace in the weights
                          layers=len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}),
                          output_dim=state["text_projection"].shape[1])
    name = next((n for n, c in KNOWN_CONFIGS.items() if c.vision == vision and c.text == text), "custom")
    return CLIPConfig(name, vision, text)


def _describe(c: CLIPConfig) -> str:
    v, t = c.vision, c.text
    return (f"{c.name} (vision layers {v.layers}, width {v.width}, embed {v.output_dim}; text width {t.width}, "
            f"{t.layers} layers, context {t.context_length})")


# -- TorchScript archives (OpenAI's RN101.pt) ------------------------------------------------
class _ScriptObject:
    """Inert stand-in for a TorchScript module object in ``data.pkl``: keeps its class name and
    attribute dict; nothing is executed."""

    qualified_name = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _script_classes(archive: zipfile.ZipFile, root: str) -> dict[str, tuple[list[str], list[str]]]:
    """``{"__torch__.pkg.Class": (parameter names, buffer names)}`` from the archive's code/ files
    (read as text: the ``__parameters__`` / ``__buffers__`` lists of each class)."""
    table: dict[str, tuple[list[str], list[str]]] = {}
    pattern = re.compile(r"^class (\w+)\(Module\):\n  __parameters__ = \[([^\]]*)\]\n  __buffers__ = \[([^\]]*)\]",
                         re.M)
    for name in archive.namelist():
        if not (name.startswith(f"{root}/code/") and name.endswith(".py")):
            continue
        module = name[len(f"{root}/code/"):-3].replace("/", ".")
        text = archive.read(name).decode("utf-8", errors="replace")
        for cls, params, buffers in pattern.findall(text):
            names = [[s.strip().strip("\"'") for s in group.split(",") if s.strip()] for group in (params, buffers)]
            table[f"{module}.{cls}"] = (names[0], names[1])
    return table


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *args: Any) -> torch.Tensor:
    try:
        return torch.as_strided(storage, tuple(size), tuple(stride), int(offset)).clone()
    except RuntimeError as e:
        raise pickle.UnpicklingError(f"tensor view outside its storage ({str(e).splitlines()[0][:80]})") from None


def _identity(x: Any, *args: Any) -> Any:
    return x


def read_torchscript_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Parameters and buffers of a TorchScript archive (e.g. OpenAI's ``RN101.pt``), read with
    weights-only semantics: ``data.pkl`` is unpickled with a restricted unpickler that builds
    tensors from the archive's storages and turns module objects into inert records (any other
    global is refused); which attributes are parameters/buffers is read from the
    ``__parameters__`` / ``__buffers__`` lists in ``code/``.  No TorchScript code is loaded or run.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise RefbenchError(f"{path}: cannot open the TorchScript archive ({e})") from None
    with archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise RefbenchError(f"{path}: not a TorchScript archive (no unique <name>/data.pkl)")
        root = pkls[0].split("/")[0]
        classes = _script_classes(archive, root)
        storages: dict[str, torch.Tensor] = {}
        names = set(archive.namelist())

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module == "__torch__" or module.startswith("__torch__."):
                    return type(name, (_ScriptObject,), {"qualified_name": f"{module}.{name}"})
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if (module, name) == ("collections", "OrderedDict"):
                    return OrderedDict
                if module == "torch" and name in _STORAGE_DTYPES:
                    return _STORAGE_DTYPES[name]
                if module == "torch.jit._pickle" and (name.startswith("build_") or name == "restore_type_tag"):
                    return _identity
                raise pickle.UnpicklingError(f"refusing global {module}.{name}")

            def persistent_load(self, pid: Any) -> torch.Tensor:
                if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                        and isinstance(pid[1], torch.dtype)):
                    raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:60]}")
                dtype, key = pid[1], str(pid[2])
                if key not in storages:
                    entry = f"{root}/data/{key}"
                    if entry not in names:
                        raise pickle.UnpicklingError(f"storage {key} missing from the archive")
                    raw = bytearray(archive.read(entry))
                    storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
                return storages[key]

        try:
            obj = Unpickler(archive.open(pkls[0])).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise RefbenchError(f"{path}: TorchScript archive refused or unreadable "
                                f"({type(e).__name__}: {str(e)[:100]})") from None

    state: dict[str, torch.Tensor] = OrderedDict()

    def walk(node: Any, prefix: str) -> None:
        attrs = getattr(node, "state", None)
        if not isinstance(attrs, dict):
            raise RefbenchError(f"{path}: module {prefix or '<root>'} has no attribute table; not a TorchScript module")
        if node.qualified_name not in classes:
            raise RefbenchError(f"{path}: class {node.qualified_name} has no definition in code/; archive incomplete")
        params, buffers = classes[node.qualified_name]
        for name in params + buffers:
            if isinstance(attrs.get(name), torch.Tensor):
                state[prefix + name] = attrs[name]
        for name, value in attrs.items():
            if isinstance(value, _ScriptObject):
                walk(value, f"{prefix}{name}.")

    if not isinstance(obj, _ScriptObject):
        raise RefbenchError(f"{path}: data.pkl does not hold a TorchScript module")
    walk(obj, "")
    return state


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.count("/") >= 2 and n.split("/")[1] == "code" for n in z.namelist())


def read_clip_state_dict(source: "str | os.PathLike | Mapping[str, Any]") -> tuple[dict[str, torch.Tensor], list[str]]:
    """OpenAI-layout CLIP weights from a TorchScript archive (``RN101.pt``), a ``torch.save``d state
    dict (bare, under ``state_dict``/``model``, ``module.``-prefixed) or an in-memory dict.
    Size entries (``input_resolution`` …) are dropped.  Returns (state, notes)."""
    from refbench.core.checkpoint import CheckpointLayout, extract_state_dict, read_checkpoint

    notes: list[str] = []
    if isinstance(source, Mapping):
        name, obj = "<in-memory CLIP weights>", source
    else:
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise RefbenchError(f"CLIP weights {name!r} do not exist (pass OpenAI's RN101.pt or a CLIP RN101 state dict)")
        if _is_torchscript(name):
            obj = read_torchscript_state_dict(name)
            notes.append("TorchScript archive read weights-only")
        else:
            obj = read_checkpoint(name)
    state, found = extract_state_dict(obj, CheckpointLayout(dicts={"model": ""}, ignore_suffixes=()), "clip", "", name)
    notes += [n for n in found if not n.startswith("bare")]
    for key in METADATA_KEYS:
        state.pop(key, None)
    return state, notes


def load_clip_state_dict(source: "str | os.PathLike | Mapping[str, Any]", *, visual: ModifiedResNet | None = None,
                         text: CLIPTextTransformer | None = None, strict: bool = True) -> list[str]:
    """Load OpenAI CLIP weights into a whole :class:`CLIP` (pass it as ``text``) or into separate
    towers (``visual`` gets ``visual.*``, ``text`` the root text keys).  A tower left out has its
    keys skipped (noted); ``logit_scale`` is used only by a whole CLIP.

    Strict: the checkpoint's CLIP sizes must equal the towers' (one error naming both, e.g. RN50
    vs RN101), and every key must match.  Returns notes.
    """
    from refbench.core.checkpoint import load_state_dict_checked

    if visual is None and text is None:
        raise ValueError("pass visual= and/or text= modules to load CLIP weights into")
    state, notes = read_clip_state_dict(source)
    src = source if isinstance(source, (str, os.PathLike)) else "<in-memory CLIP weights>"
    src = os.fspath(src)
    got = infer_clip_config(state)
    whole = isinstance(text, CLIP) and visual is None
    if whole:
        visual = text.visual  # type: ignore[union-attr]
    if visual is not None and got.vision != visual.config and strict:
        raise RefbenchError(f"CLIP weights {src!r} hold {_describe(got)}, but the image tower is "
                            f"{_describe(CLIPConfig('this model', visual.config, got.text))}; use matching weights")
    if text is not None and got.text != dataclasses.replace(text.text_config, heads=got.text.heads) and strict:
        raise RefbenchError(f"CLIP weights {src!r} hold {_describe(got)}, but the text tower is "
                            f"{_describe(CLIPConfig('this model', got.vision, text.text_config))}; use matching weights")
    if whole:
        notes += load_state_dict_checked(text, state, src, f"CLIP {got.name}", strict=strict)  # type: ignore[arg-type]
        return notes + [f"CLIP {got.name} weights loaded"]
    vis = OrderedDict((k[len("visual."):], v) for k, v in state.items() if k.startswith("visual."))
    txt = OrderedDict((k, v) for k, v in state.items() if k.startswith(TEXT_PREFIXES))
    other = sorted(set(state) - {"visual." + k for k in vis} - set(txt) - {"logit_scale"})
    if other and strict:
        raise RefbenchError(f"CLIP weights {src!r} have keys outside the CLIP layout: {', '.join(other[:4])}")
    if visual is not None:
        notes += load_state_dict_checked(visual, vis, src, f"the CLIP {got.name} image tower", strict=strict)
        notes.append(f"image tower initialised from CLIP {got.name}")
    if text is not None:
        notes += load_state_dict_checked(text, txt, src, f"the CLIP {got.name} text tower", strict=strict)
        notes.append(f"text tower initialised from CLIP {got.name}")
    return notes
