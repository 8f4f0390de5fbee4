"""BERT text encoder: official keys, whole == staged, HF equivalence, local init, input checks."""
from __future__ import annotations

import pytest
import torch

from baselines.common.bert import BERT_BASE, BertEncoderConfig, BertTextEncoder
from refbench.core.errors import RefbenchError

TINY = BertEncoderConfig(hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64, vocab_size=500)


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    return BertTextEncoder(TINY).eval()


def _tokens(b=3, length=12, vocab=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b, length), generator=g)
    mask = torch.ones(b, length, dtype=torch.int64)
    mask[0, 5:] = 0
    mask[1, 9:] = 0
    return ids * mask, mask


def test_keys_have_no_pooler_and_no_position_ids(bert):
    keys = list(bert.state_dict())
    assert keys[0] == "embeddings.word_embeddings.weight"
    assert "encoder.layer.3.output.LayerNorm.bias" in keys
    assert not any(k.startswith("pooler") or k.endswith("position_ids") or k.endswith("token_type_ids") for k in keys)


def test_whole_equals_staged(bert):
    ids, mask = _tokens()
    with torch.no_grad():
        whole = bert(ids, mask)
        h = bert.embed(ids)
        ext = bert.extended_attention_mask(mask, h.dtype)
        for start, end in ((0, 1), (1, 3), (3, 4)):
            h = bert.run_layers(h, ext, start, end)
    assert whole.shape == (3, 12, 32)
    assert torch.equal(whole, h)
    with pytest.raises(ValueError):
        bert.run_layers(h, ext, 2, 5)


def test_extended_mask_values():
    ext = BertTextEncoder.extended_attention_mask(torch.tensor([[1, 1, 0]]))
    assert ext.shape == (1, 1, 1, 3)
    assert ext.flatten().tolist() == [0.0, 0.0, -10000.0]


def test_matches_transformers_bert_model(bert):
    from transformers import BertModel

    hf = BertModel(TINY.to_hf(), add_pooling_layer=False).eval()
    hf.load_state_dict(bert.state_dict(), strict=True)
    ids, mask = _tokens()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = bert(ids, mask)
    real = mask.bool()
    torch.testing.assert_close(ours[real], ref[real], atol=1e-5, rtol=1e-5)


def test_padded_tokens_do_not_change_real_tokens(bert):
    ids, mask = _tokens()
    other = ids.clone()
    other[0, 5:] = 77  # different content in sample 0's padded positions
    with torch.no_grad():
        a, b = bert(ids, mask), bert(other, mask)
    torch.testing.assert_close(a[0, :5], b[0, :5], atol=1e-5, rtol=0)
    assert torch.equal(a[1:], b[1:])


def test_paper_config_is_bert_base_without_pooler():
    assert BERT_BASE.to_hf().hidden_act == "gelu" and BERT_BASE.layer_norm_eps == 1e-12
    enc = BertTextEncoder(BERT_BASE)
    assert sum(p.numel() for p in enc.parameters()) == 108_891_648
    assert len(enc.state_dict()) == 197


def test_init_from_local_hf_directory(tmp_path, bert):
    from transformers import BertModel

    hf = BertModel(TINY.to_hf(), add_pooling_layer=True)
    hf.save_pretrained(tmp_path / "bert")
    loaded = BertTextEncoder(TINY, path=str(tmp_path / "bert"))
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, hf.state_dict()[key]), key
    with pytest.raises(RefbenchError, match="expects"):
        BertTextEncoder(BertEncoderConfig(hidden_size=64, num_layers=4, num_heads=2, intermediate_size=64,
                                          vocab_size=500), path=str(tmp_path / "bert"))
    with pytest.raises(RefbenchError, match="not a Hugging Face model directory"):
        BertTextEncoder(TINY, path=str(tmp_path / "nowhere"))


def test_bad_inputs_raise_one_line_errors(bert):
    ids, mask = _tokens()
    with pytest.raises(RefbenchError, match=r"token ids must lie in \[0, 500\)"):
        bert(ids + 1000, mask)
    with pytest.raises(RefbenchError, match="must match input_ids"):
        bert(ids, mask[:, :5])
    with pytest.raises(RefbenchError, match="int64"):
        bert(ids.float(), mask)
