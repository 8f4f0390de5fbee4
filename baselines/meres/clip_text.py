"""MERES' language encoder in the generalization setting (Appendix E): CLIP's text transformer.

"Following the previous work [CGFormer], we adopted the text encoder of CLIP as the language
encoder" — the CLIP model is not named; refbench uses RN101's text tower (width 512, 12 layers),
the one CRIS and JMCELN use, from :mod:`baselines.common.clip` (shared with JMCELN, OpenAI key
names under ``text_encoder.``).

§3.1 needs Q_l = [w_cls, w_1, ..., w_{T-1}] with a *global* first token.  CLIP's sentence-level
token is <|endoftext|> (its causal attention has seen the whole sentence), while position 0,
<|startoftext|>, has seen only itself and is the same vector for every sentence.  So the token at
position 0 is replaced by the <|endoftext|> feature (after ``ln_final``, in the width of the other
tokens): Q_l = [w_eot, w_1, ..., w_n, w_eot, pad ...].  ``text_projection`` (to CLIP's joint
image-text space) is loaded with the weights but not used, so it is frozen.
"""
from __future__ import annotations

import torch

from baselines.common.clip import KNOWN_CONFIGS, CLIPTextConfig, CLIPTextTransformer, load_clip_state_dict
from baselines.meres.config import MERESConfig
from refbench.core.errors import RefbenchError, suggest


class CLIPLinguisticEncoder(CLIPTextTransformer):
    """CLIP text tower returning Q_l (B, L, width) with the sentence-level token at index 0."""

    @property
    def hidden_size(self) -> int:
        """Width D of the linguistic tokens (512 for RN101)."""
        return self.width

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(B, L) CLIP BPE ids and 0/1 mask (1 on <|startoftext|> ... <|endoftext|>) -> (B, L, width)."""
        tokens = super().forward(input_ids, attention_mask).tokens
        eot = attention_mask.sum(1).long() - 1                                   # last real token
        sentence = tokens[torch.arange(tokens.shape[0], device=tokens.device), eot]
        return torch.cat([sentence[:, None], tokens[:, 1:]], dim=1)


def build_clip_text_encoder(config: MERESConfig, clip_path: str | None) -> tuple[CLIPLinguisticEncoder, list[str]]:
    """The CLIP text tower of ``config.clip_text`` (a model name or a :class:`CLIPTextConfig`;
    random init, or OpenAI weights from ``clip_path``: ``RN101.pt`` or a CLIP state dict);
    returns (encoder, notes)."""
    if isinstance(config.clip_text, CLIPTextConfig):
        text_config = config.clip_text
    elif config.clip_text in KNOWN_CONFIGS:
        text_config = KNOWN_CONFIGS[config.clip_text].text
    else:
        raise suggest(str(config.clip_text), KNOWN_CONFIGS, "CLIP model")
    if config.token_length > text_config.context_length:
        raise RefbenchError(f"token_length {config.token_length} exceeds CLIP's context of "
                            f"{text_config.context_length}")
    encoder = CLIPLinguisticEncoder(text_config)
    notes: list[str] = []
    if clip_path is not None:
        notes += load_clip_state_dict(clip_path, text=encoder)
    encoder.text_projection.requires_grad_(False)
    return encoder, notes
