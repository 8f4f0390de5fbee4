"""JMCELN (baselines/jmceln): the paper's modules on small inputs, the tiny variant's interface,
loss, training smoke check, ablation flags, weights; the paper variant's sizes."""
from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch
import torch.nn.functional as F

from refbench.core.checkpoint import save_checkpoint
from baselines.common.clip import CLIP
from refbench.core.clip_tokenizer import CLIPTokenizer
from baselines.jmceln.config import ABLATIONS, PAPER, TINY
from baselines.jmceln.model import (ContextualEmbeddingLearning, JointMaskContextualEmbeddingLearning,
                                    LearnableContextualEmbedding, ProgressiveAlignmentNetwork)
from baselines.jmceln.switchable_norm import SwitchableNorm2d
from refbench.core.tokenize import get_tokenizer
from refbench.core.errors import RefbenchError
from refbench.core.models import RISModel, build_model, get_model_info
from refbench.core.protocols import get_protocol
from refbench.train.recipes import get_recipe

SENTENCES = ["the red circle on the left", "a big blue square", "green triangle", "the small star at the top right"]


def _batch(model, b=2, seed=0, size=None):
    g = torch.Generator().manual_seed(seed)
    s = size or model.input_size
    ids, mask = CLIPTokenizer(30).encode_batch([SENTENCES[i % len(SENTENCES)] for i in range(b)])
    return {"image": torch.randn(b, 3, s, s, generator=g), "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask), "mask": torch.rand(b, s, s, generator=g) > 0.7}


def _calibrate_norms(model, batch):
    """Set every BatchNorm / SwitchableNorm running statistic to those of one training-mode pass, so
    that an untrained model in eval mode normalizes like in training (fresh statistics, mean 0 and
    variance 1, shrink the activations of a deep random network to nearly nothing)."""
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, SwitchableNorm2d))]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(batch["image"], batch["input_ids"], batch["attention_mask"])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("jmceln", variant="tiny")
    return _calibrate_norms(model, _batch(model, b=4, seed=9))


# ---------------------------------------------------------------------------------------------
# registry, protocol, recipe
# ---------------------------------------------------------------------------------------------
def test_registry_protocol_and_recipe():
    info = get_model_info("jmceln")
    assert (info.protocol, info.binarize, info.variants) == ("jmceln", "argmax", ("paper", "tiny"))
    assert {c.kind for c in info.checkpoints} == {"train", "shipped"}  # no released weights
    p = get_protocol("jmceln")
    assert (p.family, p.input_size, p.canvas, p.image_resize, p.normalization, p.tokenizer, p.token_length) == \
        ("lavt", 416, 416, "stretch", "clip", "clip", 30)
    assert p.thresholds == (0.5, 0.9) and p.p_compare == ">=" and p.resolve("argmax").binarize == "argmax"
    tok = get_tokenizer(p.tokenizer, p.token_length)
    assert tok.encode("a dog")[0][:4] == [49406, 320, 1929, 49407]
    r = get_recipe("jmceln", "paper")
    assert (r.lr, r.poly_power, r.epochs, r.batch_size, r.input_size, r.token_length, r.select_metric) == \
        (6e-6, 0.9, 60, 20, 416, 30, "mIoU")


def test_paper_configuration_is_the_papers():
    assert (PAPER.input_size, PAPER.dim, PAPER.num_stages, PAPER.num_embeddings, PAPER.num_heads) == (416, 1024, 6, 20, 8)
    v, t = PAPER.clip.vision, PAPER.clip.text
    assert (v.layers, v.width, v.output_dim, t.width, t.layers, t.heads, t.context_length, t.vocab_size) == \
        ((3, 4, 23, 3), 64, 512, 512, 12, 8, 77, 49408)
    assert PAPER.use_lsran and PAPER.use_pan and PAPER.adaptive_embedding and PAPER.pan_kernel == 7


