"""`refbench verify`: a run against the published number of its model and split."""
import json

import pytest


@pytest.fixture(scope="module")
def eval_doc(synth_tiny, lavt_tiny_checkpoint, tmp_path_factory):
    from refbench.cli import main

    out = tmp_path_factory.mktemp("verify") / "run"
    try:
        main(["eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root", str(synth_tiny),
              "--checkpoint", str(lavt_tiny_checkpoint), "--bootstrap", "20", "--workers", "0", "--out", str(out)])
    except SystemExit as e:
        assert e.code == 0
    return json.loads((out / "results.json").read_text())


def as_magnet_refcoco_val(doc, tmp_path, oiou, **identity):
    """The tiny LAVT run's document relabelled as MagNet on RefCOCO val under MagNet's protocol."""
    from refbench.core.protocols import get_protocol

    protocol = get_protocol("lavt").resolve("sigmoid>0.5")
    d = dict(doc, split_name="refcoco/val", protocol=protocol.to_dict(), protocol_hash=protocol.hash())
    d["identity"] = {**doc["identity"], "model": "magnet", "variant": "paper", "dataset": "refcoco", "split": "val",
                     "subset": None, "protocol_hash": protocol.hash(), **identity}
    d["metrics"] = {**doc["metrics"], "oIoU": oiou}
    d["ci"] = {**doc["ci"], "oIoU": [oiou - 0.5, oiou + 0.5]}
    p = tmp_path / "results.json"
    p.write_text(json.dumps(d))
    return p


def test_verify_reproduced_and_not(eval_doc, tmp_path, run_cli):
    p = as_magnet_refcoco_val(eval_doc, tmp_path, 75.20)  # MagNet Table 1: RefCOCO val oIoU 75.24
    code, out, err = run_cli("verify", p, "--metric", "oIoU")
    assert code == 0, err
    assert "75.24 (magnet:1)" in out and "-0.04" in out and "REPRODUCED: 1/1" in out
    code, out, _ = run_cli("verify", p)  # all metrics: MagNet Table 2 also publishes mIoU and P@X
    assert code == 1 and "77.43 (magnet:2)" in out and "NOT REPRODUCED: 1/5" in out
    p = as_magnet_refcoco_val(eval_doc, tmp_path, 74.90)
    code, out, _ = run_cli("verify", p, "--metric", "oIoU")
    assert code == 1 and "NOT REPRODUCED" in out and "-0.34" in out
    code, out, _ = run_cli("verify", p, "--metric", "oIoU", "--tolerance", "0.5")
    assert code == 0


def test_verify_refuses_partial_and_unknown(eval_doc, tmp_path, run_cli):
    p = as_magnet_refcoco_val(eval_doc, tmp_path, 75.2)
    d = json.loads(p.read_text())
    d["identity"]["limit"] = 10
    p.write_text(json.dumps(d))
    code, _, err = run_cli("verify", p)
    assert code == 2 and "complete split" in err
    code, _, err = run_cli("verify", tmp_path / "nope.json")
    assert code == 2 and "no such results file" in err
    q = tmp_path / "synth.json"
    q.write_text(json.dumps({**eval_doc, "identity": {**eval_doc["identity"], "variant": "paper"}}))  # nobody publishes paper-size LAVT on synth
    code, _, err = run_cli("verify", q)
    assert code == 2 and "no published number" in err


def test_verify_synth_run_against_refbench_reference(eval_doc, tmp_path, run_cli):
    """A fixed-seed (untrained) tiny LAVT does not reproduce the shipped model's reference numbers."""
    p = tmp_path / "synth.json"
    p.write_text(json.dumps(eval_doc))
    code, out, err = run_cli("verify", p)
    assert code == 1, err
    assert "41.40 (refbench:synth)" in out and "NO" in out

