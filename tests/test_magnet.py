"""MagNet: official-checkpoint parity (case A), structure, the tiny variant's interface, loading,
training step, and the plain-PyTorch multi-scale deformable attention."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from parity_fixtures import make_weights_module, parity_root
import torch
import torch.nn.functional as F

from refbench.core.checkpoint import save_checkpoint
from baselines.common.msdeform_attn import MSDeformAttn, ms_deform_attn_sample, reference_points
from refbench.core.errors import RefbenchError
from refbench.core.models import RISModel, build_model, get_model_info

OFFICIAL = ("image_model", "language_model", "classifier", "lang_proj")


def _parity_root() -> Path:
    return parity_root("magnet")


def _import_make_weights(root: Path):
    return make_weights_module(root)


def _assert_probe(case, name: str, tensor: torch.Tensor, val_atol: float, mean_atol: float, std_rtol: float) -> None:
    t = tensor.detach().double().numpy()
    assert t.shape == tuple(case[f"probe.{name}.shape"]), name
    np.testing.assert_allclose(t.flat[case[f"probe.{name}.idx"]], case[f"probe.{name}.val"], atol=val_atol, rtol=0,
                               err_msg=name)
    np.testing.assert_allclose(t.mean(), case[f"probe.{name}.mean"], atol=mean_atol, rtol=0, err_msg=name)
    np.testing.assert_allclose(t.std(), case[f"probe.{name}.std"], rtol=std_rtol, atol=0, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Parity with the official MagNet code (fixtures: tests/fixtures/parity, README there)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # ~90 s on a 2-core CPU: 297 M generated weights + a 2 x 480² forward
def test_parity_case_a():
    root = _parity_root()
    mw = _import_make_weights(root)
    spec = json.loads((root / "magnet" / "spec.json").read_text())
    case = np.load(root / "magnet" / "case_a.npz")

    # 1. weights in the official layout {'model': ...} (BERT inside, under language_model.)
    ckpt = mw.make_checkpoint(spec, seed=0)
    assert mw.state_dict_digest(ckpt) == spec["weights_content_sha256"]["seed0"]
    ckpt["model"] = {"module." + k: v for k, v in ckpt["model"].items()}  # as saved from DDP

    torch.manual_seed(0)
    model = build_model("magnet", variant="paper")
    own = model.state_dict()
    # 2. integer buffers the model computes itself equal the official ones
    for key, digest in spec["int_buffer_digests"].items():
        assert mw.int_buffer_digest(own[key]) == digest, key
    # key set, shapes and parameter counts of the official part equal the spec's
    official = model.official_state_view().state_dict()
    assert [(k, list(official[k].shape)) for k, _, _ in spec["model"]] == [(k, s) for k, s, _ in spec["model"]]
    assert len(official) == spec["param_count"]["model"]["state_dict_entries"] == 1310
    params = {n: sum(p.numel() for p in getattr(model, n).parameters()) for n in OFFICIAL}
    assert params == spec["param_count"]["model"]["parameters_by_child"]
    assert sum(params.values()) == spec["param_count"]["model"]["parameters"] == 296_984_954

    # 3. strict load through the public loader (integer buffers absent: the model's own are kept)
    notes = model.load_checkpoint(ckpt)
    assert notes[0] == "official layout: dicts 'model'"
    assert any("kept 24 self-computed integer buffers" in n for n in notes)
    assert "training-only modules (mask_grounding" in notes[-1]
    model.eval()

    # 4. case A
    image, ids, mask = (torch.from_numpy(case[k]) for k in ("image", "input_ids", "attention_mask"))
    with torch.no_grad():
        out = model.forward_head(image, ids, mask)
        logits = model(image, ids, mask)
        pred = model.predict(image, ids, mask).numpy()

    # 5. compare (tolerances of the fixture README, MagNet column)
    torch.testing.assert_close(logits, out["logits"], atol=0, rtol=0)
    torch.testing.assert_close(logits, torch.from_numpy(case["logits"]), atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(out["pred_masks"], torch.from_numpy(case["pred_masks"]), atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(out["pred_logits"], torch.from_numpy(case["pred_logits"]), atol=1e-3, rtol=0)
    for name in ("s1", "s2", "s3", "s4"):
        _assert_probe(case, name, out[name], val_atol=1e-4, mean_atol=1e-5, std_rtol=1e-5)
    _assert_probe(case, "lang_final", out["lang_final"], val_atol=2e-4, mean_atol=1e-5, std_rtol=1e-5)
    ref_pred = case["pred_mask"].astype(bool)
    for b in range(2):
        differ = pred[b] != ref_pred[b]
        assert differ.mean() < 1e-3, f"sample {b}: {differ.mean():.4%} of pixels differ"
        assert (np.abs(case["logits"][b, 0][differ]) < 1e-3).all(), f"sample {b}: a flipped pixel had a clear margin"
    assert pred.sum((1, 2)).tolist() == ref_pred.sum((1, 2)).tolist() == [4, 13]


# ---------------------------------------------------------------------------------------------
# tiny variant: same code, small widths
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("magnet", variant="tiny").eval()


def _batch(model, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = model.input_size
    ids = torch.randint(1000, 3000, (b, 20), generator=g)
    mask = torch.ones(b, 20, dtype=torch.int64)
    mask[0, 8:] = 0
    ids = ids * mask
    ids[:, 0] = 101
    ids[0, 7] = 102
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    gt = torch.stack([(yy - s * (0.3 + 0.4 * i / max(b - 1, 1))) ** 2 + (xx - s / 2) ** 2 < (s / 5) ** 2
                      for i in range(b)])
    return {"image": torch.randn(b, 3, s, s, generator=g), "input_ids": ids, "attention_mask": mask, "mask": gt,
            "type": ["one"] * b}


def test_registry_entry():
    info = get_model_info("magnet")
    assert (info.variants, info.protocol, info.binarize) == (("paper", "all", "tiny"), "lavt", "sigmoid>0.5")
    official = {c.file: c for c in info.checkpoints if c.kind == "official"}
    assert len(official) == 5 and official["magnet_all.pth"].variant == "all"
    assert info.protocol_for("all") == "lavt-448" and len(official["magnet_all.pth"].datasets) == 4
    assert "lavt-448" in info.description
    from baselines.magnet.config import ALL, PAPER

    # magnet_all.pth: the paper network at 448 (its protocol lavt-448 scores on a 448 canvas)
    assert ALL == dataclasses.replace(PAPER, variant="all", input_size=448)


def test_odd_input_size_runs_end_to_end(tiny):
    """168² gives 42/21/11/6 maps: odd patch merging, window padding, non-square pooling cells."""
    b = _batch(tiny)
    image = F.interpolate(b["image"], size=(168, 168), mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = tiny.forward_head(image, b["input_ids"], b["attention_mask"])
    assert [tuple(out[f"s{i}"].shape[-2:]) for i in range(1, 5)] == [(42, 42), (21, 21), (11, 11), (6, 6)]
    assert out["logits"].shape == (2, 1, 168, 168) and torch.isfinite(out["logits"]).all()


def test_interface_and_official_binarization(tiny):
    assert isinstance(tiny, RISModel)
    assert (tiny.name, tiny.variant, tiny.binarize_rule, tiny.input_size) == ("magnet", "tiny", "sigmoid>0.5", 160)
    assert (tiny.text_encoder_kind, tiny.token_length, tiny.normalization) == ("bert", 20, "imagenet")
    b = _batch(tiny)
    with torch.no_grad():
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        out = tiny.forward_head(b["image"], b["input_ids"], b["attention_mask"])
        masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert logits.shape == (2, 1, 160, 160) and logits.dtype == torch.float32
    assert out["pred_masks"].shape == (2, 1, 40, 40) and out["pred_logits"].shape == (2, 1, 2)
    assert [tuple(out[f"s{i}"].shape[1:]) for i in range(1, 5)] == [(32, 40, 40), (64, 20, 20), (128, 10, 10),
                                                                    (256, 5, 5)]
    assert out["lang_final"].shape == (2, 20, 64) and out["mask_features"].shape == (2, 32, 40, 40)
    assert len(out["predictions"]) == tiny.config.head.decoder_layers + 1
    # official: bilinear (align_corners=True) upsampling of pred_masks, then sigmoid > 0.5; with one
    # query the class softmax over the query axis is exactly 1, so class_embed has no effect
    up = F.interpolate(out["pred_masks"], size=(160, 160), mode="bilinear", align_corners=True)
    assert torch.equal(logits, up)
    prob = torch.einsum("bqc,bqhw->bchw", out["pred_logits"].softmax(dim=1)[..., 1:], up.sigmoid())
    assert torch.equal(prob, up.sigmoid())
    assert masks.dtype == torch.bool and torch.equal(masks, logits[:, 0].sigmoid() > 0.5)


def test_batch_composition_does_not_matter(tiny):
    b = _batch(tiny, b=3)
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
        alone = tiny(b["image"][1:2], b["input_ids"][1:2], b["attention_mask"][1:2])
    torch.testing.assert_close(alone, ref[1:2], atol=1e-4, rtol=1e-4)


def test_language_side_attention_reproduces_the_extended_mask_quirk(tiny, monkeypatch):
    """Real words get a zero query (uniform attention over pixels); padded words a -10000-scaled one."""
    import baselines.magnet.model as magnet_model

    pwam = tiny.language_model.pwams[0]
    b = _batch(tiny)
    words, pixels = torch.randn(2, 20, 64), torch.randn(2, 40 * 40, 32)
    ext = tiny.language_model.extended_attention_mask(b["attention_mask"])
    captured = {}
    original = magnet_model.masked_word_attention

    def spy(query, key, value, key_mask=None, **kw):
        captured.update(query=query, out=original(query, key, value, key_mask=key_mask, **kw), value=value)
        return captured["out"]

    monkeypatch.setattr(magnet_model, "masked_word_attention", spy)
    with torch.no_grad():
        pwam(words, pixels, ext)
        raw = pwam.image_lang_att.f_query(words.transpose(1, 2)).transpose(1, 2)
    real = b["attention_mask"].bool()
    assert torch.equal(captured["query"][real], torch.zeros_like(captured["query"][real]))
    torch.testing.assert_close(captured["query"][~real], -10000.0 * raw[~real])
    # a zero query attends uniformly: the mean over pixels of the (instance-normalized) values
    uniform = captured["value"].mean(-1)[:, None, :].expand(-1, 20, -1)
    torch.testing.assert_close(captured["out"][real], uniform[real], atol=1e-6, rtol=0)


def test_bf16_autocast_forward(tiny):
    b = _batch(tiny)
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
            masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert torch.isfinite(logits.float()).all() and masks.shape == (2, 160, 160)
    assert (logits.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_training_step_reduces_total_loss():
    torch.manual_seed(0)
    model = build_model("magnet", variant="tiny").train()
    b = _batch(model)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def total_loss() -> torch.Tensor:  # same masked words and CAL pixels every time
        return model.loss(b, generator=torch.Generator().manual_seed(7))["total"]

    for step in range(2):
        loss = total_loss()
        if step == 0:
            before = loss.item()
        opt.zero_grad()
        loss.backward()
        if step == 0:  # every part of the network, and Mask Grounding, gets gradient
            for part in (*OFFICIAL, "mask_grounding"):
                grads = [p.grad for p in getattr(model, part).parameters() if p.grad is not None]
                assert grads and any(g.abs().sum() > 0 for g in grads), part
        opt.step()
    with torch.no_grad():
        after = total_loss().item()
    assert after < before - 0.02 * abs(before), (before, after)


def test_loss_input_errors(tiny):
    b = _batch(tiny)
    with pytest.raises(RefbenchError, match="lacks 'mask'"):
        tiny.loss({k: v for k, v in b.items() if k != "mask"})
    with pytest.raises(RefbenchError, match=r"batch\['mask'\] must be \(B, H, W\)"):
        tiny.loss({**b, "mask": b["mask"][:, :10]})
    with pytest.raises(RefbenchError, match="must be binary"):
        tiny.loss({**b, "mask": b["mask"].float() * 0.5})
    with pytest.raises(RefbenchError, match="must list one of"):
        tiny.loss({**b, "type": ["none", "one"]})
    with pytest.raises(RefbenchError, match="must list one of"):
        tiny.loss({**b, "type": ["one"]})


def test_bad_inputs(tiny):
    b = _batch(tiny)
    with pytest.raises(RefbenchError, match="images must be float"):
        tiny(b["image"][:, :1], b["input_ids"], b["attention_mask"])
    with pytest.raises(RefbenchError, match="token ids must lie"):
        tiny(b["image"], b["input_ids"] + 40000, b["attention_mask"])
    with pytest.raises(RefbenchError, match="input_ids hold 1 sentences for 2 images"):
        tiny(b["image"], b["input_ids"][:1], b["attention_mask"][:1])
    with pytest.raises(RefbenchError, match="unknown MagNet config field 'windo'"):
        build_model("magnet", variant="tiny", windo=3)


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
def _official_layout(model) -> dict:
    """What the released files hold: {'model': official keys only, DDP 'module.' prefix}."""
    sd = model.official_state_view().state_dict()
    return {"model": {"module." + k: v for k, v in sd.items()}}


def test_official_checkpoint_loads_and_reports_training_modules(tiny, tmp_path):
    b = _batch(tiny)
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
    torch.save(_official_layout(tiny), tmp_path / "magnet_refcoco.pth")
    torch.manual_seed(1)
    fresh = build_model("magnet", variant="tiny").eval()
    grounding_before = {k: v.clone() for k, v in fresh.mask_grounding.state_dict().items()}
    notes = fresh.load_checkpoint(str(tmp_path / "magnet_refcoco.pth"))
    assert notes[0] == "official layout: dicts 'model'"
    assert sum("training-only modules" in n for n in notes) == 1
    assert "mask_grounding" in notes[-1] and "fresh initialisation" in notes[-1]
    assert all(torch.equal(v, fresh.mask_grounding.state_dict()[k]) for k, v in grounding_before.items())
    with torch.no_grad():
        assert torch.equal(fresh(b["image"], b["input_ids"], b["attention_mask"]), ref)


def test_refbench_checkpoint_roundtrips_training_modules(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ours.pth", trained_on="synthetic")
    torch.manual_seed(1)
    fresh = build_model("magnet", variant="tiny")
    notes = fresh.load_checkpoint(tmp_path / "ours.pth")
    assert not any("training-only" in n for n in notes)
    loaded = fresh.state_dict()
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, loaded[k]), k


def test_wrong_checkpoints_give_one_clear_error(tiny, tmp_path):
    partial = _official_layout(tiny)
    del partial["model"]["module.classifier.predictor.class_embed.weight"]
    with pytest.raises(RefbenchError, match=r"missing 1 \[classifier.predictor.class_embed") as err:
        tiny.load_checkpoint(partial)
    assert "\n" not in str(err.value)
    torch.manual_seed(0)
    paper_sized = build_model("magnet", variant="tiny", pyramid_reduction=2)
    with pytest.raises(RefbenchError, match="shape mismatch"):
        tiny.load_checkpoint(_official_layout(paper_sized))
    lavt_like = {"model": {"backbone.patch_embed.proj.weight": torch.zeros(1)}, "bert_model": {"x": torch.zeros(1)}}
    with pytest.raises(RefbenchError, match="looks like a checkpoint of another model"):
        tiny.load_checkpoint(lavt_like)
    save_checkpoint(build_model("lavt", variant="tiny"), tmp_path / "lavt.pth")
    with pytest.raises(RefbenchError, match="refbench checkpoint of model 'lavt'"):
        tiny.load_checkpoint(str(tmp_path / "lavt.pth"))


# ---------------------------------------------------------------------------------------------
# multi-scale deformable attention (baselines/common/msdeform_attn.py)
# ---------------------------------------------------------------------------------------------
def test_deformable_sampling_reads_pixel_centres_and_pads_with_zeros():
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (2, 2)]
    value = torch.randn(1, 3 * 4 + 2 * 2, 2, 5, generator=g)  # (B, S, heads, D)
    # query 0 reads pixel (row 1, col 2) of level 0 with all its weight; query 1 reads outside the map
    loc = torch.zeros(1, 2, 2, 2, 1, 2)
    loc[0, 0, :, 0, 0] = torch.tensor([(2 + 0.5) / 4, (1 + 0.5) / 3])
    loc[0, 1, :, :, 0] = torch.tensor([5.0, 5.0])
    weights = torch.zeros(1, 2, 2, 2, 1)
    weights[:, :, :, 0] = 1.0
    out = ms_deform_attn_sample(value, shapes, loc, weights)  # (B, Q, heads·D)
    torch.testing.assert_close(out[0, 0], value[0, 1 * 4 + 2].reshape(-1))
    assert torch.equal(out[0, 1], torch.zeros(10))
    # halfway between two pixel centres: the mean of both
    loc[0, 0, :, 0, 0] = torch.tensor([2.0 / 4, (1 + 0.5) / 3])
    out = ms_deform_attn_sample(value, shapes, loc, weights)
    torch.testing.assert_close(out[0, 0], (value[0, 1 * 4 + 1] + value[0, 1 * 4 + 2]).reshape(-1) / 2)


def test_msdeform_attn_module_shapes_and_reference_points():
    ref = reference_points([(2, 4), (1, 1)])
    assert ref.shape == (1, 9, 2, 2)
    expected = torch.tensor([[0.125, 0.25], [0.375, 0.25], [0.625, 0.25], [0.875, 0.25]])
    torch.testing.assert_close(ref[0, :4, 0], expected)
    torch.testing.assert_close(ref[0, 8, 1], torch.tensor([0.5, 0.5]))
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    x = torch.randn(2, 9, 16)
    out = attn(x, ref, x, [(2, 4), (1, 1)])
    assert out.shape == (2, 9, 16)
    with pytest.raises(ValueError, match="does not match"):
        attn(x, ref, x, [(2, 4)])
    # uniform initial attention over the 2·3 samples of each head
    w = attn.attention_weights(x).view(2, 9, 4, 6).softmax(-1)
    torch.testing.assert_close(w, torch.full_like(w, 1 / 6))
