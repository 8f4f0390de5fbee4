"""MERES: every step of the visual expression extractor (shapes, top-k mask, normalisation over the
selected pixels only, padded tokens ignored), the pixel contrastive loss on hand-checkable cases,
the decoder's guidance sets, every ablation switch of Tables 3–4, loss/gradients, checkpoints,
errors, and a few training steps that reduce the loss."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from refbench.core.checkpoint import save_checkpoint
from baselines.meres.config import ABLATIONS, PAPER, TINY, MERESConfig
from baselines.meres.extractor import (AdaptiveSelection, SemanticRefinement, VisualRelationshipModeling,
                                       linguistic_cue_mask, topk_selective_mask, topk_weighted_average_pooling)
from baselines.meres.losses import PixelContrastiveLoss, pixel_contrastive_loss, relevance_targets
from baselines.meres.model import build
from refbench.core.errors import RefbenchError
from refbench.core.models import RISModel, build_model, get_model_info


def _small(**changes) -> MERESConfig:
    return dataclasses.replace(TINY, **changes)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build("tiny").eval()


def _batch(size: int = 160, b: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (b, 20), generator=g)
    att = torch.ones(b, 20, dtype=torch.int64)
    att[0, 8:] = 0                                   # sample 0: 8 real tokens, 12 padded
    ids = ids * att
    ids[:, 0] = 101
    mask = torch.zeros(b, size, size, dtype=torch.bool)
    mask[:, size // 4: size // 2, size // 8: size // 2] = True
    return {"image": torch.randn(b, 3, size, size, generator=g), "input_ids": ids, "attention_mask": att,
            "mask": mask, "type": ["one"] * b, "sample_id": [f"s{i}" for i in range(b)],
            "sentence": ["x"] * b}


# -- registry and interface -------------------------------------------------------------------------

def test_registry_entry():
    info = get_model_info("meres")
    assert info.variants == ("paper", "clip", "tiny") and info.protocol == "lavt"
    assert info.binarize == "sigmoid>0.5" and not [c for c in info.checkpoints if c.kind == "official"]


def test_interface_and_shapes(tiny):
    assert isinstance(tiny, RISModel)
    assert (tiny.name, tiny.variant, tiny.binarize_rule, tiny.input_size) == ("meres", "tiny", "sigmoid>0.5", 160)
    assert (tiny.text_encoder_kind, tiny.token_length, tiny.text_encoder_prefix) == ("bert", 20, "text_encoder.")
    b = _batch()
    with torch.no_grad():
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        feats = tiny.forward_features(b["image"], b["input_ids"], b["attention_mask"])
        masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert logits.shape == (2, 1, 160, 160) and logits.dtype == torch.float32
    assert [tuple(f.shape[1:]) for f in feats["features"]] == [(32, 40, 40), (64, 20, 20), (128, 10, 10), (256, 5, 5)]
    ve = feats["extractor"]
    t, n, d = 20, 25, 64
    assert feats["grid"] == (5, 5) and feats["words"].shape == feats["enhanced"].shape == (2, t, d)
    assert ve.relevance.shape == ve.selected.shape == (2, t, n) and ve.relevance.dtype == torch.float32
    assert ve.aggregated.shape == ve.refined.shape == ve.tokens.shape == (2, t, d)
    # G = {Q̂_l, Q̂_v}: 2T tokens, padded words of sample 0 excluded in both halves
    assert feats["guidance"].shape == (2, 2 * t, d)
    assert feats["guidance_mask"][0].tolist() == ([True] * 8 + [False] * 12) * 2
    assert feats["guidance_mask"][1].all()
    assert torch.equal(feats["guidance"][:, :t], feats["enhanced"]) and torch.equal(feats["guidance"][:, t:], ve.tokens)
    assert feats["logits_lowres"].shape == (2, 1, 40, 40)
    assert torch.equal(logits, F.interpolate(feats["logits_lowres"], size=(160, 160), mode="bilinear",
                                             align_corners=False))
    assert masks.dtype == torch.bool and torch.equal(masks, torch.sigmoid(logits[:, 0]) > 0.5)


# -- adaptive selection (Eqs. 1–2) ------------------------------------------------------------------

def test_k_is_the_papers_ratio_of_pixels():
    assert PAPER.topk_ratio == 0.3
    assert PAPER.num_selected(15 * 15) == 68          # 480² input: 15×15 stage-4 map, 30 % = 67.5
    assert TINY.num_selected(5 * 5) == 8              # 7.5 rounds half up
    assert TINY.num_selected(1) == 1
    assert _small(topk_ratio=0.1).num_selected(225) == 23 and _small(topk_ratio=0.8).num_selected(225) == 180
    assert _small(topk_ratio=1.0).num_selected(7) == 7


def test_relevance_is_cosine_of_the_joint_projections_and_topk_selects_the_best():
    torch.manual_seed(0)
    sel = AdaptiveSelection(16, 12, _small(joint_dim=8))
    pixels, words = torch.randn(2, 25, 16), torch.randn(2, 5, 12)
    relevance, selected = sel(pixels, words)
    x, y = sel.phi_v(pixels), sel.phi_l(words)
    expected = F.cosine_similarity(y[:, :, None, :], x[:, None, :, :], dim=-1)
    torch.testing.assert_close(relevance, expected, atol=1e-5, rtol=1e-5)
    assert relevance.shape == (2, 5, 25) and relevance.abs().max() <= 1 + 1e-6
    assert selected.dtype == torch.bool and (selected.sum(-1) == 8).all()
    lowest_kept = relevance.masked_fill(~selected, float("inf")).amin(-1)
    highest_dropped = relevance.masked_fill(selected, float("-inf")).amax(-1)
    assert (lowest_kept > highest_dropped).all()
    m = topk_selective_mask(selected)
    assert (m[selected] == 0).all() and torch.isinf(m[~selected]).all() and (m[~selected] < 0).all()


def test_threshold_and_no_selection_ablations():
    s = torch.tensor([[[0.3, -0.2, 0.1, -0.5], [-0.4, -0.1, -0.3, -0.9]]])
    thr = AdaptiveSelection(4, 4, _small(selection="threshold")).select(s)
    # sigma(S/tau) > 0.5 <=> S > 0; a token with no positive score keeps its best pixel
    assert thr.tolist() == [[[True, False, True, False], [False, True, False, False]]]
    assert AdaptiveSelection(4, 4, _small(selection="none")).select(s).all()
    top = AdaptiveSelection(4, 4, _small(topk_ratio=0.5)).select(s)
    assert top.tolist() == [[[True, False, True, False], [False, True, True, False]]]


# -- semantic refinement (Eqs. 4–8) -----------------------------------------------------------------

def test_topk_weighted_average_pooling_normalises_over_selected_pixels_only():
    s = torch.tensor([[[0.9, 0.1, 0.5, -0.3], [0.2, 0.8, -0.6, 0.4]]])
    selected = torch.tensor([[[True, False, True, False], [False, True, False, True]]])
    pixels = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [-1.0, 4.0]]])
    pooled = topk_weighted_average_pooling(s, selected, pixels)
    # by hand: token 0 softmax over {0.9, 0.5}, token 1 over {0.8, 0.4}, then 1/K with K = 2
    w0 = torch.tensor([0.9, 0.5]).softmax(0)
    w1 = torch.tensor([0.8, 0.4]).softmax(0)
    expected = torch.stack([(w0[0] * pixels[0, 0] + w0[1] * pixels[0, 2]) / 2,
                            (w1[0] * pixels[0, 1] + w1[1] * pixels[0, 3]) / 2])[None]
    torch.testing.assert_close(pooled, expected)
    # unselected pixels do not matter ... unless the top-k mask is left out of Eq. 6 (Table 4f)
    other = pixels.clone()
    other[0, 1] += 100.0                                   # unselected by token 0
    assert torch.equal(topk_weighted_average_pooling(s, selected, other)[0, 0], pooled[0, 0])
    unmasked = topk_weighted_average_pooling(s, selected, pixels, use_mask=False)
    torch.testing.assert_close(unmasked[0, 0], s[0, 0].softmax(0) @ pixels[0] / 2)
    # gradients reach S only through the selected entries (the top-k itself is discrete)
    s_grad = s.clone().requires_grad_(True)
    topk_weighted_average_pooling(s_grad, selected, pixels).sum().backward()
    assert (s_grad.grad[~selected] == 0).all() and (s_grad.grad[selected] != 0).all()


def test_masked_cross_attention_sees_only_the_selected_pixels():
    torch.manual_seed(0)
    refine = SemanticRefinement(16, 12, TINY).eval()
    relevance = torch.randn(2, 3, 9)
    selected = torch.zeros(2, 3, 9, dtype=torch.bool)
    selected[..., :4] = True                              # pixels 4..8 unselected for every token
    pixels = torch.randn(2, 9, 16)
    aggregated, refined = refine(relevance, selected, pixels, (3, 3))
    assert aggregated.shape == refined.shape == (2, 3, 12) and not torch.equal(aggregated, refined)
    other = pixels.clone()
    other[:, 4:] = torch.randn(2, 5, 16) * 10
    a2, r2 = refine(relevance, selected, other, (3, 3))
    torch.testing.assert_close(a2, aggregated, atol=0, rtol=0)
    torch.testing.assert_close(r2, refined, atol=1e-6, rtol=1e-6)
    other[:, 0] += 1.0                                     # a selected pixel does matter
    assert not torch.allclose(refine(relevance, selected, other, (3, 3))[1], refined)
    plain = SemanticRefinement(16, 12, _small(semantic_refinement=False))
    a3, r3 = plain(relevance, selected, pixels, (3, 3))
    assert r3 is a3 and plain.mca is None


# -- visual relationship modeling (Eq. 9) and padded tokens -----------------------------------------

def test_relationship_modeling_ignores_padded_tokens():
    torch.manual_seed(0)
    rel = VisualRelationshipModeling(12, TINY).eval()
    x = torch.randn(2, 6, 12)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    out = rel(x, mask)
    y = x.clone()
    y[0, 4:] = torch.randn(2, 12) * 5
    torch.testing.assert_close(rel(y, mask)[0, :4], out[0, :4], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(rel(x, torch.ones_like(mask))[0, :4], out[0, :4])   # the mask is what does it


def test_linguistic_cue_masks():
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    assert torch.equal(linguistic_cue_mask(mask, "global+local"), mask)
    assert linguistic_cue_mask(mask, "global").tolist() == [[True, False, False, False]] * 2
    assert linguistic_cue_mask(mask, "local").tolist() == [[False, True, True, False], [False, True, False, False]]
    only_cls = torch.tensor([[True, False, False], [True, True, False]])
    assert linguistic_cue_mask(only_cls, "local").tolist() == [[True, False, False], [False, True, False]]


def test_padded_words_change_nothing(tiny):
    b = _batch(b=3)
    other = b["input_ids"].clone()
    other[0, 8:] = 555                                     # padded positions of sample 0 get other ids
    with torch.no_grad():
        ref = tiny.forward_features(b["image"], b["input_ids"], b["attention_mask"])
        alt = tiny.forward_features(b["image"], other, b["attention_mask"])
        alone = tiny(b["image"][1:2], b["input_ids"][1:2], b["attention_mask"][1:2])
    # the padded tokens themselves did change (so the test can fail) ...
    assert not torch.allclose(ref["extractor"].tokens[0, 8:], alt["extractor"].tokens[0, 8:])
    # ... but neither the real tokens nor the mask logits did
    torch.testing.assert_close(alt["extractor"].tokens[0, :8], ref["extractor"].tokens[0, :8], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alt["logits_lowres"], ref["logits_lowres"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, F.interpolate(ref["logits_lowres"][1:2], size=(160, 160), mode="bilinear"),
                               atol=1e-4, rtol=1e-4)


# -- objective (Eq. 3 + BCE) ------------------------------------------------------------------------

def test_pixel_contrastive_loss_by_hand():
    s = torch.tensor([[1.0, -1.0, 0.0]])
    positive = torch.tensor([[True, False, True]])
    # logits s/tau = [2, -2, 0]: -log σ(2), -log(1 - σ(-2)) = -log σ(2), -log σ(0); mean
    expected = (2 * math.log1p(math.exp(-2.0)) + math.log(2.0)) / 3
    assert abs(expected - 0.3156678) < 1e-6
    got = pixel_contrastive_loss(s, positive, torch.tensor(0.5))
    assert abs(got.item() - expected) < 1e-6
    module = PixelContrastiveLoss(temperature_init=0.5)
    assert abs(module.temperature.item() - 0.5) < 1e-7
    loss = module(s, positive)
    assert abs(loss.item() - expected) < 1e-6
    loss.backward()
    assert module.log_temperature.grad is not None and module.log_temperature.grad != 0   # τ is learnable
    # a perfect, confident map costs ~0; the reversed map costs a lot
    perfect = pixel_contrastive_loss(torch.tensor([[1.0, -1.0]]), torch.tensor([[True, False]]), torch.tensor(0.01))
    assert perfect < 1e-20
    assert pixel_contrastive_loss(torch.tensor([[-1.0, 1.0]]), torch.tensor([[True, False]]), torch.tensor(0.1)) > 9.9
    clamped = PixelContrastiveLoss(temperature_init=0.5, temperature_min=0.3)
    with torch.no_grad():
        clamped.log_temperature.fill_(math.log(0.001))
    assert abs(clamped.temperature.item() - 0.3) < 1e-7


def test_relevance_targets_on_the_stage4_grid():
    mask = torch.zeros(3, 8, 8)
    mask[0, :4, :4] = 1                                    # exactly the top-left cell of a 2×2 grid
    mask[0, 4:6, 4:8] = 1                                  # half of the bottom-right cell
    mask[1, 7, 7] = 1                                      # one pixel: its cell is still relevant
    assert relevance_targets(mask, (2, 2)).tolist() == [[True, False, False, True], [False, False, False, True],
                                                         [False, False, False, False]]
    assert relevance_targets(mask, (2, 2), positive_fraction=0.6)[0].tolist() == [True, False, False, False]


def test_loss_terms_and_gradients():
    torch.manual_seed(0)
    model = build("tiny").train()
    b = _batch()
    out = model.loss(b)
    assert set(out) == {"bce", "contrastive", "total"}
    torch.testing.assert_close(out["total"], out["bce"] + model.config.contrastive_weight * out["contrastive"])
    out["total"].backward()
    for name in ("backbone", "text_encoder", "linguistic_enhancement", "extractor.adaptive_selection.phi_v",
                 "extractor.adaptive_selection.phi_l", "extractor.semantic_refinement.mca",
                 "extractor.relationship_modeling", "decoder", "contrastive"):
        grads = [p.grad for p in model.get_submodule(name).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(b["image"], b["input_ids"], b["attention_mask"])
        logits = F.interpolate(feats["logits_lowres"], size=(160, 160), mode="bilinear")
        bce = F.binary_cross_entropy_with_logits(logits[:, 0], b["mask"].float())
        positive = relevance_targets(b["mask"].float(), (5, 5))
        tau = model.contrastive.temperature
        lc = F.binary_cross_entropy_with_logits(feats["extractor"].relevance[:, 0] / tau, positive.float())
        got = model.loss({**b, "mask": b["mask"].long()})      # 0/1 integers work as well as bool
    torch.testing.assert_close(got["bce"], bce)
    torch.testing.assert_close(got["contrastive"], lc)
    # GT rows 40-79, cols 20-79 on 32-px cells: cell (1, 1) is 75 % covered, (2, 1) 50 %, the rest less
    assert positive[0].nonzero().flatten().tolist() == [6, 11] and torch.equal(positive[0], positive[1])


def test_bf16_autocast_forward(tiny):
    b = _batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
        feats = tiny.forward_features(b["image"], b["input_ids"], b["attention_mask"])
    assert torch.isfinite(logits.float()).all() and masks.shape == (2, 160, 160)
    assert feats["extractor"].relevance.dtype == torch.float32


# -- ablations (Table 3, Table 4) -------------------------------------------------------------------

@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_every_ablation_builds_and_trains(ablation):
    torch.manual_seed(0)
    model = build("tiny", ablation=ablation).train()
    b = _batch(size=96)
    out = model.loss(b)
    assert torch.isfinite(out["total"])
    out["total"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), \
        [n for n, p in model.named_parameters() if p.grad is None]
    cfg = model.config
    assert ("contrastive" in out) == (cfg.uses_visual_expression and cfg.contrastive_loss)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(b["image"], b["input_ids"], b["attention_mask"])
    t, n = 20, 9                                           # 96 px -> 3×3 stage-4 map
    ve = feats["extractor"]
    guidance_tokens = {"le": t, "enhanced_le": t, "ve": t, "enhanced_le+all_pixels": t + n, "enhanced_le+ve": 2 * t}
    assert feats["guidance"].shape[1] == guidance_tokens[cfg.guidance]
    if cfg.guidance == "le":
        assert model.linguistic_enhancement is None and ve is None and torch.equal(feats["guidance"], feats["words"])
    if cfg.guidance == "ve":
        assert torch.equal(feats["guidance"], ve.tokens) and torch.equal(feats["guidance_mask"], ve.token_mask)
    if ve is not None:
        counts = ve.selected.sum(-1)
        if cfg.selection == "topk":
            assert (counts == 3).all()                     # round(0.3 · 9)
        elif cfg.selection == "none":
            assert (counts == n).all()
        else:
            assert (counts >= 1).all() and torch.equal(ve.selected | (ve.relevance <= 0),
                                                       torch.ones_like(ve.selected))
        if not cfg.semantic_refinement:
            assert torch.equal(ve.refined, ve.aggregated)
        if not cfg.relationship_modeling:
            assert torch.equal(ve.tokens, ve.refined)
        cues = {"global+local": feats["token_mask"], "global": torch.tensor([[True] + [False] * 19] * 2),
                "local": feats["token_mask"] & torch.tensor([[False] + [True] * 19] * 2)}[cfg.linguistic_cues]
        assert torch.equal(ve.token_mask, cues)


def test_ve_only_and_full_model_train_a_few_steps():
    """A few AdamW steps on one batch reduce the loss, for the full model and the "VE only" row."""
    b = _batch(size=64, b=2, seed=3)
    for ablation in ("full", "ve_only"):
        torch.manual_seed(0)
        model = build("tiny", ablation=ablation).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        losses = []
        for _ in range(4):
            out = model.loss(b)
            opt.zero_grad()
            out["total"].backward()
            opt.step()
            losses.append(out["total"].item())
        assert losses[-1] < 0.8 * losses[0], (ablation, losses)


# -- weights, options, errors -----------------------------------------------------------------------

def test_checkpoint_roundtrip_and_mismatch(tiny, tmp_path):
    b = _batch()
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
    save_checkpoint(tiny, tmp_path / "meres_tiny.pth", trained_on="synthetic")
    torch.save(tiny.state_dict(), tmp_path / "bare.pth")
    for name in ("meres_tiny.pth", "bare.pth"):
        torch.manual_seed(1)
        fresh = build("tiny").eval()
        notes = fresh.load_checkpoint(str(tmp_path / name))
        assert notes and all(isinstance(n, str) for n in notes)
        with torch.no_grad():
            assert torch.equal(fresh(b["image"], b["input_ids"], b["attention_mask"]), ref), name
    ve_only = build("tiny", ablation="le_only")
    with pytest.raises(RefbenchError, match="unexpected .*linguistic_enhancement") as err:
        ve_only.load_checkpoint(str(tmp_path / "meres_tiny.pth"))
    assert "\n" not in str(err.value)
    lavt_like = build_model("lavt", variant="tiny")
    save_checkpoint(lavt_like, tmp_path / "lavt.pth")
    with pytest.raises(RefbenchError, match="refbench checkpoint of model 'lavt'"):
        tiny.load_checkpoint(str(tmp_path / "lavt.pth"))


def test_build_options_and_errors(tiny):
    model = build_model("meres", variant="tiny", input_size=128, topk_ratio=0.1)
    assert model.input_size == 128 and model.config.topk_ratio == 0.1
    assert build("tiny", ablation="ve_only", relationship_modeling=False).config.guidance == "ve"
    with pytest.raises(RefbenchError, match="unknown MERES ablation 've_onl'.*Did you mean 've_only'"):
        build("tiny", ablation="ve_onl")
    with pytest.raises(RefbenchError, match="unknown MERES config field 'top_k_ratio'"):
        build("tiny", top_k_ratio=0.2)
    with pytest.raises(RefbenchError, match="guidance must be one of"):
        build("tiny", guidance="everything")
    with pytest.raises(RefbenchError, match="topk_ratio must be in"):
        build("tiny", topk_ratio=0.0)
    with pytest.raises(RefbenchError, match="unknown variant"):
        build_model("meres", variant="huge")
    b = _batch()
    bad = b["attention_mask"].clone()
    bad[1, 0] = 0
    with pytest.raises(RefbenchError, match="global token at position 0"):
        tiny(b["image"], b["input_ids"], bad)
    with pytest.raises(RefbenchError, match="images must be float"):
        tiny(b["image"][:, :1], b["input_ids"], b["attention_mask"])
    with pytest.raises(RefbenchError, match="token ids must lie"):
        tiny(b["image"], b["input_ids"] + 40000, b["attention_mask"])
    with pytest.raises(RefbenchError, match="must hold 0/1 labels"):
        tiny.loss({**b, "mask": b["mask"].long() * 2})
    with pytest.raises(RefbenchError, match=r"batch\['mask'\] must be a \(B, H, W\)"):
        tiny.loss({**b, "mask": b["mask"][:, :10]})
    with pytest.raises(RefbenchError, match="lacks 'mask'"):
        tiny.loss({k: v for k, v in b.items() if k != "mask"})


def test_pretrained_init_from_local_files(tmp_path):
    from transformers import BertModel

    from baselines.common.swin import SwinTransformer

    torch.manual_seed(0)
    swin = SwinTransformer(TINY.swin)
    cls_ckpt = {k: v for k, v in swin.state_dict().items() if not k.startswith("norm")}
    cls_ckpt.update({"norm.weight": torch.ones(256), "norm.bias": torch.zeros(256), "head.weight": torch.zeros(5, 256)})
    torch.save({"model": cls_ckpt}, tmp_path / "swin_tiny_cls.pth")
    bert = BertModel(TINY.text.to_hf(), add_pooling_layer=True)
    bert.save_pretrained(tmp_path / "bert-tiny")
    model = build("tiny", swin_path=str(tmp_path / "swin_tiny_cls.pth"), bert_path=str(tmp_path / "bert-tiny"))
    assert torch.equal(model.backbone.layers[2].blocks[0].attn.qkv.weight, swin.layers[2].blocks[0].attn.qkv.weight)
    assert torch.equal(model.text_encoder.encoder.layer[1].output.dense.weight,
                       bert.encoder.layer[1].output.dense.weight)
    assert any("BERT initialised from" in n for n in model.init_notes)
    with pytest.raises(RefbenchError, match="clip_path applies to variant 'clip' only"):
        build("tiny", clip_path=str(tmp_path / "x.pt"))


# -- the CLIP variant (Appendix E) -------------------------------------------------------------------

def _clip_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(2, 20, dtype=torch.long)
    att = torch.zeros_like(ids)
    ids[0, :5] = torch.tensor([49406, 320, 1929, 530, 49407])          # <sot> a red ball <eot>
    ids[1, :3] = torch.tensor([49406, 320, 49407])
    att[0, :5] = att[1, :3] = 1
    return ids, att


def test_clip_variant_puts_the_sentence_token_first_and_loads_openai_weights(tmp_path):
    from baselines.common.clip import CLIP, CLIPConfig, CLIPTextConfig, CLIPTextTransformer, CLIPVisionConfig

    small = CLIPTextConfig(width=64, heads=2, layers=2, output_dim=64)
    torch.manual_seed(0)
    whole = CLIP(CLIPConfig("custom", CLIPVisionConfig(layers=(1, 1, 1, 1), width=8, output_dim=64, image_size=64),
                            small))
    torch.save(whole.state_dict(), tmp_path / "clip_small.pt")          # OpenAI key layout
    model = build("tiny", text_encoder="clip", text=None, clip_text=small, clip_path=str(tmp_path / "clip_small.pt"))
    assert model.text_encoder_kind == "clip" and model.lang_dim == 64 and model.normalization == "imagenet"
    assert any("text tower initialised from CLIP" in n for n in model.init_notes)
    enc = model.text_encoder
    assert torch.equal(enc.transformer.resblocks[1].mlp.c_fc.weight, whole.transformer.resblocks[1].mlp.c_fc.weight)
    assert not enc.text_projection.requires_grad                          # loaded but unused
    ids, att = _clip_inputs()
    with torch.no_grad():
        plain = CLIPTextTransformer.forward(enc, ids, att).tokens
        words = enc(ids, att)
    # w_cls := the <|endoftext|> feature (positions 4 and 2); the rest unchanged
    assert torch.equal(words[:, 0], torch.stack([plain[0, 4], plain[1, 2]]))
    assert torch.equal(words[:, 1:], plain[:, 1:])
    other = ids.clone()
    other[1, 3:] = 999                                                    # padding ids do not matter
    img = torch.randn(2, 3, 96, 96)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(img, other, att), model(img, ids, att), atol=1e-5, rtol=1e-5)
    model.train()
    mask = torch.zeros(2, 96, 96, dtype=torch.bool)
    mask[:, 20:60, 10:50] = True
    out = model.loss({"image": img, "input_ids": ids, "attention_mask": att, "mask": mask})
    assert set(out) == {"bce", "contrastive", "total"}
    out["total"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(RefbenchError, match="bert_path applies to the BERT variants"):
        build("tiny", text_encoder="clip", text=None, clip_text=small, bert_path=str(tmp_path))
    with pytest.raises(RefbenchError, match="unknown CLIP model 'RN10'"):
        build("tiny", text_encoder="clip", text=None, clip_text="RN10")


@pytest.mark.slow
def test_paper_variant_builds_and_runs_at_a_small_input():
    """Swin-B + BERT-base (random init, ~240 M parameters): ~10-30 s on a 2-core CPU."""
    torch.manual_seed(0)
    model = build_model("meres", variant="paper").eval()
    cfg = model.config
    assert (model.input_size, cfg.swin.embed_dim, cfg.swin.depths) == (480, 128, (2, 2, 18, 2))
    assert cfg.text.hidden_size == 768 and cfg.swin.window_size == 12
    assert (cfg.topk_ratio, cfg.guidance, cfg.selection, cfg.linguistic_cues) == (0.3, "enhanced_le+ve", "topk",
                                                                                  "global+local")
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    # Swin-B, window 12: blocks 12C² + 13C + 529·heads each, patch merging 8C² + 8C, patch embed 6528,
    # norm0..3 3840 (no classifier head, no final norm)
    assert counts["backbone"] == 86_880_376
    assert counts["text_encoder"] == 108_891_648           # BERT-base without pooler
    ids = torch.tensor([[101, 2158, 1999, 2417, 102] + [0] * 15])
    att = (ids != 0).long()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 96, 96), ids, att)
    assert logits.shape == (1, 1, 96, 96) and torch.isfinite(logits).all()
    clip = build_model("meres", variant="clip")
    assert (clip.text_encoder_kind, clip.lang_dim, clip.config.swin) == ("clip", 512, cfg.swin)
    assert sum(p.numel() for p in clip.text_encoder.parameters()) == 63_428_096     # CLIP RN101 text tower
