"""DMMI training side: entity-phrase erasing, the three loss terms, the Ref-ZOM sampler, a train step."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from baselines.dmmi.erasing import (choose_span, erase_ids, erased_input_ids, noun_spans, pos_tags,
                                    sample_rng)
from baselines.dmmi.losses import MultiModalContrastiveLoss, info_nce, segmentation_loss, similarity_loss
from baselines.dmmi.sampler import RefZOMSampler, insert_evenly, refzom_order
from refbench.core.errors import RefbenchError


# -- entity-phrase erasing --------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, spans", [
    ("the man on the left in a red shirt", [[1], [8]]),             # "left" is VBN for Pattern
    ("the tennis racket on the table", [[1, 2], [5]]),               # consecutive nouns form one span
    (", the zebras next to two giraffes", [[1], [5]]),               # punctuation dropped before indexing
    ("Smiling Woman holding Umbrella", [[1], [3]]),                  # lower-cased first
    ("left one", []),                                                # no noun
])
def test_noun_spans_of_known_sentences(sentence, spans):
    assert noun_spans(pos_tags(sentence)) == spans


def test_pos_tags_drop_punctuation_like_textblob():
    tags = pos_tags("guy, far-left, in blue.")
    assert [w for w, _ in tags] == ["guy", "far-left", "in", "blue"]
    assert tags[0] == ("guy", "NN")


def test_nouns_at_word_index_19_or_later_are_not_erased():
    s = "a very long sentence with many many words that goes on and on and on and then finally a dog"
    tags = pos_tags(s)
    assert tags[19] == ("dog", "NN")
    assert noun_spans(tags) == [[3], [7]]
    assert noun_spans(tags, max_word_index=20) == [[3], [7], [19]]


def test_erasing_writes_pad_at_word_index_plus_one():
    ids = torch.tensor([101, 1996, 2158, 2006, 1996, 2187, 1999, 1037, 2417, 3797, 102, 0, 0])
    out = erase_ids(ids, 11, [8])              # "shirt" is word 8 -> token position 9
    assert out.tolist() == [101, 1996, 2158, 2006, 1996, 2187, 1999, 1037, 2417, 0, 102, 0, 0]
    assert ids[9] == 3797                      # the input is not modified
    assert erase_ids(ids, 11, [1, 2]).tolist()[:4] == [101, 1996, 0, 0]
    assert erase_ids(ids, 5, [3, 7]).tolist() == erase_ids(ids, 5, [3]).tolist()   # past the length: skipped
    assert torch.equal(erase_ids(ids, 11, []), ids)


def _bert():
    from refbench.core.tokenize import get_tokenizer

    try:
        return get_tokenizer("bert", 20)
    except RefbenchError as e:
        pytest.skip(f"no BERT vocabulary here: {e}")


def _tokens(tok, ids):
    return tok._tok.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("sentence, erased_word, erased_token", [
    # punctuation first: word 1 ("zebras") maps to position 2, which holds "the" (official misalignment)
    (", the zebras next to two giraffes", 1, "the"),
    # multi-piece words: "ketchup" is word 3 -> position 4 = "with", since "hotdog" took two pieces
    ("a hotdog with ketchup", 3, "with"),
    # "giraffe" (word 0) -> position 1 = "gi", only the first piece of "gi ##raf ##fe" is erased
    ("giraffe eating from a trough near the fence", 0, "gi"),
    # aligned case: "shirt" is word 8 -> position 9 = "shirt"
    ("the man on the left in a red shirt", 8, "shirt"),
])
def test_erasing_on_real_bert_ids_reproduces_the_official_alignment(sentence, erased_word, erased_token):
    tok = _bert()
    ids, att = tok.encode(sentence)
    ids_t, att_t = torch.tensor([ids]), torch.tensor([att])
    spans = noun_spans(pos_tags(sentence))
    assert [erased_word] in spans
    # find a sample id whose seeded choice is this span (deterministic search over a few ids)
    sample_id = next(f"s{i}" for i in range(200) if choose_span(sentence, sample_rng(0, f"s{i}")) == [erased_word])
    out = erased_input_ids(ids_t, att_t, [sentence], [sample_id], seed=0)[0]
    changed = (out != ids_t[0]).nonzero().flatten().tolist()
    assert changed == [erased_word + 1]
    assert _tokens(tok, [ids[erased_word + 1]]) == [erased_token]
    assert out[erased_word + 1] == 0


def test_sentence_without_noun_is_left_unchanged():
    ids = torch.tensor([[101, 2187, 2028, 102] + [0] * 16])
    att = (ids != 0).long()
    assert torch.equal(erased_input_ids(ids, att, ["left one"], ["a"]), ids)


def test_span_choice_is_once_per_sentence_and_seeded():
    s = "giraffe eating from a trough near the fence"
    picks = [tuple(choose_span(s, sample_rng(0, f"id{i}"))) for i in range(300)]
    # the same (seed, sample id) always gives the same span: "the same span every epoch"
    assert all(tuple(choose_span(s, sample_rng(0, f"id{i}"))) == picks[i] for i in range(300))
    counts = Counter(picks)
    assert set(counts) == {(0,), (4,), (7,)} and min(counts.values()) > 60     # uniform over the spans
    assert [tuple(choose_span(s, sample_rng(1, f"id{i}"))) for i in range(300)] != picks   # the seed matters


def test_erased_input_ids_batch_and_errors():
    ids = torch.randint(1000, 2000, (3, 20))
    att = torch.ones(3, 20, dtype=torch.long)
    sents = ["the man on the left in a red shirt", "left one", "the tennis racket on the table"]
    a = erased_input_ids(ids, att, sents, ["1", "2", "3"], seed=5)
    b = erased_input_ids(ids, att, sents, ["1", "2", "3"], seed=5)
    assert torch.equal(a, b) and a.dtype == ids.dtype
    assert torch.equal(a[1], ids[1])
    assert (a[0] == 0).sum() == 1 and (a[2] == 0).sum() in (1, 2)
    with pytest.raises(RefbenchError, match="one sentence and one sample_id per sample"):
        erased_input_ids(ids, att, sents[:2], ["1", "2"])


# -- losses -----------------------------------------------------------------------------------------

def test_segmentation_loss_is_class_weighted_cross_entropy():
    logits = torch.tensor([[[[2.0, -1.0]], [[0.5, 1.0]]]])       # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    p = logits.softmax(1)
    nll = torch.stack([-p[0, 0, 0, 0].log(), -p[0, 1, 0, 1].log()])
    want = (0.9 * nll[0] + 1.1 * nll[1]) / (0.9 + 1.1)
    torch.testing.assert_close(segmentation_loss(logits, target), want)
    with pytest.raises(RefbenchError, match="0/1 labels"):
        segmentation_loss(logits, torch.tensor([[[0, 255]]]))
    with pytest.raises(RefbenchError, match=r"must be \(B, H, W\)"):
        segmentation_loss(logits, torch.zeros(1, 2, 3, dtype=torch.long))


def test_similarity_loss_valid_tokens_detach_and_zero_targets():
    lang = torch.tensor([[[1.0, 0.0, 5.0], [0.0, 1.0, 5.0]],
                         [[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]]], requires_grad=True)   # (B=2, C=2, L=3)
    recon = torch.tensor([[[1.0, 1.0, -7.0], [0.0, 1.0, 3.0]],
                          [[1.0, -1.0, 3.0], [0.0, 2.0, 4.0]]], requires_grad=True)
    att = torch.tensor([[1, 1, 0], [1, 1, 1]])
    one = torch.tensor([1.0, 1.0])
    # sample 0: cos(token0) = 1, cos(token1) = 1/sqrt2, token 2 is padding (ignored): mean over 2 tokens
    # sample 1: cos = 1/sqrt2, -1/sqrt5, 0 (a zero vector gives 0): mean over 3 tokens
    s0, s1 = (1 + 1 / math.sqrt(2)) / 2, (1 / math.sqrt(2) - 1 / math.sqrt(5)) / 3
    torch.testing.assert_close(similarity_loss(lang, recon, att, one), torch.tensor(1 - (s0 + s1) / 2))
    # zero-target sample 0: its score is dropped, the value keeps the official 1 - mean(...) form
    loss = similarity_loss(lang, recon, att, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(loss, torch.tensor(1 - s1 / 2))
    loss.backward()
    assert lang.grad is None                               # E4* is detached
    assert torch.count_nonzero(recon.grad[0]) == 0         # no gradient from the zero-target sample
    assert torch.count_nonzero(recon.grad[1]) > 0


def test_info_nce_symmetric_temperature_and_flags():
    torch.manual_seed(0)
    v, e = torch.randn(3, 4), torch.randn(3, 4)
    tau = 0.05
    logits = F.normalize(v, dim=1) @ F.normalize(e, dim=1).t() / tau
    ce_i2t = -logits.log_softmax(1).diagonal()
    ce_t2i = -logits.t().log_softmax(1).diagonal()
    torch.testing.assert_close(info_nce(v, e, torch.ones(3), tau), ce_i2t.mean() + ce_t2i.mean())
    flags = torch.tensor([1.0, 0.0, 1.0])
    want = (ce_i2t * flags).sum() / 3 + (ce_t2i * flags).sum() / 3      # divided by B (Eq. 10)
    torch.testing.assert_close(info_nce(v, e, flags, tau), want)
    assert float(info_nce(v, e, torch.zeros(3), tau)) == 0.0
    # aligned pairs with a small temperature: near zero
    assert float(info_nce(torch.eye(3), torch.eye(3), torch.ones(3), tau)) < 1e-6


def test_contrastive_module_pools_all_positions_after_align_lan():
    torch.manual_seed(0)
    head = MultiModalContrastiveLoss(lang_dim=6, temperature=0.05)
    vis, lang = torch.randn(2, 6), torch.randn(2, 6, 5)
    pooled = head.align_lan(lang).mean(-1)
    torch.testing.assert_close(head(vis, lang, torch.ones(2)), info_nce(vis, pooled, torch.ones(2), 0.05))
    assert dict(head.state_dict()).keys() == {"align_lan.0.weight", "align_lan.0.bias"}


# -- Ref-ZOM sampler --------------------------------------------------------------------------------

def test_insert_evenly_official_layout():
    assert insert_evenly(["z0", "z1"], [f"o{i}" for i in range(7)]) == \
        ["o0", "o1", "o2", "z0", "o3", "o4", "o5", "z1", "o6"]
    assert insert_evenly([], [1, 2]) == [1, 2]
    with pytest.raises(ValueError):
        insert_evenly([1, 2, 3], [4])


def test_refzom_order_spreads_zero_sentences_evenly():
    types = ["zero"] * 10 + ["one"] * 25 + ["many"] * 7
    order = refzom_order(types, seed=3)
    assert sorted(order) == list(range(42))
    zero_pos = [i for i, idx in enumerate(order) if types[idx] == "zero"]
    assert zero_pos == [3 + 4 * k for k in range(10)]        # block 32 // 10 = 3 others, then a zero
    assert refzom_order(types, seed=3) == order
    assert refzom_order(types, seed=4) != order
    assert refzom_order(types, shuffle=False)[:4] == [10, 11, 12, 0]
    # no zero sentence, or zero sentences in the majority
    assert sorted(refzom_order(["one"] * 5)) == list(range(5))
    many_zeros = refzom_order(["zero"] * 6 + ["one"] * 2, seed=0)
    assert [i for i, idx in enumerate(many_zeros) if idx >= 6] == [3, 7]
    with pytest.raises(RefbenchError, match="'zero', 'one' or 'many'"):
        refzom_order(["zero", "two"])


def test_refzom_sampler_ranks_and_epochs():
    types = ["zero"] * 4 + ["one"] * 13
    full = refzom_order(types, seed=0)
    shards = [RefZOMSampler(types, seed=0, num_replicas=3, rank=r) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(17))
    assert [len(s) for s in shards] == [6, 6, 5]
    assert list(shards[1]) == full[1::3]
    fixed = RefZOMSampler(types, seed=0)
    fixed.set_epoch(5)
    assert list(fixed) == full                               # official: same order every epoch
    fresh = RefZOMSampler(types, seed=0, reshuffle_each_epoch=True)
    fresh.set_epoch(1)
    assert list(fresh) == refzom_order(types, seed=1) and list(fresh) != full
    with pytest.raises(RefbenchError, match="rank"):
        RefZOMSampler(types, num_replicas=2, rank=2)


# -- a training step on the tiny variant ------------------------------------------------------------

SENTENCES = ["the man on the left in a red shirt", "left one", "giraffe eating from a trough near the fence",
             "a hotdog with ketchup"]


def _batch(size: int = 96):
    g = torch.Generator().manual_seed(0)
    b = len(SENTENCES)
    ids = torch.zeros(b, 20, dtype=torch.long)
    att = torch.zeros(b, 20, dtype=torch.long)
    for i, s in enumerate(SENTENCES):
        n = min(20, len(s.split()) + 2)
        ids[i, :n] = torch.randint(1000, 30000, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = 101, 102
        att[i, :n] = 1
    mask = torch.zeros(b, size, size, dtype=torch.long)
    mask[0, 10:50, 20:60] = 1
    mask[2, 40:90, 5:45] = 1
    mask[3, 0:30, 60:96] = 1                                  # sample 1 is zero-target: empty mask
    return {"image": torch.randn(b, 3, size, size, generator=g), "input_ids": ids, "attention_mask": att,
            "mask": mask, "type": ["one", "zero", "many", "one"], "sample_id": ["a", "b", "c", "d"],
            "sentence": SENTENCES}


@pytest.fixture()
def tiny():
    from baselines.dmmi.model import build

    torch.manual_seed(0)
    return build("tiny", input_size=96)


def test_train_step_reduces_loss_on_a_mixed_batch(tiny):
    batch = _batch()
    opt = torch.optim.AdamW([p for p in tiny.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-2)
    tiny.train()

    def loss_at_fixed_noise():
        torch.manual_seed(1)                    # same dropout / drop-path draws for every measurement
        with torch.no_grad():
            return {k: float(v) for k, v in tiny.loss(batch).items()}

    before = loss_at_fixed_noise()
    assert set(before) == {"ce", "sim", "contrastive", "total"}
    assert math.isclose(before["total"], before["ce"] + 0.01 * before["sim"] + 0.01 * before["contrastive"],
                        rel_tol=1e-5)
    for step in range(6):
        torch.manual_seed(100 + step)
        terms = tiny.loss(batch)
        opt.zero_grad()
        terms["total"].backward()
        if step == 0:   # every part of the network is trained by the objective
            for name in ("backbone.layers.0.fusion.image_lang_att.vis_weight", "classifier.lan_func.conv1.weight",
                         "classifier.crossfuse2.linear.weight", "contrastive.align_lan.0.weight",
                         "text_encoder.encoder.layer.0.attention.self.query.weight"):
                grad = dict(tiny.named_parameters())[name].grad
                assert grad is not None and torch.count_nonzero(grad) > 0, name
        opt.step()
    after = loss_at_fixed_noise()
    assert all(math.isfinite(v) for v in after.values())
    assert after["total"] < 0.8 * before["total"], (before, after)


def test_zero_target_samples_switch_the_auxiliary_terms_off(tiny):
    batch = _batch()
    batch["type"] = ["zero"] * 4
    batch["mask"] = torch.zeros_like(batch["mask"])
    tiny.train()
    terms = tiny.loss(batch)
    assert float(terms["sim"].detach()) == 1.0 and float(terms["contrastive"].detach()) == 0.0
    terms["total"].backward()
    for prefix in ("classifier.lan_func.", "classifier.crossfuse1.", "classifier.crossfuse2.", "contrastive."):
        grads = [p.grad for n, p in tiny.named_parameters() if n.startswith(prefix)]
        assert all(g is None or torch.count_nonzero(g) == 0 for g in grads), prefix


def test_loss_uses_given_erased_ids_or_derives_them(tiny):
    batch = _batch()
    tiny.eval()                                  # deterministic: no dropout, BN running stats
    with torch.no_grad():
        derived = tiny.loss(batch)
        explicit = tiny.loss({**batch, "input_ids_erased": erased_input_ids(
            batch["input_ids"], batch["attention_mask"], batch["sentence"], batch["sample_id"], seed=0)})
        unerased = tiny.loss({**batch, "input_ids_erased": batch["input_ids"]})
    assert float(derived["sim"]) == float(explicit["sim"])
    assert float(derived["sim"]) != float(unerased["sim"])
    assert float(derived["ce"]) == float(unerased["ce"])       # erasing only feeds the CCR branch
    with pytest.raises(RefbenchError, match="input_ids_erased' or both 'sentence' and 'sample_id'"):
        tiny.loss({k: v for k, v in batch.items() if k != "sentence"})
    with pytest.raises(RefbenchError, match="'zero'/'one'/'many'"):
        tiny.loss({**batch, "type": ["one", "none", "one", "one"]})
    with pytest.raises(RefbenchError, match="lacks 'mask'"):
        tiny.loss({k: v for k, v in batch.items() if k != "mask"})
