"""LAVT: official-checkpoint parity (case A), and the tiny variant's interface, loss and loading."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from parity_fixtures import make_weights_module, parity_root
import torch
import torch.nn.functional as F

from refbench.core.checkpoint import save_checkpoint
from refbench.core.errors import RefbenchError
from refbench.core.binarize import binarize
from refbench.core.models import RISModel, build_model



def _parity_root() -> Path:
    return parity_root("lavt")


def _import_make_weights(root: Path):
    return make_weights_module(root)


# ---------------------------------------------------------------------------------------------
# Parity with the official LAVT code (fixtures: tests/fixtures/parity, README there)
# ---------------------------------------------------------------------------------------------
def test_parity_case_a():
    root = _parity_root()
    mw = _import_make_weights(root)
    spec = json.loads((root / "lavt" / "spec.json").read_text())
    case = np.load(root / "lavt" / "case_a.npz")

    # 1. weights in the official checkpoint layout {'model', 'bert_model'}
    ckpt = mw.make_checkpoint(spec, seed=0)
    assert mw.state_dict_digest(ckpt) == spec["weights_content_sha256"]["seed0"]

    model = build_model("lavt", variant="paper")
    own = model.state_dict()
    # 2. integer buffers the model computes itself equal the official ones
    for key, digest in spec["int_buffer_digests"].items():
        assert mw.int_buffer_digest(own[key]) == digest, key
    # parameter and entry counts equal the spec's
    counts = spec["param_count"]
    main = {k: p for k, p in model.named_parameters() if not k.startswith("text_encoder.")}
    assert sum(p.numel() for p in main.values()) == counts["model"]["parameters"] == 118_847_866
    assert sum(p.numel() for p in model.text_encoder.parameters()) == counts["bert_model"]["parameters"] == 108_891_648
    for child, n in counts["model"]["parameters_by_child"].items():
        assert sum(p.numel() for p in getattr(model, child).parameters()) == n, child
    assert len([k for k in own if not k.startswith("text_encoder.")]) == counts["model"]["state_dict_entries"]
    assert len([k for k in own if k.startswith("text_encoder.")]) == counts["bert_model"]["state_dict_entries"]

    # 3. strict load (README step 3: merge the model's own integer buffers into the generated dict)
    for key in spec["int_buffer_digests"]:
        ckpt["model"][key] = own[key].clone()
    notes = model.load_checkpoint(ckpt)
    assert notes == ["official layout: dicts 'model', 'bert_model'"]
    del ckpt
    model.eval()

    # 4. case A through the public forward; hooks capture the probed intermediates
    seen = {}
    hooks = [
        model.text_encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("lang_final", o.transpose(1, 2))),
        model.classifier.register_forward_hook(
            lambda m, i, o: seen.update(s4=i[0], s3=i[1], s2=i[2], s1=i[3], logits_lowres=o)),
    ]
    image = torch.from_numpy(case["image"])
    ids = torch.from_numpy(case["input_ids"])
    mask = torch.from_numpy(case["attention_mask"])
    with torch.no_grad():
        logits = model(image, ids, mask)
    for h in hooks:
        h.remove()

    # 5. compare (tolerances of the fixture README, LAVT column)
    ref_logits = torch.from_numpy(case["logits"])
    assert logits.shape == ref_logits.shape == (2, 2, 480, 480)
    torch.testing.assert_close(logits, ref_logits, atol=5e-3, rtol=0)
    torch.testing.assert_close(seen["logits_lowres"], torch.from_numpy(case["logits_lowres"]), atol=5e-3, rtol=0)
    for name in ("s1", "s2", "s3", "s4", "lang_final"):
        t = seen[name].double().numpy()
        assert t.shape == tuple(case[f"probe.{name}.shape"]), name
        val = t.flat[case[f"probe.{name}.idx"]]
        if name == "lang_final":
            np.testing.assert_allclose(val, case[f"probe.{name}.val"], atol=1e-4, rtol=0)
            np.testing.assert_allclose(t.mean(), case[f"probe.{name}.mean"], atol=1e-5, rtol=0)
            np.testing.assert_allclose(t.std(), case[f"probe.{name}.std"], atol=1e-5, rtol=0)
        else:
            np.testing.assert_allclose(val, case[f"probe.{name}.val"], atol=0.1, rtol=0, err_msg=name)
            np.testing.assert_allclose(t.mean(), case[f"probe.{name}.mean"], atol=1e-4, rtol=0, err_msg=name)
            np.testing.assert_allclose(t.std(), case[f"probe.{name}.std"], rtol=1e-4, atol=0, err_msg=name)

    pred = binarize(logits, model.binarize_rule).numpy()
    ref_pred = case["pred_mask"].astype(bool)
    margin = np.abs(case["logits"][:, 1] - case["logits"][:, 0])
    for b in range(2):
        differ = pred[b] != ref_pred[b]
        assert differ.mean() < 1e-3, f"sample {b}: {differ.mean():.4%} of pixels differ"
        assert (margin[b][differ] < 5e-3).all(), f"sample {b}: a flipped pixel had a clear official margin"
    assert abs(pred[0].mean() - 0.821) < 2e-3 and abs(pred[1].mean() - 0.864) < 2e-3


# ---------------------------------------------------------------------------------------------
# tiny variant: same code, small widths
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("lavt", variant="tiny").eval()


def _batch(model, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = model.input_size
    ids = torch.randint(1000, 3000, (b, 20), generator=g)
    mask = torch.ones(b, 20, dtype=torch.int64)
    mask[0, 8:] = 0
    ids = ids * mask
    ids[:, 0] = 101
    return {"image": torch.randn(b, 3, s, s, generator=g), "input_ids": ids, "attention_mask": mask,
            "mask": torch.rand(b, s, s, generator=g) > 0.7}


def test_interface(tiny):
    assert isinstance(tiny, RISModel)
    assert (tiny.name, tiny.variant, tiny.binarize_rule, tiny.input_size) == ("lavt", "tiny", "argmax", 160)
    assert (tiny.text_encoder_kind, tiny.token_length, tiny.normalization) == ("bert", 20, "imagenet")
    b = _batch(tiny)
    with torch.no_grad():
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        feats = tiny.forward_features(b["image"], b["input_ids"], b["attention_mask"])
    assert logits.shape == (2, 2, 160, 160) and logits.dtype == torch.float32
    assert [tuple(feats[f"s{i}"].shape[1:]) for i in range(1, 5)] == [(32, 40, 40), (64, 20, 20), (128, 10, 10),
                                                                      (256, 5, 5)]
    assert feats["words"].shape == (2, 64, 20) and feats["logits_lowres"].shape == (2, 2, 40, 40)
    upsampled = F.interpolate(feats["logits_lowres"], size=(160, 160), mode="bilinear", align_corners=True)
    assert torch.equal(logits, upsampled)
    masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert masks.dtype == torch.bool and masks.shape == (2, 160, 160)
    assert torch.equal(masks, logits[:, 1] > logits[:, 0])


def test_padded_tokens_and_batch_composition_do_not_matter(tiny):
    b = _batch(tiny, b=3)
    other = b["input_ids"].clone()
    other[0, 8:] = 555  # padded positions of sample 0 get other ids
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
        assert torch.allclose(ref, tiny(b["image"], other, b["attention_mask"]), atol=1e-5)
        alone = tiny(b["image"][1:2], b["input_ids"][1:2], b["attention_mask"][1:2])
    torch.testing.assert_close(alone, ref[1:2], atol=1e-4, rtol=1e-4)


def test_loss_is_class_weighted_ce_and_trains_every_part():
    torch.manual_seed(0)
    model = build_model("lavt", variant="tiny").train()
    b = _batch(model)
    out = model.loss(b)
    assert set(out) == {"ce", "total"} and out["total"] is out["ce"]
    out["total"].backward()
    for part in ("backbone", "classifier", "text_encoder"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part
    model.eval()
    with torch.no_grad():
        logits = model(b["image"], b["input_ids"], b["attention_mask"])
        expected = F.cross_entropy(logits, b["mask"].long(), weight=torch.tensor([0.9, 1.1]))
        torch.testing.assert_close(model.loss(b)["ce"], expected)
    with pytest.raises(RefbenchError, match="batch\\['mask'\\] must be"):
        model.loss({**b, "mask": b["mask"][:, :10]})
    with pytest.raises(RefbenchError, match="lacks 'mask'"):
        model.loss({k: v for k, v in b.items() if k != "mask"})


def test_bf16_autocast_forward(tiny):
    b = _batch(tiny)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = tiny(b["image"], b["input_ids"], b["attention_mask"])
        masks = tiny.predict(b["image"], b["input_ids"], b["attention_mask"])
    assert torch.isfinite(logits.float()).all() and masks.shape == (2, 160, 160)


def _official_layout(model, ddp=True) -> dict:
    sd = model.state_dict()
    main = {("module." if ddp else "") + k: v for k, v in sd.items() if not k.startswith("text_encoder.")}
    bert = {k[len("text_encoder."):]: v for k, v in sd.items() if k.startswith("text_encoder.")}
    bert["embeddings.position_ids"] = torch.arange(512)[None]  # what older HF BERTs save
    return {"model": main, "bert_model": bert, "epoch": 39}


def test_checkpoint_roundtrips(tiny, tmp_path):
    b = _batch(tiny)
    with torch.no_grad():
        ref = tiny(b["image"], b["input_ids"], b["attention_mask"])
    save_checkpoint(tiny, tmp_path / "ours.pth", trained_on="synthetic")
    torch.save(_official_layout(tiny), tmp_path / "official.pth")
    torch.save({"model": tiny.state_dict()}, tmp_path / "lavt_one.pth")  # BERT inside as text_encoder.*
    for name in ("ours.pth", "official.pth", "lavt_one.pth"):
        torch.manual_seed(1)
        fresh = build_model("lavt", variant="tiny").eval()
        notes = fresh.load_checkpoint(str(tmp_path / name))
        assert notes and all(isinstance(n, str) for n in notes)
        with torch.no_grad():
            assert torch.equal(fresh(b["image"], b["input_ids"], b["attention_mask"]), ref), name


def test_wrong_checkpoints_give_one_clear_error(tiny, tmp_path):
    root = _parity_root()
    magnet_keys = [e[0] for e in json.loads((root / "magnet" / "spec.json").read_text())["model"]] if root else \
        ["image_model.patch_embed.proj.weight", "language_model.embeddings.word_embeddings.weight", "lang_proj.weight"]
    torch.save({"model": {k: torch.zeros(1) for k in magnet_keys}}, tmp_path / "magnet_refcoco.pth")
    with pytest.raises(RefbenchError, match="looks like a checkpoint of another model .*image_model") as err:
        tiny.load_checkpoint(str(tmp_path / "magnet_refcoco.pth"))
    assert "\n" not in str(err.value)

    if root:  # DMMI shares LAVT's Swin key names, but has a contrastive head and another decoder
        dmmi = json.loads((root / "dmmi" / "spec.json").read_text())
        torch.save({"model": {k: torch.zeros(1) for k, _, _ in dmmi["model"]},
                    "bert_model": {k: torch.zeros(1) for k, _, _ in dmmi["bert_model"]}}, tmp_path / "dmmi.pth")
        with pytest.raises(RefbenchError, match=r"another model \(its top-level prefixes: backbone, classifier, "
                                                r"contrastive, text_encoder"):
            tiny.load_checkpoint(str(tmp_path / "dmmi.pth"))

    torch.manual_seed(0)
    wider = build_model("lavt", variant="tiny", decoder_hidden=32)
    torch.save(_official_layout(wider), tmp_path / "wider.pth")
    with pytest.raises(RefbenchError, match=r"shape mismatch 31 \[classifier.conv1_4.weight checkpoint "
                                            r"\(32, 384, 3, 3\) vs model \(64, 384, 3, 3\)"):
        tiny.load_checkpoint(str(tmp_path / "wider.pth"))

    data = (tmp_path / "wider.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(RefbenchError, match="truncated or corrupt"):
        tiny.load_checkpoint(str(tmp_path / "truncated.pth"))

    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"model": tiny.state_dict(), "payload": Exploit()}, tmp_path / "exploit.pth")
    with pytest.raises(RefbenchError, match="refusing to unpickle"):
        tiny.load_checkpoint(str(tmp_path / "exploit.pth"))

    save_checkpoint(tiny, tmp_path / "tiny.pth")
    paper_named = build_model("lavt", variant="tiny")
    paper_named.variant = "paper"
    with pytest.raises(RefbenchError, match="build it with variant='tiny'"):
        paper_named.load_checkpoint(str(tmp_path / "tiny.pth"))


def test_bad_inputs(tiny):
    b = _batch(tiny)
    with pytest.raises(RefbenchError, match="images must be float"):
        tiny(b["image"][:, :1], b["input_ids"], b["attention_mask"])
    with pytest.raises(RefbenchError, match="token ids must lie"):
        tiny(b["image"], b["input_ids"] + 40000, b["attention_mask"])


def test_build_options():
    with pytest.raises(RefbenchError, match="unknown LAVT config field 'windo'"):
        build_model("lavt", variant="tiny", windo=3)
    model = build_model("lavt", variant="tiny", input_size=128)
    assert model.input_size == 128 and model.config.swin.window_size == 7


def test_pretrained_init_from_local_files(tmp_path):
    """Training init: Swin ImageNet weights (swin_path) and a local HF BERT directory (bert_path)."""
    from transformers import BertModel

    from baselines.common.swin import SwinTransformer
    from baselines.lavt.config import TINY

    torch.manual_seed(0)
    swin = SwinTransformer(TINY.swin)
    cls_ckpt = {k: v for k, v in swin.state_dict().items() if not k.startswith("norm")}
    cls_ckpt.update({"norm.weight": torch.ones(256), "norm.bias": torch.zeros(256), "head.weight": torch.zeros(5, 256)})
    torch.save({"model": cls_ckpt}, tmp_path / "swin_tiny_cls.pth")
    bert = BertModel(TINY.text.to_hf(), add_pooling_layer=True)
    bert.save_pretrained(tmp_path / "bert-tiny")

    model = build_model("lavt", variant="tiny", swin_path=str(tmp_path / "swin_tiny_cls.pth"),
                        bert_path=str(tmp_path / "bert-tiny"))
    assert torch.equal(model.backbone.layers[2].blocks[1].attn.qkv.weight, swin.layers[2].blocks[1].attn.qkv.weight)
    assert torch.equal(model.text_encoder.encoder.layer[1].output.dense.weight, bert.encoder.layer[1].output.dense.weight)
    assert any("kept initialisation for: layers.0.fusion, layers.0.res_gate" in n for n in model.init_notes)
    assert any("BERT initialised from" in n for n in model.init_notes)
