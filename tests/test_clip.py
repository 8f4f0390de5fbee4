"""CLIP encoders (baselines/common/clip.py) and the CLIP BPE tokenizer (baselines/common/clip_tokenizer.py)."""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.clip import (CLIP, RN101, AttentionPool2d, CLIPConfig, CLIPTextConfig, CLIPTextTransformer,
                                   CLIPVisionConfig, ModifiedResNet, build_clip_rn101, infer_clip_config,
                                   load_clip_state_dict, read_torchscript_state_dict)
from refbench.core.clip_tokenizer import EOT_ID, SOT_ID, CLIPTokenizer, clean_text, split_words
from refbench.core.tokenize import get_tokenizer
from refbench.core.errors import RefbenchError

# A small CLIP of the same structure: width 8 -> layer dims 32/64/128/256, attention pool over 256
# channels with 4 heads; a 2-layer text transformer of width 32.
SMALL = CLIPConfig("small", CLIPVisionConfig(layers=(1, 2, 1, 1), width=8, output_dim=24),
                   CLIPTextConfig(context_length=16, vocab_size=49408, width=32, heads=2, layers=2, output_dim=24))


# ---------------------------------------------------------------------------------------------
# RN101: key names and shapes against OpenAI CLIP's published architecture
# ---------------------------------------------------------------------------------------------
def expected_rn101_layout() -> dict[str, tuple[int, ...]]:
    """OpenAI CLIP RN101 state dict, written from the architecture description (Radford et al. 2021,
    model card / clip/model.py structure): ModifiedResNet width 64, blocks (3, 4, 23, 3), 3-conv stem
    (3->32->32->64), bottleneck expansion 4 with a projected shortcut on each stage's first block,
    attention pool over 2048 channels on a 7x7 grid (224 px) projecting to 512; text transformer of
    width 512, 12 layers, context 77, vocabulary 49,408, projection 512x512; logit_scale."""
    k: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            k[f"{prefix}.{name}"] = (c,)

    k["visual.conv1.weight"] = (32, 3, 3, 3)
    bn("visual.bn1", 32)
    k["visual.conv2.weight"] = (32, 32, 3, 3)
    bn("visual.bn2", 32)
    k["visual.conv3.weight"] = (64, 32, 3, 3)
    bn("visual.bn3", 64)
    inplanes = 64
    for i, blocks in enumerate((3, 4, 23, 3)):
        planes = 64 * 2 ** i
        for j in range(blocks):
            p = f"visual.layer{i + 1}.{j}"
            c_in = inplanes if j == 0 else planes * 4
            k[f"{p}.conv1.weight"] = (planes, c_in, 1, 1)
            bn(f"{p}.bn1", planes)
            k[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            k[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if j == 0:
                k[f"{p}.downsample.0.weight"] = (planes * 4, c_in, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    k["visual.attnpool.positional_embedding"] = (50, 2048)
    for proj in ("q_proj", "k_proj", "v_proj"):
        k[f"visual.attnpool.{proj}.weight"] = (2048, 2048)
        k[f"visual.attnpool.{proj}.bias"] = (2048,)
    k["visual.attnpool.c_proj.weight"] = (512, 2048)
    k["visual.attnpool.c_proj.bias"] = (512,)
    k["token_embedding.weight"] = (49408, 512)
    k["positional_embedding"] = (77, 512)
    for i in range(12):
        p = f"transformer.resblocks.{i}"
        k[f"{p}.attn.in_proj_weight"] = (1536, 512)
        k[f"{p}.attn.in_proj_bias"] = (1536,)
        k[f"{p}.attn.out_proj.weight"] = (512, 512)
        k[f"{p}.attn.out_proj.bias"] = (512,)
        for ln in ("ln_1", "ln_2"):
            k[f"{p}.{ln}.weight"] = (512,)
            k[f"{p}.{ln}.bias"] = (512,)
        k[f"{p}.mlp.c_fc.weight"] = (2048, 512)
        k[f"{p}.mlp.c_fc.bias"] = (2048,)
        k[f"{p}.mlp.c_proj.weight"] = (512, 2048)
        k[f"{p}.mlp.c_proj.bias"] = (512,)
    k["ln_final.weight"] = (512,)
    k["ln_final.bias"] = (512,)
    k["text_projection"] = (512, 512)
    k["logit_scale"] = ()
    return k


def test_rn101_keys_and_shapes_match_openai_layout():
    clip = build_clip_rn101()
    sd = clip.state_dict()
    got = {key: tuple(v.shape) for key, v in sd.items() if not key.endswith("num_batches_tracked")}
    expected = expected_rn101_layout()
    assert sorted(set(got) - set(expected)) == [] and sorted(set(expected) - set(got)) == []
    assert got == expected
    # OpenAI's CLIP notebook prints "Model parameters: 119,688,033" for RN101
    assert sum(p.numel() for p in clip.parameters()) == 119_688_033
    assert sum(p.numel() for p in clip.visual.parameters()) == 56_259_936
    # the towers standing alone carry the same keys (visual.* stripped / the text keys)
    small = CLIP(SMALL).state_dict()
    vis, txt = ModifiedResNet(SMALL.vision), CLIPTextTransformer(SMALL.text)
    assert {"visual." + key for key in vis.state_dict()} == {key for key in small if key.startswith("visual.")}
    assert set(txt.state_dict()) == {key for key in small if not key.startswith("visual.") and key != "logit_scale"}
    assert RN101.vision.stage_dims == (256, 512, 1024, 2048) and RN101.vision.num_heads == 32
    assert infer_clip_config(sd) == RN101


# ---------------------------------------------------------------------------------------------
# image tower
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_clip() -> CLIP:
    torch.manual_seed(0)
    clip = CLIP(SMALL).eval()
    for m in clip.modules():  # non-trivial BN statistics and gammas (OpenAI zero-inits bn3)
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return clip


@pytest.mark.parametrize("size", [96, 100])
def test_visual_stage_shapes(small_clip, size):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feats = small_clip.visual.forward_features(x)
        dense = small_clip.visual.attnpool.forward_dense(feats[-1])
        pooled = small_clip.encode_image(x)
    sides = [size // 4]
    for _ in range(3):
        sides.append(sides[-1] // 2)  # AvgPool2d(2) floors
    assert [tuple(f.shape[1:]) for f in feats] == [(c, s, s) for c, s in zip(SMALL.vision.stage_dims, sides)]
    assert dense.shape == (2, 24, sides[3], sides[3]) and pooled.shape == (2, 24)


def test_attention_pool_matches_openai_formulation(small_clip):
    pool: AttentionPool2d = small_clip.visual.attnpool
    x = torch.randn(2, 256, 7, 7)
    # OpenAI's AttentionPool2d.forward: (HW+1)NC tokens, F.multi_head_attention_forward, query = mean token
    t = x.flatten(2).permute(2, 0, 1)
    t = torch.cat([t.mean(dim=0, keepdim=True), t], dim=0) + pool.positional_embedding[:, None, :]
    ref, _ = F.multi_head_attention_forward(
        query=t[:1], key=t, value=t, embed_dim_to_check=256, num_heads=4, q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]), bias_k=None, bias_v=None,
        add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True, training=False, need_weights=False)
    allq, _ = F.multi_head_attention_forward(
        query=t, key=t, value=t, embed_dim_to_check=256, num_heads=4, q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]), bias_k=None, bias_v=None,
        add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True, training=False, need_weights=False)
    with torch.no_grad():
        torch.testing.assert_close(pool(x), ref[0], atol=1e-5, rtol=1e-5)
        dense = pool.forward_dense(x)
    torch.testing.assert_close(dense, allq[1:].permute(1, 2, 0).reshape(2, 24, 7, 7), atol=1e-5, rtol=1e-5)


def test_attention_pool_positional_embedding_resize(small_clip):
    pool = small_clip.visual.attnpool
    pe = pool.positional_embedding
    assert pool.positional_embedding_for(7, 7) is pe
    resized = pool.positional_embedding_for(13, 11)
    assert resized.shape == (1 + 13 * 11, 256)
    assert torch.equal(resized[0], pe[0])  # the mean token's row is kept
    const = AttentionPool2d(7, 8, 2)
    with torch.no_grad():
        const.positional_embedding[1:] = torch.arange(8.0)  # a spatially constant grid stays constant
    grid = const.positional_embedding_for(5, 9)[1:]
    torch.testing.assert_close(grid, torch.arange(8.0).expand(45, 8), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# text tower
# ---------------------------------------------------------------------------------------------
def _openai_text_forward(text: CLIPTextTransformer, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenAI's encode_text, op for op: LND layout, nn.MultiheadAttention with a -inf causal mask,
    sentence feature at ids.argmax(-1) (the <|endoftext|> id is the largest)."""
    length = ids.shape[1]
    x = (text.token_embedding(ids) + text.positional_embedding[:length]).permute(1, 0, 2)
    causal = torch.full((length, length), float("-inf")).triu_(1)
    for block in text.transformer.resblocks:
        mha = nn.MultiheadAttention(text.width, text.text_config.heads)
        mha.load_state_dict(block.attn.state_dict())  # the same key layout
        h = block.ln_1(x)
        x = x + mha(h, h, h, need_weights=False, attn_mask=causal)[0]
        x = x + block.mlp(block.ln_2(x))
    x = text.ln_final(x.permute(1, 0, 2))
    return x, x[torch.arange(x.shape[0]), ids.argmax(-1)] @ text.text_projection


def test_text_tower_matches_openai_encode_text(small_clip):
    tok = CLIPTokenizer(12)
    ids, mask = (torch.tensor(t) for t in tok.encode_batch(["a dog", "the man on the far left with a red hat", "x"]))
    with torch.no_grad():
        out = CLIPTextTransformer.forward(small_clip, ids, mask)
        ref_tokens, ref_sentence = _openai_text_forward(small_clip, ids)
    assert out.tokens.shape == (3, 12, 32) and out.sentence.shape == (3, 24)
    torch.testing.assert_close(out.sentence, ref_sentence, atol=1e-5, rtol=1e-5)
    real = mask.bool()
    torch.testing.assert_close(out.tokens[real], ref_tokens[real], atol=1e-5, rtol=1e-5)
    # the sentence is read at <|endoftext|> = the last real token = OpenAI's argmax position
    assert torch.equal(mask.sum(1) - 1, ids.argmax(-1))
    # padding never reaches real tokens (causal attention): other padded ids change nothing
    other = ids.clone()
    other[~real] = 4000
    with torch.no_grad():
        out2 = CLIPTextTransformer.forward(small_clip, other, mask)
    torch.testing.assert_close(out2.sentence, out.sentence, atol=1e-6, rtol=0)
    torch.testing.assert_close(out2.tokens[real], out.tokens[real], atol=1e-6, rtol=0)


def test_text_tower_rejects_bad_ids(small_clip):
    ids = torch.full((1, 8), 5, dtype=torch.int64)
    mask = torch.ones_like(ids)
    with pytest.raises(RefbenchError, match=r"token ids must lie in \[0, 49408\)"):
        small_clip.encode_text(ids + 50000, mask)
    with pytest.raises(RefbenchError, match="exceed CLIP's context of 16"):
        small_clip.encode_text(torch.ones(1, 20, dtype=torch.int64), torch.ones(1, 20, dtype=torch.int64))
    with pytest.raises(RefbenchError, match="no real token"):
        small_clip.encode_text(ids, torch.zeros_like(mask))
    with pytest.raises(RefbenchError, match="must match input_ids"):
        small_clip.encode_text(ids, mask[:, :4])


def test_bf16_autocast(small_clip):
    ids, mask = (torch.tensor([t]) for t in CLIPTokenizer(10).encode("a cat"))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        img = small_clip.encode_image(torch.randn(1, 3, 64, 64))
        txt = small_clip.encode_text(ids, mask)
    assert torch.isfinite(img.float()).all() and torch.isfinite(txt.float()).all()


# ---------------------------------------------------------------------------------------------
# loading OpenAI-layout weights
# ---------------------------------------------------------------------------------------------
def _inputs():
    ids, mask = (torch.tensor(t) for t in CLIPTokenizer(10).encode_batch(["a dog", "a photo of a cat"]))
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)), ids, mask


def test_load_into_separate_towers_and_whole_clip(small_clip, tmp_path):
    images, ids, mask = _inputs()
    with torch.no_grad():
        ref_img, ref_txt = small_clip.encode_image(images), small_clip.encode_text(ids, mask)
    sd = {"module." + k: v for k, v in small_clip.state_dict().items()}  # a DataParallel-saved copy
    sd["module.input_resolution"] = torch.tensor(64)  # size entries of OpenAI's archives are dropped
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "clip_small.pt")
    torch.manual_seed(5)
    vis, txt = ModifiedResNet(SMALL.vision).eval(), CLIPTextTransformer(SMALL.text).eval()
    notes = load_clip_state_dict(str(tmp_path / "clip_small.pt"), visual=vis, text=txt)
    assert "image tower initialised from CLIP custom" in notes and "text tower initialised from CLIP custom" in notes
    whole = CLIP(SMALL).eval()
    load_clip_state_dict(small_clip.state_dict(), text=whole)
    with torch.no_grad():
        assert torch.equal(vis(images), ref_img) and torch.equal(txt(ids, mask).sentence, ref_txt)
        assert torch.equal(whole.encode_image(images), ref_img) and torch.equal(whole.logit_scale, small_clip.logit_scale)
    only_text = CLIPTextTransformer(SMALL.text)
    load_clip_state_dict(small_clip.state_dict(), text=only_text)  # visual.* skipped
    assert torch.equal(only_text.token_embedding.weight, small_clip.token_embedding.weight)


def test_wrong_clip_weights_give_one_clear_error(small_clip, tmp_path):
    deeper = CLIPConfig("deeper", CLIPVisionConfig(layers=(1, 2, 2, 1), width=8, output_dim=24), SMALL.text)
    with pytest.raises(RefbenchError, match=r"hold custom \(vision layers \(1, 2, 1, 1\).*but the image tower is "
                                            r"this model \(vision layers \(1, 2, 2, 1\)") as err:
        load_clip_state_dict(small_clip.state_dict(), visual=ModifiedResNet(deeper.vision))
    assert "\n" not in str(err.value)
    vit = {"visual.class_embedding": torch.zeros(768), "visual.proj": torch.zeros(768, 512)}
    with pytest.raises(RefbenchError, match="ViT CLIP"):
        load_clip_state_dict(vit, visual=ModifiedResNet(SMALL.vision))
    with pytest.raises(RefbenchError, match="not a CLIP ModifiedResNet state dict"):
        load_clip_state_dict({"backbone.conv1.weight": torch.zeros(1)}, text=CLIPTextTransformer(SMALL.text))
    with pytest.raises(RefbenchError, match="do not exist"):
        load_clip_state_dict(str(tmp_path / "RN101.pt"), text=CLIPTextTransformer(SMALL.text))


class _OpenAIStyle(nn.Module):
    """A CLIP traced the way OpenAI's JIT archives hold it: size buffers at the root and a causal-mask
    tensor attribute (not a buffer) on every residual block."""

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        self.clip = clip
        for name, value in (("input_resolution", 64), ("context_length", 16), ("vocab_size", 49408)):
            self.register_buffer(name, torch.tensor(value))
        for block in clip.transformer.resblocks:
            block.attn_mask = torch.full((16, 16), float("-inf")).triu_(1)

    def forward(self, images, ids, mask):
        return self.clip.encode_image(images), self.clip.encode_text(ids, mask)


def test_torchscript_archive_is_read_weights_only(small_clip, tmp_path):
    images, ids, mask = _inputs()
    wrapper = _OpenAIStyle(small_clip).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (images, ids, mask), check_trace=False)
    path = tmp_path / "RN_small.pt"
    traced.save(str(path))
    # flatten away the wrapper: OpenAI's archive has the CLIP at its root
    state = read_torchscript_state_dict(str(path))
    assert set(state) == set(traced.state_dict())  # parameters and buffers only, no attn_mask attribute
    for key, value in traced.state_dict().items():
        assert torch.equal(state[key], value), key
    openai_like = {k[len("clip."):] if k.startswith("clip.") else k: v for k, v in state.items()}
    torch.save(openai_like, tmp_path / "plain.pt")
    fresh = CLIP(SMALL).eval()
    load_clip_state_dict(str(tmp_path / "plain.pt"), text=fresh)
    with torch.no_grad():
        assert torch.equal(fresh.encode_text(ids, mask), small_clip.encode_text(ids, mask))


def test_torchscript_archive_with_foreign_globals_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(Exploit(), protocol=2))
        z.writestr("evil/code/__torch__.py", "class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n")
    with pytest.raises(RefbenchError, match=r"refusing global (posix|nt)\.system"):
        read_torchscript_state_dict(str(path))
    with pytest.raises(RefbenchError, match="refusing global"):
        load_clip_state_dict(str(path), text=CLIPTextTransformer(SMALL.text))


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------
# Reference ids: OpenAI CLIP's README/notebook ("a diagram", "a dog", "a cat") and CLIP's own
# SimpleTokenizer (with ftfy and regex) for the rest.
KNOWN = {
    "a diagram": [320, 22697],
    "a dog": [320, 1929],
    "a photo of a cat": [320, 1125, 539, 320, 2368],
    "hello world": [3306, 1002],
    "The giraffe not eating grass from a pole.": [518, 22826, 783, 4371, 5922, 633, 320, 8170, 269],
    "guy's hat!!": [2149, 568, 3801, 748],
    "left-most 2nd zebra (partially hidden)": [1823, 268, 1096, 273, 1764, 22548, 263, 21269, 7029, 264],
    "a   b\tc\nd  ": [320, 321, 322, 323],
    "&amp;lt;b&amp;gt; it's": [283, 321, 285, 585, 568],
    "Café déjà vu – “quoted” ‘single’": [15304, 25466, 73, 21259, 13230, 1224, 257, 27706, 257, 568, 17005, 262],
    "ＦＵＬＬ width ＡＢＣ１２３": [1476, 23571, 5334, 272, 273, 274],
    "ﬁsh ﬂag": [2759, 4859],
    "emoji 🐶🐱 ok": [16327, 14466, 22979, 2481],
    "日本語のテキスト 12": [39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486, 272, 273],
    "москва красная": [38018, 13506, 23669, 27152, 39813, 27080, 27152, 16370, 16912, 23669, 22705, 16912, 141, 493],
    "½ and ² and Ⅻ": [33613, 537, 41175, 537, 158, 227, 375],
}


@pytest.fixture(scope="module")
def tok30() -> CLIPTokenizer:
    return get_tokenizer("clip", 30)


@pytest.mark.parametrize("sentence", list(KNOWN))
def test_tokenizer_known_strings(tok30, sentence):
    ids, mask = tok30.encode(sentence)
    n = len(KNOWN[sentence]) + 2
    assert ids == [SOT_ID, *KNOWN[sentence], EOT_ID] + [0] * (30 - n)
    assert mask == [1] * n + [0] * (30 - n)


def test_tokenizer_truncation_and_batch(tok30):
    long = "the man in the red shirt standing on the far left side of the picture holding a bat and wearing a hat"
    ids, mask = CLIPTokenizer(17).encode(long)  # CRIS' length: first 17 ids, <|endoftext|> put last
    assert ids == [49406, 518, 786, 530, 518, 736, 2523, 2862, 525, 518, 2384, 1823, 1145, 539, 518, 1674, 49407]
    assert mask == [1] * 17
    batch_ids, batch_mask = tok30.encode_batch(["a dog", long])
    assert batch_ids[0] == tok30.encode("a dog")[0] and batch_mask[1] == tok30.encode(long)[1]
    assert tok30.length == 30 and tok30.vocab_size == 49408
    assert tok30.decode(tok30.encode("A photo of a CAT!")[0][:8]) == "<|startoftext|>a photo of a cat ! <|endoftext|>"
    assert clean_text("  Caf&amp;eacute;\n\tＯＫ ") == "café ok"
    assert split_words("<|endoftext|>it's x9") == ["<|endoftext|>", "it", "'s", "x", "9"]
    assert split_words("über’s ½") == ["über", "’", "s", "½"]  # no cleaning here: ’ is not '


def test_tokenizer_errors(tmp_path):
    with pytest.raises(RefbenchError, match="at least 2"):
        CLIPTokenizer(1)
    with pytest.raises(RefbenchError, match="no bpe_simple_vocab_16e6"):
        get_tokenizer("clip", 30, tmp_path)
    bad = tmp_path / "bpe_simple_vocab_16e6.txt"
    bad.write_text("#version: 0.2\na b\n")
    with pytest.raises(RefbenchError, match="expected 48894 BPE merges"):
        CLIPTokenizer(30, bad)
    with pytest.raises(RefbenchError, match="unknown tokenizer kind 'clp'"):
        get_tokenizer("clp", 30)
