"""`refbench predict`: the shipped tiny weights on a synthetic image; predict's canvas mask is eval's prediction."""
import json

import numpy as np
import pytest
from PIL import Image

from refbench.core.results import read_records_jsonl


def _first_val_sample(root):
    from refbench.data import open_split

    split = open_split("synth/val", root)
    return split, split.samples[0]


def test_predict_writes_masks_at_the_image_size(synth_tiny, tmp_path, run_cli):
    split, s = _first_val_sample(synth_tiny)
    image = split.image_path(s)
    out = tmp_path / "pred"
    code, stdout, err = run_cli("predict", "--model", "lavt", "--variant", "tiny", "--image", image,
                                "--text", s.sentence, "--text", "the $x^2$ thing", "--out", out)
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["k"] for r in rows] == [0, 1] and rows[1]["text"] == "the $x^2$ thing"
    for r in rows:
        with Image.open(out / r["mask"]) as m:
            assert m.mode == "L" and m.size == (s.width, s.height) == (r["width"], r["height"])
            values = set(np.unique(np.asarray(m)).tolist())
        assert values <= {0, 255}
        assert r["foreground_pixels"] == int((np.asarray(Image.open(out / r["mask"])) > 0).sum())
        with Image.open(out / r["overlay"]) as ov:
            colors = np.unique(np.asarray(ov.convert("RGB")).reshape(-1, 3), axis=0)
            assert ov.size[0] > 300 and len(colors) > 50  # a real figure
        assert r["protocol"] == "lavt" and len(r["checkpoint_sha256"]) == 64
    assert f"{image.stem}_0.png" in stdout and "nearest" in stdout


def test_predict_equals_eval_on_the_protocol_canvas(synth_tiny, tmp_path, run_cli):
    """eval --save-masks on one sample and predict on its image and sentence give the same canvas mask."""
    from refbench.predict import load_predictor, predict_image, read_image, to_image_size

    split, s = _first_val_sample(synth_tiny)
    run = tmp_path / "run"
    code, _, err = run_cli("eval", "--model", "lavt", "--variant", "tiny", "--split", "synth/val", "--data-root",
                           synth_tiny, "--limit", 1, "--batch-size", 1, "--bootstrap", 0, "--workers", 0,
                           "--save-masks", "--out", run)
    assert code == 0, err
    rec, _ = read_records_jsonl(run / "records.jsonl")
    assert rec.ids == [s.sample_id]
    saved = np.asarray(Image.open(run / "masks" / f"{s.sample_id}.png")) > 0
    p = load_predictor("lavt", "tiny")
    img = read_image(split.image_path(s))
    pred = predict_image(p, img, [s.sentence])[0]
    assert pred.canvas.shape == (480, 480) and saved.any()
    assert np.array_equal(pred.canvas, saved)
    assert int(rec.pred_area[0]) == int(pred.canvas.sum())
    assert pred.mask.shape == (s.height, s.width)
    assert np.array_equal(pred.mask, to_image_size(saved, s.width, s.height))


def test_predict_batch_file(synth_tiny, tmp_path, run_cli):
    split, s = _first_val_sample(synth_tiny)
    other = split.samples[-1]
    images = tmp_path / "in"
    images.mkdir()
    a = images / "a b.jpg"
    a.write_bytes(split.image_path(s).read_bytes())
    batch = images / "batch.jsonl"
    batch.write_text(json.dumps({"image": "a b.jpg", "text": [s.sentence, "everything"]}) + "\n\n"
                     + json.dumps({"image": str(split.image_path(other)), "text": [other.sentence]}) + "\n")
    out = tmp_path / "out"
    code, _, err = run_cli("predict", "--model", "magnet", "--variant", "tiny", "--batch", batch, "--out", out,
                           "--batch-size", 1)
    assert code == 0, err
    names = sorted(p.name for p in out.glob("*.png"))
    stem = split.image_path(other).stem
    assert names == sorted(["a_b_0.png", "a_b_0_overlay.png", "a_b_1.png", "a_b_1_overlay.png",
                            f"{stem}_0.png", f"{stem}_0_overlay.png"])
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3
    # an earlier predict folder is written again; a folder with other files is refused
    assert run_cli("predict", "--model", "magnet", "--variant", "tiny", "--batch", batch, "--out", out)[0] == 0


@pytest.mark.parametrize("line,needle", [
    ('{"image": "x.jpg", "text": "one string"}', "must be a list"),
    ('{"image": "x.jpg", "texts": ["a"]}', "unknown key 'texts'"),
    ('{"image": "", "text": ["a"]}', "non-empty path"),
    ('{"image": "x.jpg", "text": [""]}', "sentence 1 is empty"),
    ('["x.jpg"]', "expected an object"),
    ('{"image": "x.jpg", "text": ["a"]', "not valid JSON"),
    ('{"image": "missing.jpg", "text": ["a"]}', "missing.jpg"),
])
def test_predict_batch_file_errors_name_the_line(line, needle, synth_tiny, tmp_path, run_cli):
    split, s = _first_val_sample(synth_tiny)
    (tmp_path / "x.jpg").write_bytes(split.image_path(s).read_bytes())
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"image": "x.jpg", "text": ["fine"]}) + "\n" + line + "\n")
    code, _, err = run_cli("predict", "--model", "lavt", "--variant", "tiny", "--batch", batch,
                           "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    if "missing" not in needle:
        assert "line 2" in err
    assert not (tmp_path / "o").exists()


def test_predict_refuses_bad_input_before_work(synth_tiny, tmp_path, run_cli):
    split, s = _first_val_sample(synth_tiny)
    image = split.image_path(s)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        (["--image", image, "--out", tmp_path / "o"], "--text"),
        (["--image", image, "--text", "  ", "--out", tmp_path / "o"], "sentence 1 is empty"),
        (["--image", tmp_path / "nope.jpg", "--text", "a", "--out", tmp_path / "o"], "not found"),
        (["--image", image, "--text", "a", "--out", foreign], "refbench did not write"),
        (["--image", image, "--text", "a", "--batch", tmp_path / "b.jsonl", "--out", tmp_path / "o"], "replaces"),
        (["--image", image, "--text", "a", "--out", tmp_path / "o", "--batch-size", 0], "batch-size"),
        (["--image", image, "--text", "a", "--out", image.parent], "input"),
    ]
    for args, needle in cases:
        code, _, err = run_cli("predict", "--model", "lavt", "--variant", "tiny", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, (args, err)
    assert not (tmp_path / "o").exists() and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    code, _, err = run_cli("predict", "--model", "lavt", "--image", image, "--text", "a", "--out", tmp_path / "o")
    assert code == 2 and "needs --checkpoint" in err  # the paper variant has no shipped weights
