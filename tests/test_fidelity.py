"""Issue #19 fidelity fixes: DMMI's own GT rule, MagNet's Mask Grounding as the paper states it,
JMCELN's no-decay rule by layer type."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refbench.core.models import build_model, get_model_info
from refbench.core.protocols import get_protocol
from refbench.train.optim import is_norm_layer, parameter_groups
from refbench.train.recipes import get_recipe


# ------------------------------------------------------------------ DMMI: LAVT's loop with DMMI's union GT

def test_dmmi_protocol_is_lavt_with_the_union_gt():
    dmmi, lavt = get_protocol("dmmi"), get_protocol("lavt")
    assert dmmi.gt_rule == "union" and lavt.gt_rule == "lavt"
    assert dmmi.replace(name="lavt", gt_rule="lavt", description=lavt.description) == lavt
    info = get_model_info("dmmi")
    assert all(info.protocol_for(v) == "dmmi" for v in info.variants)
    assert info.protocol_for("paper", "refzom") == "refzom"          # Ref-ZOM data keeps its own protocol
    assert get_model_info("lavt").protocol_for("paper") == "lavt"


def test_union_and_lavt_rules_differ_where_polygons_overlap(tmp_path):
    """What the two protocols do to an annotation whose two polygons overlap (as RefCOCO has them)."""
    from refbench.data.masks import rasterize

    two = [[[2, 2, 12, 2, 12, 12, 2, 12], [8, 8, 18, 8, 18, 18, 8, 18]]]
    lavt, union = rasterize(two, 20, 20, "lavt"), rasterize(two, 20, 20, "union")
    assert union.sum() - lavt.sum() == 16 and (union & ~lavt).sum() == 16   # the 4x4 overlap


def test_dmmi_eval_on_refer_data_records_the_union_rule(synth_tiny, tmp_path, run_cli):
    out = tmp_path / "run"
    code, stdout, err = run_cli("eval", "--model", "dmmi", "--variant", "tiny", "--split", "synth/val",
                                "--data-root", synth_tiny, "--limit", "8", "--batch-size", "4", "--bootstrap", "0",
                                "--out", out)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    protocol = doc["protocol"]
    assert protocol["name"] == "dmmi" and protocol["gt_rule"] == "union"


# ------------------------------------------------------------------ MagNet Mask Grounding

def _short_sentences(n: int, words: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(n, 20, dtype=torch.long)
    ids[:, 0] = 101
    ids[:, 1:1 + words] = torch.arange(2000, 2000 + words)
    ids[:, 1 + words] = 102
    return ids, (ids != 0).long()


@pytest.mark.parametrize("words", [3, 4, 5])
def test_paper_mask_grounding_masks_15_percent_of_short_sentences(words):
    from baselines.magnet.config import PAPER, TINY
    from baselines.magnet.model import MaskGrounding

    g = PAPER.grounding
    assert (g.mask_ratio, g.min_masked) == (0.15, 0)
    mg = MaskGrounding.__new__(MaskGrounding)            # choose_masked needs only these two fields
    mg.mask_ratio, mg.min_masked = g.mask_ratio, g.min_masked
    ids, attn = _short_sentences(4000, words)
    gen = torch.Generator().manual_seed(words)
    rate = MaskGrounding.choose_masked(mg, ids, attn, gen).float().sum().item() / (4000 * words)
    assert abs(rate - 0.15) < 0.015, rate
    # the tiny recipe's rule (at least one word) is the old one: effective rate well above 15 %
    mg.min_masked = TINY.grounding.min_masked
    forced = MaskGrounding.choose_masked(mg, ids, attn, torch.Generator().manual_seed(words)).float()
    assert forced.sum(1).min().item() >= 1 and forced.sum().item() / (4000 * words) > 0.2


def test_min_masked_one_is_the_previous_rule():
    from baselines.magnet.model import MaskGrounding

    mg = MaskGrounding.__new__(MaskGrounding)
    mg.mask_ratio, mg.min_masked = 0.15, 1
    ids, attn = _short_sentences(500, 4)
    u = torch.rand(ids.shape, generator=torch.Generator().manual_seed(3))
    special = (ids == 0) | (ids == 101) | (ids == 102)
    cand = attn.bool() & ~special
    old = cand & (u < 0.15)
    pick = torch.where(cand, u, torch.full_like(u, 2.0)).argmin(1)
    need = ~old.any(1) & cand.any(1)
    old[need, pick[need]] = True
    new = MaskGrounding.choose_masked(mg, ids, attn, torch.Generator().manual_seed(3))
    assert torch.equal(new, old)


def test_paper_predictor_is_eight_bert_base_layers():
    from baselines.magnet.config import PAPER
    from baselines.magnet.model import MaskGrounding

    mg = MaskGrounding(PAPER)
    layers = mg.predictor.layers
    assert len(layers) == 8
    first = layers[0]
    assert first.self_attn.embed_dim == 768 and first.self_attn.num_heads == 12
    assert first.linear1.out_features == 3072 and first.norm_first is False
    assert mg.image_proj.in_features == PAPER.head.conv_dim and mg.image_proj.out_features == 768
    assert mg.language_proj.out_features == 768 and mg.token_head[-1].out_features == 30522


def test_tiny_mask_grounding_keeps_the_shipped_keys():
    from baselines.magnet.config import TINY
    from baselines.magnet.model import MaskGrounding
    from refbench.core.checkpoint import read_checkpoint
    from importlib import resources

    shipped = read_checkpoint(str(resources.files("baselines.magnet").joinpath("weights/magnet_tiny_synth.pt")))
    keys = {k[len("mask_grounding."):] for k in shipped["model"] if k.startswith("mask_grounding.")}
    assert set(MaskGrounding(TINY).state_dict()) == keys


# ------------------------------------------------------------------ JMCELN: no decay on normalization layers

def test_jmceln_paper_recipe_gives_every_norm_layer_no_decay():
    model = build_model("jmceln", "tiny")                      # the paper's modules at tiny widths
    recipe = get_recipe("jmceln", "paper")
    groups, _ = parameter_groups(model, recipe)
    no_decay = {id(p) for p in groups[1]["params"]}
    norms = {n: p for m_name, m in model.named_modules() if is_norm_layer(m)
             for n, p in ((f"{m_name}.{k}", v) for k, v in m.named_parameters(recurse=False))}
    assert any(".bn1." in n for n in norms) and any(".ln_" in n or n.endswith("ln_final.weight") for n in norms)
    assert all(id(p) in no_decay for p in norms.values())
    # the name rule alone (the tiny recipe, which trained the shipped weights) misses CLIP's bn*/ln_*:
    # the bug of issue #19, kept for tiny only
    other = build_model("jmceln", "tiny")
    tiny_groups, _ = parameter_groups(other, get_recipe("jmceln", "tiny"))
    tiny_no_decay = {id(p) for p in tiny_groups[1]["params"]}
    named = dict(other.named_parameters())
    assert id(named["backbone.bn1.weight"]) not in tiny_no_decay
    assert id(named["text_encoder.ln_final.weight" if "text_encoder.ln_final.weight" in named else
                    next(n for n in named if n.endswith("ln_final.weight"))]) not in tiny_no_decay


def test_lavt_family_keeps_the_official_name_rule():
    for model in ("lavt", "magnet", "dmmi", "meres"):
        assert not get_recipe(model, "paper").no_decay_norm_layers


# ------------------------------------------------------------------ score --gt SPLIT: types from the split

def test_score_against_a_split_takes_types_from_the_split(synth_tiny, tmp_path, run_cli):
    """Every sample's type is the split's (zero/one/many), never guessed from its resized GT."""
    from PIL import Image

    from refbench.data import open_split

    sd = open_split("synth-zom/val", synth_tiny)
    pred = tmp_path / "pred"
    pred.mkdir()
    for s in sd.samples:
        Image.fromarray(np.zeros((480, 480), np.uint8)).save(pred / f"{s.sample_id}.png")
    code, _, err = run_cli("score", "--pred", pred, "--gt", "synth-zom/val", "--data-root", synth_tiny,
                           "--protocol", "refzom", "--bootstrap", "0", "--json", tmp_path / "r.json")
    assert code == 0, err
    counts = json.loads((tmp_path / "r.json").read_text())["counts"]
    want = sd.counts()
    assert want["many"] > 0 and {k: counts[k] for k in ("zero", "one", "many")} == \
        {k: want[k] for k in ("zero", "one", "many")}
