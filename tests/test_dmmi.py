"""DMMI: official-checkpoint parity (case A), key layouts, parameter counts, shapes, loading, errors."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from parity_fixtures import make_weights_module, parity_root
import torch
import torch.nn.functional as F

from refbench.core.errors import RefbenchError

ROOT = Path(__file__).resolve().parent

# tests/fixtures/parity/README.md, LAVT/DMMI column
TOL_LOGITS = 5e-3
TOL_PROBE_VAL_S = 0.1
TOL_PROBE_MEAN_S = 1e-4
TOL_PROBE_STD_S_REL = 1e-4
TOL_LANG_VAL = 1e-4
TOL_LANG_MEAN_STD = 1e-5
TOL_MASK_FRACTION = 1e-3
TOL_MASK_MARGIN = 5e-3


def _parity_dir() -> Path:
    return parity_root("dmmi")


def _make_weights(root: Path):
    return make_weights_module(root)


@pytest.fixture(scope="module")
def paper_model():
    from refbench.core.models import build_model

    torch.manual_seed(0)
    return build_model("dmmi", variant="paper").eval()


@pytest.fixture(scope="module")
def tiny_model():
    from baselines.dmmi.model import build

    torch.manual_seed(0)
    return build("tiny").eval()


def _inputs(batch: int, size: int, lengths=(7, 20)):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, size, size, generator=g)
    ids = torch.zeros(batch, 20, dtype=torch.long)
    att = torch.zeros(batch, 20, dtype=torch.long)
    for b in range(batch):
        n = lengths[b % len(lengths)]
        ids[b, :n] = torch.randint(1000, 30000, (n,), generator=g)
        ids[b, 0], ids[b, n - 1] = 101, 102
        att[b, :n] = 1
    return images, ids, att


# -- registry ---------------------------------------------------------------------------------------

def test_registry_entry():
    from refbench.core.models import get_model_info, registry

    assert "dmmi" in registry()
    info = get_model_info("dmmi")
    assert info.variants == ("paper", "resnet101", "tiny")
    assert info.protocol == "dmmi" and info.binarize == "argmax"  # DMMI's test.py: lavt with the union GT
    official = [c for c in info.checkpoints if c.kind == "official"]
    assert len(official) == 3 and [c.file for c in info.checkpoints_for("paper", "ref-zom")] == ["dmmi_swin_refzom.pth"]
    with pytest.raises(RefbenchError, match="variant"):
        info.build("swin_b")


# -- official Swin-B checkpoint layout and parity ---------------------------------------------------

def test_paper_state_dict_matches_official_spec(paper_model):
    root = _parity_dir()
    mw = _make_weights(root)
    spec = json.loads((root / "dmmi" / "spec.json").read_text())
    own = paper_model.state_dict()
    model_sd = {k: v for k, v in own.items() if not k.startswith("text_encoder.")}
    bert_sd = paper_model.text_encoder.state_dict()
    assert {k: tuple(v.shape) for k, v in model_sd.items()} == {k: tuple(s) for k, s, _ in spec["model"]}
    assert {k: tuple(v.shape) for k, v in bert_sd.items()} == {k: tuple(s) for k, s, _ in spec["bert_model"]}
    assert len(model_sd) == 731 and len(bert_sd) == 197
    counts = spec["param_count"]["model"]
    assert sum(p.numel() for n, p in paper_model.named_parameters() if not n.startswith("text_encoder.")) == 231_686_512
    assert counts["parameters"] == 231_686_512
    for child, n in counts["parameters_by_child"].items():
        assert sum(p.numel() for p in getattr(paper_model, child).parameters()) == n, child
    assert sum(p.numel() for p in paper_model.text_encoder.parameters()) == 108_891_648
    for key, digest in spec["int_buffer_digests"].items():
        assert mw.int_buffer_digest(own[key]) == digest, key


@pytest.mark.slow
def test_parity_case_a(paper_model):
    """Official DMMI (Swin-B, 480) on case A: logits, probes and masks within the README tolerances.

    Slow (about 80-120 s on a 2-core CPU: 340 M synthetic weights + a Swin-B/BERT forward at 480).
    """
    from refbench.core.checkpoint import extract_state_dict, load_state_dict_checked
    from baselines.dmmi.model import CHECKPOINT_LAYOUT

    root = _parity_dir()
    mw = _make_weights(root)
    spec = json.loads((root / "dmmi" / "spec.json").read_text())
    official = mw.make_checkpoint(spec, 0)             # {'model': ..., 'bert_model': ...}
    official["model"] = {"module." + k: v for k, v in official["model"].items()}   # DDP prefix
    official.update(optimizer={}, epoch=3, args=argparse.Namespace(model="dmmi_swin"))
    model = paper_model
    state, notes = extract_state_dict(official, CHECKPOINT_LAYOUT, "dmmi", "paper", "case_a")
    notes += load_state_dict_checked(model, state, "case_a", "dmmi", strict=True, layout=CHECKPOINT_LAYOUT)
    assert any("self-computed integer buffers" in n for n in notes)
    # the bert_model dict went into our BERT, strictly
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.11.output.LayerNorm.bias"):
        assert torch.equal(model.text_encoder.state_dict()[key], official["bert_model"][key])
    del official, state

    z = np.load(root / "dmmi" / "case_a.npz")
    with torch.no_grad():
        feats = model.forward_features(torch.from_numpy(z["image"]), torch.from_numpy(z["input_ids"]),
                                       torch.from_numpy(z["attention_mask"]))
        logits = F.interpolate(feats["logits_lowres"], size=(480, 480), mode="bilinear", align_corners=True)

    for name in ("bert_out", "lang_final", "s1", "s2", "s3", "s4"):
        t = feats[name].numpy()
        assert t.shape == tuple(z[f"probe.{name}.shape"]), name
        val = t.flat[z[f"probe.{name}.idx"]]
        mean, std = t.astype(np.float64).mean(), t.astype(np.float64).std()
        if name.startswith("s"):
            np.testing.assert_allclose(val, z[f"probe.{name}.val"], rtol=0, atol=TOL_PROBE_VAL_S, err_msg=name)
            assert abs(mean - z[f"probe.{name}.mean"]) < TOL_PROBE_MEAN_S, name
            assert abs(std / z[f"probe.{name}.std"] - 1) < TOL_PROBE_STD_S_REL, name
        else:
            np.testing.assert_allclose(val, z[f"probe.{name}.val"], rtol=0, atol=TOL_LANG_VAL, err_msg=name)
            assert abs(mean - z[f"probe.{name}.mean"]) < TOL_LANG_MEAN_STD, name
            assert abs(std - z[f"probe.{name}.std"]) < TOL_LANG_MEAN_STD, name

    np.testing.assert_allclose(feats["logits_lowres"].numpy(), z["logits_lowres"], rtol=0, atol=TOL_LOGITS)
    np.testing.assert_allclose(logits.numpy(), z["logits"], rtol=0, atol=TOL_LOGITS)
    # the model's own forward (in-model upsampling) is the same function
    with torch.no_grad():
        direct = model(torch.from_numpy(z["image"][:1]), torch.from_numpy(z["input_ids"][:1]),
                       torch.from_numpy(z["attention_mask"][:1]))
    np.testing.assert_allclose(direct.numpy(), z["logits"][:1], rtol=0, atol=TOL_LOGITS)

    mask = logits.argmax(1).numpy().astype(np.uint8)
    official_margin = np.abs(z["logits"][:, 1] - z["logits"][:, 0])
    for b in range(2):
        differ = mask[b] != z["pred_mask"][b]
        assert differ.mean() < TOL_MASK_FRACTION, f"sample {b}: {differ.mean():.4%} of pixels differ"
        assert (official_margin[b][differ] < TOL_MASK_MARGIN).all(), f"sample {b}: a confident pixel flipped"
    assert 0.005 < z["pred_mask"].mean() < 0.05  # the fixture's foreground (1.2 %) is non-trivial


# -- shapes, binarization, input errors -------------------------------------------------------------

def test_tiny_forward_shapes_and_predict(tiny_model):
    images, ids, att = _inputs(2, 160)
    with torch.no_grad():
        feats = tiny_model.forward_features(images, ids, att)
        logits = tiny_model(images, ids, att)
    assert logits.shape == (2, 2, 160, 160)
    assert feats["logits_lowres"].shape == (2, 2, 40, 40)
    assert feats["lang_final"].shape == feats["bert_out"].shape == (2, 64, 20)
    assert [tuple(feats[f"s{i}"].shape) for i in range(1, 5)] == [(2, 32, 40, 40), (2, 64, 20, 20), (2, 128, 10, 10),
                                                                 (2, 256, 5, 5)]
    assert not torch.equal(feats["lang_final"], feats["bert_out"])  # the MBA updated the words
    masks = tiny_model.predict(images, ids, att)
    assert masks.dtype == torch.bool and masks.shape == (2, 160, 160)
    assert torch.equal(masks, logits.argmax(1).bool())
    # inference skips the training-only branch
    assert feats["decoder"].reconstructed is None and feats["decoder"].pooled is None


def test_text_to_image_affinity_ignores_padded_words():
    from baselines.dmmi.model import RegionWordAffinity

    torch.manual_seed(0)
    aff = RegionWordAffinity(vis_dim=16, lang_dim=24, kernel=3).eval()
    x, words = torch.randn(2, 16, 36), torch.randn(2, 24, 10)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, 6:] = 0
    with torch.no_grad():
        attn = aff(x, 6, words, mask)
    assert attn.shape == (2, 36, 10)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 36))
    assert float(attn[0, :, 6:].max()) == 0.0            # exp(-1e4) underflows to 0
    changed = words.clone()
    changed[0, :, 6:] = torch.randn(24, 4)
    with torch.no_grad():
        torch.testing.assert_close(aff(x, 6, changed, mask), attn, rtol=0, atol=0)


def test_word_span_affinity_matches_the_official_unfold_layout():
    """Our span gathering equals F.unfold over a replicate-padded (B, c, L + k - 1, 1) map (the
    official op): channel-major (c, k) layout, spans [w - k//2, w + (k-1)//2]."""
    from baselines.dmmi.model import SpanPixelAffinity

    torch.manual_seed(0)
    for k in (1, 2, 3):
        aff = SpanPixelAffinity(vis_dim=12, lang_dim=24, kernel=k).eval()
        x, words = torch.randn(2, 12, 25), torch.randn(2, 24, 8)
        mask = torch.ones(2, 8, dtype=torch.long)
        mask[1, 5:] = 0
        q = aff.f_query(words).unsqueeze(-1)
        q = F.pad(q, (0, 0, k // 2, (k - 1) // 2), mode="replicate")
        q = aff.f_query2(F.unfold(q, kernel_size=(k, 1))) * mask[:, None, :]
        logits = torch.matmul(q.transpose(1, 2), aff.f_key(x)) * 12 ** -0.5
        want = (logits + (1e4 * mask[:, :, None] - 1e4)).softmax(-1)
        torch.testing.assert_close(aff(x, words, mask), want, rtol=1e-6, atol=1e-7)
        # padded words' queries are zero: uniform attention over the pixels
        torch.testing.assert_close(want[1, 5:], torch.full((3, 25), 1 / 25))


def test_non_square_input_is_a_clear_error(tiny_model):
    images, ids, att = _inputs(1, 160)
    with pytest.raises(RefbenchError, match=r"square inputs.*160x128"):
        tiny_model(images[..., :128], ids, att)
    with pytest.raises(RefbenchError, match="images must be float"):
        tiny_model(images[:, :1], ids, att)


def test_build_overrides_and_path_errors():
    from baselines.dmmi.model import build

    with pytest.raises(RefbenchError, match="config field"):
        build("tiny", window=7)
    with pytest.raises(RefbenchError, match="decoder_hidden"):
        build("tiny", decoder_hidden=32)
    with pytest.raises(RefbenchError, match="resnet_path"):
        build("tiny", resnet_path="x.pth")


# -- checkpoints ------------------------------------------------------------------------------------

def test_official_layout_and_own_format_load_tiny(tiny_model, tmp_path):
    from refbench.core.checkpoint import save_checkpoint
    from baselines.dmmi.config import TINY
    from baselines.dmmi.model import DMMI, build

    sd = tiny_model.state_dict()
    model_part = {"module." + k: v.clone() for k, v in sd.items() if not k.startswith("text_encoder.")}
    bert_part = {k[len("text_encoder."):]: v.clone() for k, v in sd.items() if k.startswith("text_encoder.")}
    bert_part["embeddings.position_ids"] = torch.arange(512)[None]  # transformers-3 style extra buffer
    official = tmp_path / "official.pth"
    torch.save({"model": model_part, "bert_model": bert_part, "optimizer": {"state": {}}, "epoch": 39,
                "args": argparse.Namespace(model="dmmi_swin"), "lr_scheduler": {}}, official)
    images, ids, att = _inputs(2, 160)
    with torch.no_grad():
        want = tiny_model(images, ids, att)
    torch.manual_seed(123)
    fresh = build("tiny").eval()
    notes = fresh.load_checkpoint(str(official))
    assert any("official layout" in n for n in notes)
    with torch.no_grad():
        torch.testing.assert_close(fresh(images, ids, att), want, rtol=0, atol=0)

    ours = tmp_path / "ours.pth"
    save_checkpoint(tiny_model, ours)
    torch.manual_seed(7)
    again = build("tiny").eval()
    again.load_checkpoint(str(ours))
    with torch.no_grad():
        torch.testing.assert_close(again(images, ids, att), want, rtol=0, atol=0)

    del model_part["module.classifier.lan_func.conv1.weight"]   # the training-only CCR is required too
    broken = tmp_path / "broken.pth"
    torch.save({"model": model_part, "bert_model": bert_part}, broken)
    with pytest.raises(RefbenchError, match=r"missing 1 \[classifier\.lan_func"):
        fresh.load_checkpoint(str(broken))
    other_variant = DMMI(dataclasses.replace(TINY, variant="tiny-copy"))
    with pytest.raises(RefbenchError, match="variant 'tiny'.*built as variant 'tiny-copy'"):
        other_variant.load_checkpoint(str(ours))


# -- ResNet-101 -------------------------------------------------------------------------------------

def _torchvision_resnet_layout(layers, num_classes=1000, base=64) -> dict[str, tuple[int, ...]]:
    """torchvision's ResNet state-dict layout, written from the public architecture
    (He et al. 2016, bottleneck v1.5; torchvision.models.resnet); ``base`` scales the widths."""
    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    out = {"conv1.weight": (base, 3, 7, 7), **bn("bn1", base)}
    c_in = base
    for i, blocks in enumerate(layers):
        w = base * 2 ** i
        for j in range(blocks):
            p = f"layer{i + 1}.{j}"
            out.update({f"{p}.conv1.weight": (w, c_in, 1, 1), **bn(f"{p}.bn1", w),
                        f"{p}.conv2.weight": (w, w, 3, 3), **bn(f"{p}.bn2", w),
                        f"{p}.conv3.weight": (4 * w, w, 1, 1), **bn(f"{p}.bn3", 4 * w)})
            if j == 0:
                out.update({f"{p}.downsample.0.weight": (4 * w, c_in, 1, 1), **bn(f"{p}.downsample.1", 4 * w)})
            c_in = 4 * w
    if num_classes:
        out.update({"fc.weight": (num_classes, c_in), "fc.bias": (num_classes,)})
    return out


def test_resnet101_matches_torchvision_layout():
    from baselines.common.resnet import ResNet, ResNetConfig

    net = ResNet(ResNetConfig(layers=(3, 4, 23, 3), num_classes=1000))
    want = _torchvision_resnet_layout((3, 4, 23, 3))
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == want
    assert len(want) == 626
    assert sum(p.numel() for p in net.parameters()) == 44_549_160   # torchvision's resnet101
    with torch.no_grad():
        outs = ResNet(ResNetConfig(layers=(1, 1, 1, 1), base_width=8)).eval()(torch.randn(1, 3, 64, 48))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 16, 12), (1, 64, 8, 6), (1, 128, 4, 3), (1, 256, 2, 2)]


def test_resnet_pretrained_loader(tmp_path):
    from baselines.common.resnet import ResNet, ResNetConfig, load_pretrained_resnet

    small = ResNetConfig(layers=(1, 1, 1, 1), base_width=8)
    src = ResNet(ResNetConfig(layers=(1, 1, 1, 1), base_width=8, num_classes=10))
    path = tmp_path / "resnet.pth"
    torch.save(src.state_dict(), path)
    dst = ResNet(small)
    notes = load_pretrained_resnet(dst, str(path))
    assert any("dropped the ImageNet classifier" in n for n in notes)
    assert torch.equal(dst.layer3[0].conv2.weight, src.layer3[0].conv2.weight)
    deeper = ResNet(ResNetConfig(layers=(1, 2, 1, 1), base_width=8))
    with pytest.raises(RefbenchError, match=r"missing .*layer2\.\*\.conv1"):
        load_pretrained_resnet(deeper, str(path))


def _official_dmmi_res_layout(base: int) -> dict[str, tuple[int, ...]]:
    """``backbone.layer*`` keys of the official ``dmmi_res``: layer1 = Sequential(conv1, bn1, relu,
    maxpool, layer1), so torchvision's stem and layer1 sit under 0 / 1 / 4."""
    expect = {}
    for k, shape in _torchvision_resnet_layout((3, 4, 23, 3), num_classes=0, base=base).items():
        if k.startswith("conv1."):
            expect["backbone.layer1.0." + k[len("conv1."):]] = shape
        elif k.startswith("bn1."):
            expect["backbone.layer1.1." + k[len("bn1."):]] = shape
        elif k.startswith("layer1."):
            expect["backbone.layer1.4." + k[len("layer1."):]] = shape
        else:
            expect["backbone." + k] = shape
    return expect


def _check_resnet_variant(model, base: int, lang: int, size: int) -> None:
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("text_encoder.")}
    assert {k: v for k, v in sd.items() if k.startswith("backbone.layer")} == _official_dmmi_res_layout(base)
    dims = [4 * base * 2 ** i for i in range(4)]
    for i, c in enumerate(dims, start=1):
        p = f"backbone.all_fusion{i}"
        assert sd[f"{p}.fusion.image_lang_att.refineimg55.f_query2.0.weight"] == (c, c // 4 * 25, 1)
        assert sd[f"{p}.fusion.image_lang_att.refinelan31.f_query.0.weight"] == (c // 3, lang, 1)
        assert sd[f"{p}.res_gate.0.weight"] == (c, c) and sd[f"{p}.W_l.0.weight"] == (lang, lang, 1)
        # trainable gates: official ResNet blocks keep torch's default Linear init (never both-zero)
        gate = getattr(model.backbone, f"all_fusion{i}").res_gate
        assert torch.count_nonzero(gate[0].weight) > 0 and torch.count_nonzero(gate[2].weight) > 0
    assert {k.split(".")[1] for k in sd if k.startswith("backbone.")} == {
        "layer1", "layer2", "layer3", "layer4", "all_fusion1", "all_fusion2", "all_fusion3", "all_fusion4"}
    assert sd["classifier.conv1_4.weight"] == (lang, dims[3] + dims[2], 3, 3)
    assert sd["classifier.conv1_2.weight"] == (lang, lang + dims[0], 3, 3)
    assert sd["contrastive.align_lan.0.weight"] == (lang, lang, 1)
    images, ids, att = _inputs(1, size)
    with torch.no_grad():
        feats = model.forward_features(images, ids, att)
        logits = model(images, ids, att)
    assert logits.shape == (1, 2, size, size)
    assert [feats[f"s{i}"].shape[1] for i in range(1, 5)] == dims
    assert feats["s1"].shape[-1] == size // 4 and feats["s4"].shape[-1] == -(-size // 32)


def test_resnet101_variant_wiring_at_small_width():
    """Variant ``resnet101`` code path (ResNet-101 depth, official key names) at 1/8 width."""
    from baselines.common.bert import BertEncoderConfig
    from baselines.common.resnet import ResNetConfig
    from baselines.dmmi.model import build

    torch.manual_seed(0)
    model = build("resnet101", input_size=64, resnet=ResNetConfig(layers=(3, 4, 23, 3), base_width=8),
                  text=BertEncoderConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=64),
                  decoder_hidden=64, decoder_heads=2, decoder_ffn=64).eval()
    _check_resnet_variant(model, base=8, lang=64, size=64)


@pytest.mark.slow
def test_resnet101_variant_official_key_layout():
    """The full-width variant (about 30 s to build here): shapes of the official dmmi_res checkpoint."""
    from baselines.common.bert import BertEncoderConfig
    from baselines.dmmi.model import build

    torch.manual_seed(0)
    # a 1-layer BERT of the same width keeps the build quicker; the language width stays 768
    model = build("resnet101", input_size=96, text=BertEncoderConfig(num_layers=1)).eval()
    _check_resnet_variant(model, base=64, lang=768, size=96)
    assert sum(p.numel() for n, p in model.named_parameters() if not n.startswith("text_encoder.")) == 296_818_456
