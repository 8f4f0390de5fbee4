"""`refbench score`: PNG directories in, metrics + results JSON + records out; bad input -> exit 2."""
import json

import numpy as np
import pytest
from PIL import Image

from refbench.core.results import load_results, read_records_jsonl


def write_png(path, arr, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode).save(path)


@pytest.fixture
def dirs(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    a = np.zeros((10, 10), np.uint8)
    a[:2, :3] = 1          # GT 6 px
    pa = np.zeros((10, 10), np.uint8)
    pa[:2, :2] = 255       # pred 4 px, I = 4, U = 6
    write_png(gt / "a.png", a)
    write_png(pred / "a.png", pa)
    write_png(gt / "z.png", np.zeros((10, 10)))      # zero-target
    write_png(pred / "z.png", np.zeros((10, 10)))    # correctly empty
    write_png(pred / "extra.png", np.zeros((10, 10)))
    return tmp_path


def test_score_writes_results_and_records(dirs, run_cli):
    code, out, err = run_cli("score", "--pred", dirs / "pred", "--gt", dirs / "gt", "--protocol", "refzom",
                             "--json", dirs / "r.json", "--records", dirs / "r.jsonl", "--bootstrap", "100")
    assert code == 0, err
    assert "oIoU" in out and "Acc" in out and "protocol refzom" in out
    doc = load_results(dirs / "r.json")
    assert doc["metrics"]["oIoU"] == pytest.approx(100 * 4 / 6)
    assert doc["metrics"]["Acc"] == 100.0
    assert doc["counts"] == {"total": 2, "zero": 1, "one": 1, "many": 0}
    assert doc["protocol"]["binarize"] == "nonzero" and doc["protocol"]["canvas"] == 10
    assert set(doc["ci"]) == set(doc["metrics"])
    rec, dropped = read_records_jsonl(dirs / "r.jsonl")
    assert sorted(rec.ids) == ["a", "z"] and dropped == 0
    assert any("without a GT" in n for n in doc["notes"])


def test_score_lavt_counts_empty_gt_as_zero_iou(dirs, run_cli):
    code, out, _ = run_cli("score", "--pred", dirs / "pred", "--gt", dirs / "gt", "--json", dirs / "l.json",
                           "--bootstrap", "0")
    assert code == 0
    m = json.loads((dirs / "l.json").read_text())["metrics"]
    assert m["mIoU"] == pytest.approx(100 * (4 / 6 + 0) / 2)


def test_score_types_file(dirs, run_cli):
    (dirs / "types.json").write_text(json.dumps({"a": "many", "z": "zero"}))
    code, _, _ = run_cli("score", "--pred", dirs / "pred", "--gt", dirs / "gt", "--types", dirs / "types.json",
                         "--json", dirs / "t.json", "--bootstrap", "0")
    assert code == 0
    assert json.loads((dirs / "t.json").read_text())["counts"]["many"] == 1


@pytest.mark.parametrize("case,needle", [
    ("size", "predictions must be at the GT size"),
    ("missing", "no prediction PNG"),
    ("empty", "holds no .png"),
    ("protocol", "unknown protocol"),
    ("rgb", "single-channel"),
    ("types", "no entry"),
    ("nodir", "does not exist"),
])
def test_score_bad_input_one_line_exit_2(dirs, run_cli, case, needle):
    args = ["score", "--pred", dirs / "pred", "--gt", dirs / "gt", "--bootstrap", "0"]
    if case == "size":
        write_png(dirs / "pred" / "a.png", np.zeros((12, 10)))
    elif case == "missing":
        (dirs / "pred" / "a.png").unlink()
    elif case == "empty":
        (dirs / "e").mkdir()
        args[4] = dirs / "e"
    elif case == "protocol":
        args += ["--protocol", "lavtt"]
    elif case == "rgb":
        Image.fromarray(np.zeros((10, 10, 3), np.uint8), "RGB").save(dirs / "pred" / "a.png")
    elif case == "types":
        (dirs / "types.json").write_text(json.dumps({"a": "one"}))
        args += ["--types", dirs / "types.json"]
    elif case == "nodir":
        args[2] = dirs / "nope"
    code, out, err = run_cli(*args)
    assert code == 2
    assert needle in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_score_against_a_dataset_split(synth_tiny, tmp_path, run_cli):
    """--gt SPLIT: the GT is built on the protocol canvas exactly as `refbench eval` builds it."""
    from refbench.data import RISDataset, open_split

    sd = open_split("synth-zom/val", synth_tiny)
    ds = RISDataset(sd, "refzom")
    pred = tmp_path / "pred"
    pred.mkdir()
    for i, s in enumerate(ds.samples):  # perfect predictions
        Image.fromarray(ds.gt(i).astype(np.uint8) * 255).save(pred / f"{s.sample_id}.png")
    code, out, err = run_cli("score", "--pred", pred, "--gt", "synth-zom/val", "--data-root", synth_tiny,
                             "--protocol", "refzom", "--json", tmp_path / "r.json", "--bootstrap", 0)
    assert code == 0, err
    doc = load_results(tmp_path / "r.json")
    assert doc["metrics"]["oIoU"] == 100.0 and doc["metrics"]["Acc"] == 100.0
    assert doc["split_name"] == "synth-zom/val" and doc["counts"]["zero"] > 0 and doc["counts"]["many"] > 0
    assert doc["protocol"]["canvas"] == 480
    first = ds.samples[0].sample_id
    (pred / f"{first}.png").unlink()
    code, _, err = run_cli("score", "--pred", pred, "--gt", "synth-zom/val", "--data-root", synth_tiny,
                           "--protocol", "refzom", "--bootstrap", 0)
    assert code == 2 and "no prediction PNG for 1 of" in err
    code, _, err = run_cli("score", "--pred", pred, "--gt", "synth-zom/vall", "--data-root", synth_tiny)
    assert code == 2 and "not a dataset split" in err
