"""PWAM (LAVT form, and the MagNet projection form) and the language gate."""
from __future__ import annotations

import pytest
import torch

from baselines.common.pwam import PWAM, LanguageGate, SpatialImageLanguageAttention, masked_word_attention


def _inputs(b=2, n=30, dim=16, l_dim=24, length=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, dim, generator=g)
    words = torch.randn(b, l_dim, length, generator=g)
    mask = torch.ones(b, length, dtype=torch.int64)
    mask[0, 4:] = 0  # sample 0: 4 real words, 3 padded
    return x, words, mask


def test_official_key_names_and_shapes():
    keys = {k: tuple(v.shape) for k, v in PWAM(128, 768).state_dict().items()}
    assert keys == {
        "vis_project.0.weight": (128, 128, 1), "vis_project.0.bias": (128,),
        "image_lang_att.f_key.0.weight": (128, 768, 1), "image_lang_att.f_key.0.bias": (128,),
        "image_lang_att.f_query.0.weight": (128, 128, 1), "image_lang_att.f_query.0.bias": (128,),
        "image_lang_att.f_value.0.weight": (128, 768, 1), "image_lang_att.f_value.0.bias": (128,),
        "image_lang_att.W.0.weight": (128, 128, 1), "image_lang_att.W.0.bias": (128,),
        "project_mm.0.weight": (128, 128, 1), "project_mm.0.bias": (128,),
    }  # InstanceNorm1d is affine-free: no keys
    gate = LanguageGate(128)
    assert {k: tuple(v.shape) for k, v in gate.state_dict().items()} == {"0.weight": (128, 128), "2.weight": (128, 128)}


def test_magnet_projection_form_keys():
    keys = {k: tuple(v.shape) for k, v in PWAM(64, 768, projection="linear_layernorm").state_dict().items()}
    assert keys["image_lang_att.f_query.0.weight"] == (64, 64)
    assert keys["image_lang_att.f_query.1.weight"] == (64,)
    assert keys["image_lang_att.W.1.bias"] == (64,)
    assert keys["vis_project.0.weight"] == (64, 64, 1)
    with pytest.raises(ValueError, match="unknown PWAM projection"):
        PWAM(8, 8, projection="batchnorm")


def test_attention_matches_explicit_softmax_over_real_words():
    x, words, mask = _inputs()
    att = SpatialImageLanguageAttention(16, 24, 16, 16).eval()
    with torch.no_grad():
        out = att(x, words, mask)
        # reference: per sample, softmax over the real words only, then W (Conv1d + InstanceNorm)
        q = att.f_query(x.transpose(1, 2)).transpose(1, 2)
        k, v = att.f_key(words), att.f_value(words)
        for b in range(2):
            real = mask[b].bool()
            weights = torch.softmax(q[b] @ k[b][:, real] / 16 ** 0.5, dim=-1)  # (N, n_real)
            ref = att.W((weights @ v[b][:, real].T).T[None])[0].T
            torch.testing.assert_close(out[b], ref, atol=1e-5, rtol=1e-5)


def test_instance_norm_normalises_each_channel_over_pixels():
    x, words, mask = _inputs()
    att = SpatialImageLanguageAttention(16, 24, 16, 16).eval()
    with torch.no_grad():
        out = att(x, words, mask)  # W ends with an affine-free InstanceNorm1d over the 30 pixels
        pre = att.W[0](masked_word_attention(
            att.f_query(x.transpose(1, 2)).transpose(1, 2), att.f_key(words), att.f_value(words), mask
        ).transpose(1, 2))  # (B, C, N) before the norm
    var = pre.var(-1, unbiased=False)
    torch.testing.assert_close(out.mean(1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(1, unbiased=False), var / (var + 1e-5), atol=1e-4, rtol=1e-3)


def test_padded_words_do_not_matter():
    x, words, mask = _inputs()
    pwam = PWAM(16, 24).eval()
    other = words.clone()
    other[0, :, 4:] = torch.randn(24, 3) * 100  # change only the padded words of sample 0
    with torch.no_grad():
        torch.testing.assert_close(pwam(x, words, mask), pwam(x, other, mask), atol=1e-6, rtol=0)
        changed = words.clone()
        changed[0, :, 2] += torch.randn(24)  # a real word does matter
        assert not torch.allclose(pwam(x, words, mask), pwam(x, changed, mask))


def test_official_mask_layout_is_accepted():
    x, words, mask = _inputs()
    pwam = PWAM(16, 24).eval()
    with torch.no_grad():
        assert torch.equal(pwam(x, words, mask), pwam(x, words, mask.unsqueeze(-1)))  # (B, L, 1)
    with pytest.raises(ValueError, match="word mask"):
        pwam(x, words, mask[:, :5])


def test_multi_head_uses_full_key_width_scale():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(1, 5, 8, generator=g), torch.randn(1, 8, 3, generator=g), torch.randn(1, 4, 3, generator=g)
    out = masked_word_attention(q, k, v, None, num_heads=2)
    heads = []
    for h in range(2):
        w = torch.softmax(q[0, :, 4 * h:4 * h + 4] @ k[0, 4 * h:4 * h + 4] * 8 ** -0.5, dim=-1)
        heads.append(w @ v[0, 2 * h:2 * h + 2].T)
    torch.testing.assert_close(out[0], torch.cat(heads, dim=1))


def test_all_words_masked_stays_finite():
    q, k, v = torch.randn(1, 4, 8), torch.randn(1, 8, 3), torch.randn(1, 8, 3)
    out = masked_word_attention(q, k, v, torch.zeros(1, 3), num_heads=1)
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros_like(out))  # values zeroed


def test_language_gate_closed_at_init_and_gated_sum():
    gate = LanguageGate(8)
    x, r = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    assert torch.equal(gate.gated_sum(x, r), x)
    torch.nn.init.normal_(gate[0].weight)
    torch.nn.init.normal_(gate[2].weight)
    expected = x + torch.tanh(gate[2](torch.relu(gate[0](r)))) * r
    torch.testing.assert_close(gate.gated_sum(x, r), expected)
    assert isinstance(LanguageGate(8, activation="gelu")[1], torch.nn.GELU)
    with pytest.raises(ValueError):
        LanguageGate(8, activation="tanh")


def test_bf16_autocast_runs_and_stays_close():
    x, words, mask = _inputs(n=64)
    pwam = PWAM(16, 24).eval()
    with torch.no_grad():
        ref = pwam(x, words, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = pwam(x, words, mask)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_gradients_flow_to_all_parameters():
    x, words, mask = _inputs()
    pwam = PWAM(16, 24)
    pwam(x, words, mask).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pwam.parameters())