# ---------------------------------------------------------------------------------------------
# the paper's modules on small inputs
# ---------------------------------------------------------------------------------------------
def test_contextual_embedding_update_is_eq3():
    torch.manual_seed(0)
    c, heads, q_n, hw = 8, 2, 3, 5
    module = ContextualEmbeddingLearning(c, heads)
    q, f_m, f_mt = torch.randn(2, q_n, c), torch.randn(2, hw, c), torch.randn(2, hw, c)
    with torch.no_grad():
        out = module(q, f_m, f_mt)
    # Eq. 3 per head: q + W_o [softmax((q W_q)(F_m W_k)^T / sqrt(d_k)) (F_mt W_v)]_heads
    a = module.attention
    w_q, w_k, w_v = a.in_proj_weight.chunk(3)
    b_q, b_k, b_v = a.in_proj_bias.chunk(3)
    d = c // heads
    heads_out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        qh = q @ w_q[sl].T + b_q[sl]
        kh = f_m @ w_k[sl].T + b_k[sl]
        vh = f_mt @ w_v[sl].T + b_v[sl]
        heads_out.append(torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1) @ vh)
    expected = torch.cat(heads_out, -1) @ a.out_proj.weight.T + a.out_proj.bias + q
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # the attention map comes from F_m, the content from F_mt: a spatially constant F_mt gives an
    # update that does not depend on F_m
    const = torch.randn(2, 1, c).expand(2, hw, c)
    with torch.no_grad():
        one, other = module(q, f_m, const), module(q, torch.randn(2, hw, c), const)
    torch.testing.assert_close(one, other, atol=1e-5, rtol=1e-5)
    emb = LearnableContextualEmbedding(q_n, c)
    assert emb(4).shape == (4, q_n, c) and torch.equal(emb(4)[3], emb.weight)


def test_cascade_values_follow_the_adaptive_flag():
    torch.manual_seed(0)
    seen = []
    for adaptive in (True, False):
        cfg = dataclasses.replace(TINY, dim=16, num_heads=2, num_stages=3, num_embeddings=4, adaptive_embedding=adaptive)
        cascade = JointMaskContextualEmbeddingLearning(cfg).eval()
        values = []
        for stage in cascade.stages:
            stage.embedding_learning.register_forward_hook(lambda m, i, o: values.append(i[2]))
        f_m, f_mt0 = torch.randn(2, 16, 6, 6), torch.randn(2, 16, 6, 6)
        with torch.no_grad():
            out, outputs = cascade(f_m, f_mt0)
        assert len(outputs) == 3 and out is outputs[-1] and out.shape == (2, 16, 6, 6)
        tokens = [f_mt0] + outputs[:-1]  # the values Eq. 3 should read at stages 1..3
        for i, v in enumerate(values):
            want = tokens[i] if adaptive else f_mt0
            assert torch.equal(v, want.flatten(2).transpose(1, 2)), (adaptive, i)
        seen.append(out)
    assert not torch.allclose(seen[0], seen[1])


