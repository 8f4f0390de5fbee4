"""BERT text encoder in plain PyTorch, usable whole or in stages.

The LAVT family runs BERT-base (``bert-base-uncased``) without its pooler and feeds the last
hidden state on (spec §1).  The modules here compute what Hugging Face ``BertModel`` computes
(eager attention, exact-erf GELU, post-norm layers) with the same module tree, so state-dict
keys are the official ``bert_model`` ones::

    embeddings.{word_embeddings, position_embeddings, token_type_embeddings, LayerNorm}
    encoder.layer.{0..N-1}.{attention.{self.{query,key,value}, output.{dense, LayerNorm}},
                            intermediate.dense, output.{dense, LayerNorm}}

(no ``pooler.*`` and no ``embeddings.position_ids`` buffer; the latter is ignored in incoming
checkpoints).  ``transformers`` is imported only to read a local Hugging Face directory
(``path``): building it for every model cost ~130 MB of resident memory for code that inference
never runs.  MagNet interleaves groups of layers with vision-to-language fusion, so the encoder
exposes its stages::

    h = bert.embed(input_ids)                          # (B, L, H)
    ext = bert.extended_attention_mask(attention_mask, h.dtype)   # (B, 1, 1, L): 0 / -10000
    h = bert.run_layers(h, ext, 0, 3)                  # layers [0, 3)
    ...

``forward(input_ids, attention_mask)`` is ``run_layers(embed(ids), ext, 0, N)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from refbench.core.errors import RefbenchError

# Additive logit of padded tokens in BERT's extended attention mask (transformers 3.x, which
# the official LAVT/MagNet/DMMI code vendors).
BERT_MASK_VALUE = -10000.0
# std of the normal random init of every Linear / Embedding (``BertConfig.initializer_range``)
INITIALIZER_RANGE = 0.02


@dataclass(frozen=True)
class BertEncoderConfig:
    """BERT size.  Defaults = ``bert-base-uncased`` (``transformers.BertConfig()``): 30522-token
    vocabulary, 12 layers × 12 heads, hidden 768, FFN 3072, exact-erf GELU, LayerNorm eps 1e-12."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1

    def to_hf(self):
        """The equivalent ``transformers.BertConfig`` (eager attention, exact GELU, pad id 0)."""
        from transformers import BertConfig

        return BertConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings, type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps, hidden_dropout_prob=self.hidden_dropout,
            attention_probs_dropout_prob=self.attention_dropout, hidden_act="gelu", pad_token_id=0,
            attn_implementation="eager")


BERT_BASE = BertEncoderConfig()


# -- the modules (Hugging Face's tree and arithmetic, eager attention) ------------------------------

class BertEmbeddings(nn.Module):
    """Word + segment + position embeddings (added in that order), LayerNorm, dropout."""

    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, input_ids: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) ids (or (B, L, H) ``inputs_embeds``) -> (B, L, H); segment 0 and positions 0..L-1 by default."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        b, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if token_type_ids is None:
            token_type_ids = torch.zeros(b, length, dtype=torch.long, device=device)
        if position_ids is None:
            position_ids = torch.arange(length, device=device)[None]
        x = inputs_embeds + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with an additive (B, 1, 1, L) mask."""

    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_heads:
            raise ValueError(f"hidden size {config.hidden_size} is not a multiple of {config.num_heads} heads")
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, length, _ = hidden.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(hidden)), heads(self.key(hidden)), heads(self.value(hidden))
        scores = torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5
        if mask is not None:
            scores = scores + mask
        probs = self.dropout(F.softmax(scores, dim=-1))
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, length, -1)


class BertSelfOutput(nn.Module):
    """``LayerNorm(dropout(dense(x)) + residual)``."""

    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, mask), hidden)


class BertIntermediate(nn.Module):
    """``gelu(dense(x))`` with the exact (erf) GELU."""

    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class BertOutput(BertSelfOutput):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__(config)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)


class BertLayer(nn.Module):
    """One post-norm encoder layer: self-attention block, then the feed-forward block."""

    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, H) and an additive (B, 1, 1, L) mask -> (B, L, H)."""
        attended = self.attention(hidden, mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_layers))


