"""MagNet's training losses on hand-checkable inputs (paper §3.2, §3.4, §3.5; baselines/magnet/losses.py)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from baselines.magnet.config import LossConfig
from baselines.magnet.losses import cross_modal_alignment_loss, grounding_loss, mask_losses
from baselines.magnet.model import MaskGrounding
from refbench.core.models import build_model

TAU1, TAU2 = 0.1, 0.3


# -- BCE + Dice ------------------------------------------------------------------------------------
def test_bce_and_dice_known_values():
    target = torch.zeros(2, 4, 4, dtype=torch.bool)
    target[0, :2] = True  # 8 of 16 pixels
    target[1, 0, 0] = True  # 1 of 16
    bce, dice = mask_losses(torch.zeros(2, 4, 4), target)
    assert bce.item() == pytest.approx(math.log(2), abs=1e-7)
    # σ(0) = 1/2 everywhere: dice_b = 1 - (2·k/2 + 1) / (16/2 + k + 1)
    expected = ((1 - (8 + 1) / (8 + 8 + 1)) + (1 - (1 + 1) / (8 + 1 + 1))) / 2
    assert dice.item() == pytest.approx(expected, abs=1e-6)

    perfect = torch.where(target, 30.0, -30.0)
    bce, dice = mask_losses(perfect, target)
    assert bce.item() < 1e-12 and dice.item() < 1e-6
    bce, dice = mask_losses(-perfect, target)  # everything wrong
    assert bce.item() == pytest.approx(30.0, rel=1e-6) and dice.item() == pytest.approx(
        ((1 - 1 / (8 + 8 + 1)) + (1 - 1 / (15 + 1 + 1))) / 2, abs=1e-6)


# -- cross-modal alignment loss ----------------------------------------------------------------------
def _reference_cal(features, target, text, tau1=TAU1, tau2=TAU2):
    """Eq. 12-14 written out per image in float64 (with -log, see losses.py)."""
    p2p, p2t, n = 0.0, 0.0, 0
    for f, m, t in zip(features.double(), target, text.double()):
        f = F.normalize(f.flatten(1).t(), dim=-1)
        pos, neg = f[m.flatten()], f[~m.flatten()]
        if len(pos) == 0 or len(neg) == 0:
            continue
        avg_p, avg_n, t = F.normalize(pos.mean(0), dim=0), F.normalize(neg.mean(0), dim=0), F.normalize(t, dim=0)

        def term(anchors, target_vec, distractors, tau):
            a = torch.exp(anchors @ target_vec / tau)
            return (-torch.log(a / (a + torch.exp(anchors @ distractors.t() / tau).sum(1)))).mean()

        p2p += term(pos, avg_p, neg, tau1) + term(neg, avg_n, pos, tau1)
        p2t += term(pos, t, neg, tau2)
        n += 1
    return p2p / max(n, 1), p2t / max(n, 1)


def _blob_target(b, h, w):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([(yy - h / 3 - i) ** 2 + (xx - w / 2) ** 2 < (h / 4) ** 2 for i in range(b)])


def test_cal_two_separated_clusters_is_at_its_analytic_minimum():
    target = torch.zeros(1, 8, 8, dtype=torch.bool)
    target[0, 2:6, 2:6] = True  # |P| = 16, |N| = 48
    e1 = torch.zeros(4)
    e1[0] = 1.0
    features = torch.where(target[:, None], e1[None, :, None, None], -e1[None, :, None, None]) * 3.0
    p2p, p2t = cross_modal_alignment_loss(features, target, e1[None], TAU1, TAU2)
    # cos = +1 to the own mean, -1 to every pixel of the other set
    assert p2p.item() == pytest.approx(math.log1p(48 * math.exp(-2 / TAU1)) + math.log1p(16 * math.exp(-2 / TAU1)),
                                       rel=1e-3, abs=1e-9)
    assert p2p.item() < 1e-6
    assert p2t.item() == pytest.approx(math.log1p(48 * math.exp(-2 / TAU2)), rel=1e-4)
    # mixing the clusters, or pointing the text at the background, costs a lot more
    g = torch.Generator().manual_seed(0)
    mixed = torch.randn(1, 4, 8, 8, generator=g)
    p2p_mixed, p2t_mixed = cross_modal_alignment_loss(mixed, target, e1[None], TAU1, TAU2)
    assert p2p_mixed.item() > 5.0 and p2t_mixed.item() > 1.0
    _, p2t_wrong = cross_modal_alignment_loss(features, target, -e1[None], TAU1, TAU2)
    # text as far from the object as the background is: the 48 negatives tie with it
    assert p2t_wrong.item() == pytest.approx(math.log(1 + 48), rel=1e-5)


def test_cal_matches_the_equations_written_out():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(3, 16, 12, 10, generator=g, requires_grad=True)
    target = _blob_target(3, 12, 10)
    target[2] = False  # a no-target image: skipped
    text = torch.randn(3, 16, generator=g)
    p2p, p2t = cross_modal_alignment_loss(features, target, text, TAU1, TAU2)
    ref_p2p, ref_p2t = _reference_cal(features.detach(), target, text)
    assert p2p.item() == pytest.approx(float(ref_p2p), rel=1e-5)
    assert p2t.item() == pytest.approx(float(ref_p2t), rel=1e-5)
    (p2p + p2t).backward()
    assert torch.isfinite(features.grad).all() and features.grad[:2].abs().sum() > 0
    assert features.grad[2].abs().sum() == 0  # the no-target image contributes nothing


def test_cal_pixel_sampling_estimates_the_full_loss():
    g = torch.Generator().manual_seed(2)
    target = _blob_target(2, 48, 48)
    smooth = F.interpolate(torch.randn(2, 8, 6, 6, generator=g), size=(48, 48), mode="bilinear", align_corners=False)
    features = smooth + 2.0 * target[:, None].float()
    text = torch.randn(2, 8, generator=g)
    exact = cross_modal_alignment_loss(features, target, text, TAU1, TAU2, max_points=48 * 48)
    sampled = cross_modal_alignment_loss(features, target, text, TAU1, TAU2, max_points=600,
                                         generator=torch.Generator().manual_seed(0))
    for e, s in zip(exact, sampled):
        assert s.item() == pytest.approx(e.item(), rel=0.05)


def test_cal_without_any_target_is_zero_and_attached():
    features = torch.randn(2, 4, 5, 5, requires_grad=True)
    p2p, p2t = cross_modal_alignment_loss(features, torch.zeros(2, 5, 5, dtype=torch.bool), torch.randn(2, 4))
    assert p2p.item() == 0.0 and p2t.item() == 0.0
    (p2p + p2t).backward()
    assert features.grad is not None


# -- Mask Grounding --------------------------------------------------------------------------------
def test_grounding_loss_is_log_vocabulary_for_uniform_logits():
    vocab = 30522
    labels = torch.randint(0, vocab, (3,))
    loss = grounding_loss(torch.zeros(3, vocab), labels)
    assert loss.item() == pytest.approx(math.log(vocab), rel=1e-6)
    confident = torch.full((3, vocab), -20.0).scatter(1, labels[:, None], 20.0)
    assert grounding_loss(confident, labels).item() < 1e-6
    # one of three predictions uniform: the mean of log(V) and two ~0 terms
    confident[0] = 0.0
    assert grounding_loss(confident, labels).item() == pytest.approx(math.log(vocab) / 3, rel=1e-5)
    logits = torch.zeros(0, vocab, requires_grad=True)
    none = grounding_loss(logits, labels[:0])
    assert none.item() == 0.0
    none.backward()


def test_masked_words_are_real_words_about_15_percent_at_least_one():
    from baselines.magnet.config import TINY

    mg = MaskGrounding(TINY)
    ids = torch.zeros(4, 20, dtype=torch.long)
    ids[:, 0] = 101
    ids[0, 1:19], ids[0, 19] = torch.arange(2000, 2018), 102  # 18 words
    ids[1, 1:3], ids[1, 3] = torch.tensor([2000, 2001]), 102  # 2 words
    ids[2, 1] = 102  # no word at all
    ids[3, 1:20] = torch.arange(3000, 3019)  # truncated: no [SEP]
    attn = (ids != 0).long()
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([mg.choose_masked(ids, attn, g) for _ in range(400)])  # (400, 4, 20)
    special = (ids == 0) | (ids == 101) | (ids == 102)
    assert not draws[:, special].any()
    assert draws[:, [0, 1, 3]].any(-1).all() and not draws[:, 2].any()
    rate = draws[:, 0].float().sum(-1).mean().item() / 18
    assert 0.15 <= rate <= 0.19  # 15 %, plus the forced word when a draw picks none


def test_mask_centres():
    mask = torch.zeros(2, 10, 20, dtype=torch.bool)
    mask[0, 2:4, 10:20] = True  # rows 2-3, columns 10-19
    centres, has = MaskGrounding.mask_centres(mask)
    torch.testing.assert_close(centres[0], torch.tensor([15.0 / 20, 3.0 / 10]))
    assert has.tolist() == [True, False]


# -- Eq. 15 ------------------------------------------------------------------------------------------
def test_total_is_the_lambda_weighted_sum():
    torch.manual_seed(0)
    model = build_model("magnet", variant="tiny").eval()  # no dropout: two calls compare exactly
    s = model.input_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 3000, (2, 20), generator=g)
    ids[:, 0], ids[0, 9:], ids[0, 8] = 101, 0, 102
    mask = torch.zeros(2, s, s, dtype=torch.bool)
    mask[1, 40:100, 50:120] = True
    batch = {"image": torch.randn(2, 3, s, s, generator=g), "input_ids": ids, "attention_mask": (ids != 0).long(),
             "mask": mask, "type": ["zero", "one"]}
    with torch.no_grad():
        out = model.loss(batch, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"bce", "dice", "p2p", "p2t", "cal", "grounding", "total"}
    lc = model.config.losses
    assert (lc.bce_weight, lc.dice_weight, lc.cal_weight, lc.grounding_weight) == (2.0, 2.0, 0.5, 1.0)
    assert (lc.tau_p2p, lc.tau_p2t) == (0.1, 0.3)
    torch.testing.assert_close(out["cal"], out["p2p"] + out["p2t"])
    torch.testing.assert_close(out["total"], 2.0 * out["bce"] + 2.0 * out["dice"] + 0.5 * out["cal"] + out["grounding"])
    assert all(torch.isfinite(v) and v > 0 for v in out.values())
    # an untrained predictor is near chance over the 30522-word vocabulary
    assert abs(out["grounding"].item() - math.log(30522)) < 1.0

    model.config = dataclasses.replace(model.config, losses=LossConfig(bce_weight=1.0, dice_weight=0.0,
                                                                         cal_weight=0.0, grounding_weight=0.0))
    with torch.no_grad():
        only_bce = model.loss(batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(only_bce["total"], out["bce"])