def _pan_reference(pan: ProgressiveAlignmentNetwork, current, previous):
    """§3.4.2 written out with functional convolutions and explicit SN statistics (training mode)."""
    c = previous.shape[1]
    x = F.conv2d(current, pan.proj_in.weight, pan.proj_in.bias)
    assert x.shape[1] == c // 4 + c // 2 + c
    x = F.conv2d(x, pan.dwconv.weight, pan.dwconv.bias, padding=3, groups=x.shape[1])  # 7x7 depthwise
    f1, f2, f3 = x[:, : c // 4], x[:, c // 4: c // 4 + c // 2], x[:, c // 4 + c // 2:]
    g = F.conv2d(previous, pan.proj_previous.weight, pan.proj_previous.bias) * f1
    g = F.conv2d(g, pan.filters[0].weight, pan.filters[0].bias, padding=1) * f2
    g = F.conv2d(g, pan.filters[1].weight, pan.filters[1].bias, padding=1) * f3
    sn = pan.norm
    wm, wv = torch.softmax(sn.mean_weight, 0), torch.softmax(sn.var_weight, 0)
    mu_in, var_in = g.mean((2, 3), keepdim=True), g.var((2, 3), unbiased=False, keepdim=True)
    mu_ln, var_ln = g.mean((1, 2, 3), keepdim=True), g.var((1, 2, 3), unbiased=False, keepdim=True)
    mu_bn, var_bn = g.mean((0, 2, 3), keepdim=True), g.var((0, 2, 3), unbiased=False, keepdim=True)
    mean = wm[0] * mu_in + wm[1] * mu_ln + wm[2] * mu_bn
    var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn
    y = (g - mean) / torch.sqrt(var + sn.eps) * sn.weight.view(1, -1, 1, 1) + sn.bias.view(1, -1, 1, 1)
    return previous + y


def test_progressive_alignment_network_on_small_inputs():
    torch.manual_seed(0)
    pan = ProgressiveAlignmentNetwork(8).train()
    with torch.no_grad():
        pan.norm.mean_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        pan.norm.var_weight.copy_(torch.tensor([-0.1, 0.4, 0.2]))
        pan.norm.weight.uniform_(0.5, 1.5)
        pan.norm.bias.uniform_(-0.5, 0.5)
    current, previous = torch.randn(3, 8, 9, 9), torch.randn(3, 8, 9, 9)
    with torch.no_grad():
        out = pan(current, previous)
        torch.testing.assert_close(out, _pan_reference(pan, current, previous), atol=1e-4, rtol=1e-4)
    assert [p.shape for p in (pan.proj_in.weight, pan.dwconv.weight, pan.proj_previous.weight,
                              pan.filters[0].weight, pan.filters[1].weight)] == \
        [(14, 8, 1, 1), (14, 1, 7, 7), (2, 8, 1, 1), (4, 2, 3, 3), (8, 4, 3, 3)]
    # the previous stage's output is the first filter of a multiplicative chain: with bias-free
    # filters, zeroing its projection removes the whole filtered branch (SN of zeros = its bias = 0)
    # and leaves the residual F_mt^i
    with torch.no_grad():
        for conv in (pan.proj_previous, *pan.filters):
            conv.bias.zero_()
        pan.proj_previous.weight.zero_()
        pan.norm.bias.zero_()
        torch.testing.assert_close(pan(current, previous), previous, atol=1e-6, rtol=0)


def test_switchable_norm_reduces_to_in_ln_bn():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 5, 7) * 3 + 1
    sn = SwitchableNorm2d(6).train()
    onehot = {0: "in", 1: "ln", 2: "bn"}
    for k, kind in onehot.items():
        with torch.no_grad():
            w = torch.full((3,), -30.0)
            w[k] = 30.0
            sn.mean_weight.copy_(w)
            sn.var_weight.copy_(w)
            y = sn(x)
        ref = {"in": F.instance_norm(x, eps=1e-5), "ln": F.layer_norm(x, x.shape[1:], eps=1e-5),
               "bn": F.batch_norm(x, None, None, training=True, eps=1e-5)}[kind]
        torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)
    # running BN statistics: 3 updates with momentum 0.1 from (0, 1)
    torch.testing.assert_close(sn.running_mean, (1 - 0.9 ** 3) * x.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)
    sn.eval()
    with torch.no_grad():
        y = sn(x)  # BN part now uses the running statistics
        ref = (x - sn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(sn.running_var.view(1, -1, 1, 1) + 1e-5)
        torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)
        assert sn(x.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="expects"):
        sn(torch.randn(2, 5, 3, 3))


# ---------------------------------------------------------------------------------------------
# tiny variant: interface, loss, ablations, weights
# ---------------------------------------------------------------------------------------------
def test_interface_and_shapes(tiny):
    assert isinstance(tiny, RISModel)
    assert (tiny.name, tiny.variant, tiny.binarize_rule, tiny.input_size) == ("jmceln", "tiny", "argmax", 160)
    assert (tiny.text_encoder_kind, tiny.token_length, tiny.normalization, tiny.text_encoder_prefix) == \
        ("clip", 30, "clip", "text_encoder.")
    assert all(n.startswith("text_encoder.transformer.resblocks.") or not n.startswith("text_encoder.transformer")
               for n, _ in tiny.named_parameters())
    b = _batch(tiny)
    with torch.no_grad():
        feats = tiny.forward_features(b["image"], b["input_ids"], b["attention_mask"])
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert [tuple(f.shape[1:]) for f in feats["f_v"]] == [(128, 20, 20), (256, 10, 10), (64, 5, 5)]
    assert feats["f_s"].shape == (2, 64)
    for key in ("f_m", "f_mt0", "f_mt"):
        assert feats[key].shape == (2, 64, 20, 20), key
    assert len(feats["stages"]) == 2 and feats["f_mt"] is feats["stages"][-1]
    assert logits.shape == (2, 2, 160, 160) and torch.equal(logits, feats["logits"])
    assert masks.dtype == torch.bool and torch.equal(masks, logits[:, 1] > logits[:, 0])


