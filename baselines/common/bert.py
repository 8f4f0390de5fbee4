"""BERT text encoder (Hugging Face ``transformers`` modules), usable whole or in stages.

The LAVT family runs BERT-base (``bert-base-uncased``) without its pooler and feeds the last
hidden state on (spec §1).  State-dict keys are the official ``bert_model`` ones::

    embeddings.{word_embeddings, position_embeddings, token_type_embeddings, LayerNorm}
    encoder.layer.{0..N-1}.{attention.{self.{query,key,value}, output.{dense, LayerNorm}},
                            intermediate.dense, output.{dense, LayerNorm}}

(no ``pooler.*``; ``embeddings.position_ids`` is a non-persistent buffer here and is ignored in
incoming checkpoints).  MagNet interleaves groups of layers with vision-to-language fusion, so
the encoder exposes its stages::

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
from torch import nn

from refbench.core.errors import RefbenchError

# Additive logit of padded tokens in BERT's extended attention mask (transformers 3.x, which
# the official LAVT/MagNet/DMMI code vendors).
BERT_MASK_VALUE = -10000.0


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


def _hf_bert(config: BertEncoderConfig, path: str | None):
    from transformers import BertModel

    if path is None:
        return BertModel(config.to_hf(), add_pooling_layer=False)
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise RefbenchError(
            f"bert_path {path!r} is not a Hugging Face model directory (config.json + weights); "
            "point it at a local copy of bert-base-uncased (nothing is downloaded)")
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
    return model


class BertTextEncoder(nn.Module):
    """BERT without pooler; ``forward`` returns the last hidden state (B, L, H).

    Args:
        config: :class:`BertEncoderConfig` (random init from it when ``path`` is None).
        path: local Hugging Face directory (e.g. ``bert-base-uncased``) to initialise from.
    """

    def __init__(self, config: BertEncoderConfig = BERT_BASE, path: str | None = None) -> None:
        super().__init__()
        hf = _hf_bert(config, path)
        self.config = config
        self.embeddings = hf.embeddings
        self.encoder = hf.encoder

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
        for layer in self.encoder.layer[start:end]:
            out = layer(hidden, extended_mask)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4.x returns a tuple
        return hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) token ids and 0/1 mask -> last hidden state (B, L, H), padded positions included."""
        self.check_inputs(input_ids, attention_mask)
        hidden = self.embed(input_ids, token_type_ids)
        return self.run_layers(hidden, self.extended_attention_mask(attention_mask, hidden.dtype))
