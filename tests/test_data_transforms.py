"""RISDataset under the protocols: LAVT stretch + nearest GT, ReLA polygon GT, CRIS letterbox,
input-size overrides, missing images, collate."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from refbench.build.synth import ensure_synth
from refbench.data import RISDataset, collate, open_split
from refbench.data.masks import rasterize_polygons
from refbench.data.transforms import (MEAN_STD, Letterbox, letterbox_image, letterbox_mask, letterbox_to_original,
                                      resize_mask_nearest)
from refbench.core.errors import RefbenchError
from refbench.core.protocols import get_protocol


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return ensure_synth("tiny", 0, tmp_path_factory.getbasetemp() / "refbench-synth-cache")


@pytest.fixture(scope="module")
def val(synth_root):
    return open_split("synth-zom/val", synth_root)


def _official_lavt_image(path, size=480):
    # What LAVT's transforms do: PIL bilinear Resize, ToTensor, Normalize (written out here).
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0
    mean, std = (np.array(v, np.float32).reshape(3, 1, 1) for v in MEAN_STD["imagenet"])
    return (x - mean) / std


def test_lavt_item_matches_the_official_transform(val):
    ds = RISDataset(val, "lavt")
    item = ds[0]
    s = val.samples[0]
    assert item["image"].shape == (3, 480, 480) and item["image"].dtype == torch.float32
    assert np.abs(item["image"].numpy() - _official_lavt_image(val.image_path(s))).max() < 1e-5
    assert item["input_ids"].shape == (20,) and item["input_ids"].dtype == torch.int64
    assert item["attention_mask"].dtype == torch.int64 and int(item["attention_mask"].sum()) >= 3
    gt = Image.fromarray(val.gt_mask(s, "lavt").astype(np.uint8), mode="P").resize((480, 480), Image.NEAREST)
    assert item["mask"].dtype == torch.bool and np.array_equal(item["mask"].numpy(), np.asarray(gt) == 1)
    assert (item["sample_id"], item["type"], item["index"]) == (s.sample_id, s.type, 0)
    assert item["orig_size"].tolist() == [480, 640]
    assert "letterbox" not in item


def test_zero_target_items_have_empty_masks(val):
    ds = RISDataset(val, "refzom")
    zero = [i for i, s in enumerate(val.samples) if s.type == "zero"]
    many = [i for i, s in enumerate(val.samples) if s.type == "many"]
    assert zero and many
    assert not ds[zero[0]]["mask"].any()
    assert ds[many[0]]["mask"].sum() > ds[many[0]]["mask"].numel() * 0.005


def test_polygon_gt_rasterizes_scaled_polygons(val):
    ds = RISDataset(val, "gres")
    near = RISDataset(val, get_protocol("gres").replace(name="gres-nearest", gt_resize="nearest"))
    checked = 0
    assert np.array_equal(ds[0]["mask"].numpy(), ds.gt(0))
    for i, s in enumerate(val.samples[:30]):
        if s.type == "zero":
            continue
        polys = val.gt_polygons(s)
        got = ds.gt(i)
        if all(p is not None for p in polys):
            scale = np.array([480 / s.width, 480 / s.height])
            want = rasterize_polygons([[q * scale for q in p] for p in polys], 480, 480, "union")
            assert np.array_equal(got, want)
            checked += 1
        other = near.gt(i)
        iou = (got & other).sum() / max((got | other).sum(), 1)
        assert iou > 0.9  # two rasterizations of the same shapes
    assert checked > 3


def test_cris_letterbox_geometry_and_inverse(val):
    proto = get_protocol("cris").replace(name="cris-bert", tokenizer="bert", token_length=20)
    ds = RISDataset(val, proto)
    item = ds[0]
    s = val.samples[0]
    assert item["image"].shape == (3, 416, 416)
    scale, pad_x, pad_y = item["letterbox"].tolist()
    assert scale == pytest.approx(0.65) and pad_x == pytest.approx(0.0) and pad_y == pytest.approx(52.0)
    # the padding is the CLIP mean, i.e. ~0 after normalization
    assert item["image"][:, :50, :].abs().max() < 0.01 and item["image"][:, -50:, :].abs().max() < 0.01
    assert item["mask"].shape == (480, 640)  # canvas None: GT at the original size
    gt = val.gt_mask(s, "union")
    boxed = letterbox_mask(gt, Letterbox(scale, pad_x, pad_y), 416)
    back = letterbox_to_original(torch.from_numpy(boxed).float(), item["letterbox"], 480, 640) > 0.5
    iou = (back.numpy() & gt).sum() / (back.numpy() | gt).sum()
    assert iou > 0.93


def test_letterbox_matches_opencv_index_convention():
    # A ramp image (value = column / 4): letterboxed pixel x must sample original column
    # (x - pad) / scale exactly, as cv2.warpAffine does; PIL's centre convention alone would
    # be off by 4.5 columns (1.1 grey levels) at scale 0.1.
    w, h = 1000, 500
    cols = np.tile(np.arange(w, dtype=np.float64) / 4, (h, 1))
    img = Image.fromarray(np.stack([np.round(cols).astype(np.uint8)] * 3, -1))
    out, lb = letterbox_image(img, 100)
    assert (lb.scale, lb.pad_x, lb.pad_y) == (0.1, 0.0, 25.0)
    row = np.asarray(out, np.float32)[50, :, 0]
    expect = (np.arange(100) - lb.pad_x) / lb.scale / 4
    assert np.abs(row[2:-2] - expect[2:-2]).max() < 0.6
    assert tuple(np.asarray(out)[5, 50]) == tuple(int(round(c * 255)) for c in MEAN_STD["clip"][0])
    pred = torch.from_numpy(np.asarray(out, np.float32)[..., 0])
    back = letterbox_to_original(pred, lb.as_tensor(), h, w)
    assert back.shape == (h, w)
    assert (back[20:-20, 20:-20] - torch.from_numpy(cols[20:-20, 20:-20]).float()).abs().max() < 0.6


def test_input_size_override_keeps_the_protocol_canvas(val):
    ds = RISDataset(val, "lavt", input_size=160)
    item = ds[1]
    assert item["image"].shape == (3, 160, 160) and item["mask"].shape == (480, 480)


def test_original_size_masks_are_kept_as_lists(tmp_path, val):
    ds = RISDataset(val, "lavt-original")
    batch = collate([ds[0], ds[1]])
    assert isinstance(batch["mask"], torch.Tensor) and batch["mask"].shape == (2, 480, 640)
    odd = dict(ds[1], mask=torch.zeros(3, 5, dtype=torch.bool))
    mixed = collate([ds[0], odd])
    assert isinstance(mixed["mask"], list) and mixed["mask"][1].shape == (3, 5)
    assert mixed["sample_id"] == [val.samples[0].sample_id, val.samples[1].sample_id]
    assert mixed["index"].tolist() == [0, 1] and mixed["image"].shape == (2, 3, 480, 480)


def test_missing_image_is_an_error_or_skipped_and_reported(tmp_path, synth_root):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth_root, root)
    sd = open_split("synth/val", root)
    gone = sd.image_path(sd.samples[0])
    gone.unlink()
    with pytest.raises(RefbenchError) as e:
        RISDataset(sd, "lavt")
    msg = str(e.value)
    assert "\n" not in msg and str(gone) in msg and "--skip-missing-images" in msg
    ds = RISDataset(sd, "lavt", skip_missing_images=True)
    lost = [s.sample_id for s in sd.samples if s.image_file == gone.name]
    assert ds.missing == lost and ds.missing_paths == [gone]
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    got = [sid for b in loader if b is not None for sid in b["sample_id"]]
    assert got == [s.sample_id for s in sd.samples if s.sample_id not in set(lost)]
    assert collate([None, None]) is None


def test_corrupt_or_mismatched_image_gives_one_line(tmp_path, synth_root):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth_root, root)
    sd = open_split("synth/val", root)
    path = sd.image_path(sd.samples[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    ds = RISDataset(sd, "lavt")
    with pytest.raises(RefbenchError, match="cannot decode image"):
        ds[0]
    Image.new("RGB", (100, 50)).save(path, format="JPEG")
    with pytest.raises(RefbenchError, match="is 100x50 but instances.json says 640x480"):
        ds[0]


def test_resize_mask_nearest_is_pil_nearest():
    rng = np.random.default_rng(0)
    m = rng.random((37, 53)) > 0.5
    want = np.asarray(Image.fromarray(m.astype(np.uint8)).resize((20, 20), Image.NEAREST)) == 1
    assert np.array_equal(resize_mask_nearest(m, 20), want)