def test_sentence_conditions_the_prediction_and_padding_does_not(tiny):
    b = _batch(tiny, b=3)
    other = b["input_ids"].clone()
    other[b["attention_mask"] == 0] = 555
    swapped = b["input_ids"][[1, 2, 0]], b["attention_mask"][[1, 2, 0]]
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
        torch.testing.assert_close(tiny(b["image"], other, b["attention_mask"]), ref, atol=1e-5, rtol=1e-5)
        alone = tiny(b["image"][1:2], b["input_ids"][1:2], b["attention_mask"][1:2])
        torch.testing.assert_close(alone, ref[1:2], atol=1e-4, rtol=1e-4)
        assert (tiny(b["image"], *swapped) - ref).abs().max() > 1e-3


def test_loss_is_cross_entropy_and_trains_every_part():
    torch.manual_seed(0)
    model = build_model("jmceln", variant="tiny").train()
    b = _batch(model, b=2, size=96)
    out = model.loss(b)
    assert set(out) == {"ce", "total"} and out["total"] is out["ce"]
    out["total"].backward()
    for part in ("backbone", "text_encoder", "neck", "lsran", "cascade", "upsampling"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part
    assert model.cascade.embedding.weight.grad.abs().sum() > 0  # q^0 is learned
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(b["image"], b["input_ids"], b["attention_mask"]), b["mask"].long())
        torch.testing.assert_close(model.loss(b)["ce"], expected)
    with pytest.raises(RefbenchError, match="batch\\['mask'\\] must be"):
        model.loss({**b, "mask": b["mask"][:, :10]})
    with pytest.raises(RefbenchError, match="lacks 'mask'"):
        model.loss({k: v for k, v in b.items() if k != "mask"})
    model.train()
    with pytest.raises(RefbenchError, match="micro-batches of at least 2"):
        model.loss({k: (v[:1] if torch.is_tensor(v) else v) for k, v in b.items()})


def test_few_training_steps_reduce_the_loss():
    """Smoke check: AdamW on one fixed batch (96x96, the tiny recipe's lr) lowers the CE."""
    torch.manual_seed(0)
    model = build_model("jmceln", variant="tiny", input_size=96).train()
    b = _batch(model, b=4, size=96)
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
    b["mask"] = torch.stack([(xx - 30 - 10 * i) ** 2 + (yy - 40) ** 2 < 400 for i in range(4)])
    opt = torch.optim.AdamW(model.parameters(), lr=get_recipe("jmceln", "tiny").lr)
    losses = []
    for _ in range(8):
        loss = model.loss(b)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("row", list(ABLATIONS))
def test_table2_ablation_rows(row):
    torch.manual_seed(0)
    model = build_model("jmceln", variant="tiny", ablation=row).eval()
    flags = {"full": (True, 2, True, True), "baseline": (False, 0, None, None), "+lsran": (True, 0, None, None),
             "+cascade": (False, 2, False, True), "w/o-pan": (True, 2, False, True),
             "w/o-adaptive-lce": (True, 2, True, False)}[row]
    has_pan = None if model.cascade is None else all(s.pan is not None for s in model.cascade.stages)
    adaptive = None if model.cascade is None else model.cascade.adaptive
    assert (model.lsran is not None, len(model.cascade.stages) if model.cascade else 0, has_pan, adaptive) == flags
    b = _batch(model, size=64)
    with torch.no_grad():
        assert model(b["image"], b["input_ids"], b["attention_mask"]).shape == (2, 2, 64, 64)


def test_build_options():
    with pytest.raises(RefbenchError, match="unknown JMCELN config field 'num_stage'"):
        build_model("jmceln", variant="tiny", num_stage=3)
    with pytest.raises(RefbenchError, match="unknown JMCELN ablation"):
        build_model("jmceln", variant="tiny", ablation="no-pan")
    with pytest.raises(RefbenchError, match="stride32_feature"):
        build_model("jmceln", variant="tiny", stride32_feature="layer5")
    model = build_model("jmceln", variant="tiny", input_size=128, stride32_feature="layer4", num_stages=1).eval()
    assert model.input_size == 128 and len(model.cascade.stages) == 1
    b = _batch(model, size=128)
    with torch.no_grad():
        assert model.encode_image(b["image"])[2].shape == (2, 512, 4, 4)  # raw layer4 map
        assert model(b["image"], b["input_ids"], b["attention_mask"]).shape == (2, 2, 128, 128)