def _init_bert_weights(module: nn.Module) -> None:
    """BERT's random init: Linear/Embedding ~ N(0, 0.02) (the padding row 0), biases 0, LayerNorm 1/0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=INITIALIZER_RANGE)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _hf_state_dict(config: BertEncoderConfig, path: str) -> dict[str, torch.Tensor]:
    """The weights of a local Hugging Face BERT directory (``transformers`` is imported only here)."""
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise RefbenchError(
            f"bert_path {path!r} is not a Hugging Face model directory (config.json + weights); "
            "point it at a local copy of bert-base-uncased (nothing is downloaded)")
    from transformers import BertModel

    try:
        model = BertModel.from_pretrained(path, add_pooling_layer=False, local_files_only=True,
                                          attn_implementation="eager")
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RefbenchError(f"bert_path {path!r} cannot be loaded as BERT ({first})") from None
    got = (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size)
    want = (config.hidden_size, config.num_layers, config.vocab_size)
    if got != want:
        raise RefbenchError(
            f"bert_path {path!r} holds a BERT with (hidden, layers, vocab) = {got}, but this model expects "
            f"{want}; use bert-base-uncased for the paper variants")
    return model.state_dict()


class BertTextEncoder(nn.Module):
    """BERT without pooler; ``forward`` returns the last hidden state (B, L, H).

    Args:
        config: :class:`BertEncoderConfig` (random init from it when ``path`` is None).
        path: local Hugging Face directory (e.g. ``bert-base-uncased``) to initialise from.
    """

    def __init__(self, config: BertEncoderConfig = BERT_BASE, path: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        _init_bert_weights(self)
        if path is not None:
            hf = _hf_state_dict(config, path)
            own = self.state_dict()
            missing = [k for k in own if k not in hf]
            if missing:
                raise RefbenchError(f"bert_path {path!r} lacks {len(missing)} BERT tensors (e.g. {missing[0]})")
            self.load_state_dict({k: hf[k] for k in own}, strict=True)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def num_layers(self) -> int:
        return len(self.encoder.layer)

    def check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Raise RefbenchError for ids/mask that BERT cannot take (shape, dtype, vocabulary)."""
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise RefbenchError(f"input_ids must be int64 (B, L), got {input_ids.dtype} {tuple(input_ids.shape)}")
        if attention_mask.shape != input_ids.shape:
            raise RefbenchError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids "
                                f"{tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise RefbenchError(f"{input_ids.shape[1]} tokens exceed BERT's {self.config.max_position_embeddings} positions")
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= self.config.vocab_size:
            raise RefbenchError(f"token ids must lie in [0, {self.config.vocab_size}), got [{lo}, {hi}]; "
                                "tokenize with the bert-base-uncased vocabulary")

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token + position + segment embeddings, LayerNorm, dropout: (B, L) -> (B, L, H)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    @staticmethod
    def extended_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, L) 0/1 mask -> (B, 1, 1, L) additive mask: 0 on real tokens, -10000 on padding.

        This is the mask BERT's layers add to their logits (and the one MagNet hands to its
        language-side PWAM).
        """
        return (1.0 - attention_mask[:, None, None, :].to(dtype)) * BERT_MASK_VALUE

    def run_layers(self, hidden: torch.Tensor, extended_mask: torch.Tensor, start: int = 0,
                   end: int | None = None) -> torch.Tensor:
        """Apply encoder layers ``[start, end)`` to (B, L, H) hidden states."""
        end = self.num_layers if end is None else end
        if not 0 <= start <= end <= self.num_layers:
            raise ValueError(f"layer range [{start}, {end}) outside [0, {self.num_layers}]")
        device = hidden.device.type
        if torch.is_autocast_enabled(device):
            # Under autocast the layers run in the weights' dtype (float32) anyway: with 20 tokens a
            # sentence, casting 85 M weights to bfloat16 on every call costs more than the matmuls
            # it speeds up, and the words stay exactly those of a float32 run.
            dtype = self.encoder.layer[0].output.dense.weight.dtype if self.num_layers else hidden.dtype
            with torch.autocast(device_type=device, enabled=False):
                return self.run_layers(hidden.to(dtype), extended_mask.to(dtype), start, end)
        for layer in self.encoder.layer[start:end]:
            hidden = layer(hidden, extended_mask)
        return hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) token ids and 0/1 mask -> last hidden state (B, L, H), padded positions included."""
        self.check_inputs(input_ids, attention_mask)
        hidden = self.embed(input_ids, token_type_ids)
        return self.run_layers(hidden, self.extended_attention_mask(attention_mask, hidden.dtype))
