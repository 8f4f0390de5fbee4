"""Vendored data files shipped as package data.

``bpe_simple_vocab_16e6.txt.gz``  OpenAI CLIP's byte-level BPE merges (49,408-token vocabulary),
                                  MIT-licensed, see ``LICENSE-clip-bpe.txt`` next to it; read by
                                  :mod:`baselines.common.clip_tokenizer`.
"""