def test_bf16_autocast_forward(tiny):
    b = _batch(tiny)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert torch.isfinite(logits.float()).all() and masks.shape == (2, 160, 160)


def test_bad_inputs(tiny):
    b = _batch(tiny)
    with pytest.raises(RefbenchError, match="images must be float"):
        tiny(b["image"][:, :1], b["input_ids"], b["attention_mask"])
    with pytest.raises(RefbenchError, match="at least 32x32"):
        tiny(b["image"][:, :, :16, :16], b["input_ids"], b["attention_mask"])
    with pytest.raises(RefbenchError, match="token ids must lie"):
        tiny(b["image"], b["input_ids"] + 50000, b["attention_mask"])


def test_checkpoint_roundtrip_and_errors(tiny, tmp_path):
    b = _batch(tiny)
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
    save_checkpoint(tiny, tmp_path / "ours.pth", trained_on="synthetic")
    torch.save({"state_dict": {"module." + k: v for k, v in tiny.state_dict().items()}}, tmp_path / "ddp.pth")
    for name in ("ours.pth", "ddp.pth"):
        torch.manual_seed(1)
        fresh = build_model("jmceln", variant="tiny").eval()
        assert fresh.load_checkpoint(str(tmp_path / name))
        with torch.no_grad():
            assert torch.equal(fresh(b["image"], b["input_ids"], b["attention_mask"]), ref), name
    no_pan = build_model("jmceln", variant="tiny", ablation="w/o-pan")
    with pytest.raises(RefbenchError, match=r"unexpected \d+ \[cascade\.stages\.\*\.pan"):
        no_pan.load_checkpoint(str(tmp_path / "ddp.pth"))
    torch.save({"refbench": {"format": 1, "model": "lavt", "variant": "tiny"}, "model": {"classifier.w": torch.zeros(1)}},
               tmp_path / "lavt.pth")
    with pytest.raises(RefbenchError, match="refbench checkpoint of model 'lavt'"):
        tiny.load_checkpoint(str(tmp_path / "lavt.pth"))


def test_clip_initialisation_of_both_encoders(tmp_path):
    torch.manual_seed(3)
    clip = CLIP(dataclasses.replace(TINY.clip, name="tiny")).eval()
    torch.save(clip.state_dict(), tmp_path / "clip_tiny.pt")  # OpenAI's key layout
    model = build_model("jmceln", variant="tiny", clip_path=str(tmp_path / "clip_tiny.pt")).eval()
    assert any("image tower initialised" in n for n in model.init_notes)
    for key, value in clip.visual.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    b = _batch(model)
    with torch.no_grad():
        assert torch.equal(model.encode_text(b["input_ids"], b["attention_mask"]),
                           clip.encode_text(b["input_ids"], b["attention_mask"]))
    deeper = dataclasses.replace(TINY.clip, vision=dataclasses.replace(TINY.clip.vision, layers=(1, 1, 2, 1)))
    with pytest.raises(RefbenchError, match=r"vision layers \(1, 1, 1, 1\).*image tower is this model \(vision layers "
                                            r"\(1, 1, 2, 1\)"):
        build_model("jmceln", variant="tiny", clip=deeper).load_clip(str(tmp_path / "clip_tiny.pt"))


@pytest.mark.slow
def test_paper_variant_forward_at_416():
    torch.manual_seed(0)
    model = build_model("jmceln", variant="paper").eval()
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    assert counts["backbone"] == 56_259_936 and counts["text_encoder"] == 63_428_096  # CLIP RN101 towers
    b = _batch(model, b=1)
    with torch.no_grad():
        feats = model.forward_features(b["image"], b["input_ids"], b["attention_mask"])
    assert [tuple(f.shape[1:]) for f in feats["f_v"]] == [(512, 52, 52), (1024, 26, 26), (512, 13, 13)]
    assert feats["f_mt"].shape == (1, 1024, 52, 52) and len(feats["stages"]) == 6
    assert feats["logits"].shape == (1, 2, 416, 416)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
