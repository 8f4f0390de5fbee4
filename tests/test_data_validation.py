"""Annotations and images are validated before any work, in bounded memory, with one line naming
the file, the record and the fix (issue #18, part 4)."""
from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from refbench.core.errors import RefbenchError
from refbench.data import open_split
from refbench.data.coco import check_file_name, load_instances
from refbench.data.masks import (MAX_PIXELS, coverage_count, rasterize, rle_string_counts, screen_segmentations,
                                 validate_segmentation, walk_limit, walk_steps)

H, W = 48, 64
SQUARE = [10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]
NAN = float("nan")


# ---- polygons ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("segm,needle", [
    ([[10, 10, NAN, 20, 20, 30]], "polygon 0 has a NaN coordinate (x of point 1)"),
    ([SQUARE, [10, 10, 20, float("inf"), 20, 30]], "polygon 1 has a infinite coordinate (y of point 1)"),
    ([[10, 10, 20, 20, 30]], "odd number of coordinates (5)"),
    ([[10, "10", 20, 20, 30, 30]], "non-numeric coordinate '10'"),
    ([[10, 10, None, 20, 30, 30]], "non-numeric coordinate None"),
    ([[10, 10, True, 20, 30, 30]], "non-numeric coordinate True"),
    ([[10, 10, [20], 20, 30, 30]], "non-numeric"),
    ([SQUARE, 7], "polygon 1 is a int"),
    ([[10, 10, 1e9, 20, 20, 30]], "point 1 (1e+09, 20) lies far outside the 64x48 image"),
    ([[-200, 10, 20, 20, 20, 30]], "lies far outside"),
])
def test_bad_polygons_are_refused_with_the_record_and_the_fix(segm, needle):
    with pytest.raises(RefbenchError) as e:
        rasterize([segm], H, W, where="instances.json: annotation 7 (image 3)")
    msg = str(e.value)
    assert needle in msg and msg.startswith("instances.json: annotation 7 (image 3): ")
    assert msg.endswith("fix or drop the annotation") and "\n" not in msg
    assert screen_segmentations([segm], [H], [W]).tolist() == [True]


def test_zigzag_polygon_beyond_the_walk_limit_is_refused_before_pycocotools():
    # in-range coordinates, but a boundary far longer than the mask has pixels
    zig = np.tile([[0, 0], [W, H]], (400, 1)).ravel().astype(float).tolist()
    assert walk_steps(np.asarray(zig)) > walk_limit(H, W)
    with pytest.raises(RefbenchError, match="has a boundary of .* pixels for a 64x48 image"):
        rasterize([[zig]], H, W)
    assert screen_segmentations([[zig]], [H], [W]).tolist() == [True]


def test_walk_steps_is_what_pycocotools_walks():
    # rleFrPoly: points scaled by 5, (int)(v + .5), then one boundary point per step of each edge
    assert walk_steps(np.array([0.0, 0.0, 10.0, 0.0, 10.0, 4.0])) == (50 + 1) + (20 + 1) + (50 + 1)
    # C's (int)(5 * -0.15 + .5) truncates -0.25 to 0 (floor would give -1 and 20 steps)
    assert walk_steps(np.array([-0.15, 0.0, 1.0, 0.0, 1.0, 1.0])) == (5 + 1) + (5 + 1) + (5 + 1)


def test_short_polygons_are_dropped_and_valid_ones_unchanged():
    assert validate_segmentation([[1, 1, 30, 30]], H, W) == []
    want = mask_utils.decode(mask_utils.frPyObjects([SQUARE], H, W))[..., 0].astype(bool)
    assert np.array_equal(rasterize([[SQUARE, [1, 1]]], H, W), want)


def test_screening_agrees_with_the_full_check_on_random_segmentations():
    rng = np.random.default_rng(0)
    segms, hs, ws, valid = [], [], [], []
    for k in range(600):
        h, w = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        polys = []
        for _ in range(int(rng.integers(0, 3))):
            n = int(rng.integers(1, 9)) * 2
            if k % 2:  # odd k: anything goes (far points, NaN, odd lengths)
                n += int(rng.random() < 0.1)
                p = rng.uniform(-1.5 * w, 2.5 * w, n)
                if rng.random() < 0.1:
                    p[int(rng.integers(n))] = NAN
            else:      # even k: well-formed polygons inside the image
                p = np.where(np.arange(n) % 2 == 0, rng.uniform(0, w, n), rng.uniform(0, h, n))
            polys.append(p.tolist())
        segms.append(polys)
        hs.append(h)
        ws.append(w)
        valid.append(k % 2 == 0)
    flags = screen_segmentations(segms, hs, ws)
    n_bad = 0
    for s, h, w, flagged, good in zip(segms, hs, ws, flags, valid):
        try:
            validate_segmentation(s, h, w)
        except RefbenchError:
            n_bad += 1
            assert flagged  # nothing the full check refuses passes the screen
        if good:
            assert not flagged  # and well-formed polygons are not sent down the slow path
    assert n_bad > 50


NAN_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from pycocotools import mask as mask_utils
    from refbench.core.errors import RefbenchError
    from refbench.data.masks import rasterize
    nan = float("nan")
    polys = {"nan": [[10.0, 10.0, nan, 20.0, 20.0, 30.0]], "huge": [[10.0, 10.0, 1e9, 20.0, 20.0, 30.0]]}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
    if sys.argv[1] == "raw":          # what refbench did before: straight into pycocotools
        mask_utils.frPyObjects(polys[sys.argv[2]], 480, 640)
        print("survived")
    else:
        try:
            rasterize([polys[sys.argv[2]]], 480, 640, where="instances.json: annotation 1 (image 1)")
        except RefbenchError as e:
            print("refused:", e)
    print("rss_growth_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0)
""")


@pytest.mark.parametrize("kind", ["nan", "huge"])
def test_one_bad_polygon_cannot_blow_up_memory(kind, tmp_path):
    """The reported blow-up (one NaN coordinate -> ~20 GB in a data-loader worker), reproduced under
    an address-space limit of +256 MB: pycocotools alone dies, refbench refuses in < 16 MB."""
    script = tmp_path / "probe.py"
    script.write_text(NAN_PROBE)
    raw = subprocess.run([sys.executable, str(script), "raw", kind], capture_output=True, text=True, timeout=120)
    assert raw.returncode != 0 and "survived" not in raw.stdout  # the hazard is real (malloc fails -> crash)
    ours = subprocess.run([sys.executable, str(script), "refbench", kind], capture_output=True, text=True,
                          timeout=120)
    assert ours.returncode == 0, ours.stderr
    assert "refused: instances.json: annotation 1 (image 1): polygon 0" in ours.stdout
    growth_kb = int(ours.stdout.split("rss_growth_kb")[1])
    assert growth_kb < 16 * 1024


# ---- RLE -----------------------------------------------------------------------------------------------------------
def test_compressed_rle_counts_decode_like_pycocotools():
    rng = np.random.default_rng(1)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 80, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        flat = m.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat.astype(int))) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
        runs = np.concatenate([[0], runs]) if flat[0] else runs
        got = rle_string_counts(mask_utils.encode(np.asfortranarray(m))["counts"])
        assert np.array_equal(got, runs)


@pytest.mark.parametrize("segm,needle", [
    ({"size": [H, W], "counts": "0" + "\x7f"}, "compressed RLE string is malformed"),
    ({"size": [H, W], "counts": "1o"}, "unterminated"),        # 'o' = 63: "more groups follow", then nothing
    ({"size": [H, W], "counts": "PQ1"}, "must be non-negative and sum to height*width = 3072"),
    ({"size": [H, W], "counts": [100, -4, 2976]}, "non-negative integers summing"),
    ({"size": [H, W], "counts": [1.5, 3070.5]}, "non-negative integers summing"),
    ({"size": [H, W + 1], "counts": [3120]}, "RLE size [48, 65] does not match the image size [48, 64]"),
    ({"size": "48x64", "counts": [3072]}, "does not match the image size"),
    ({"size": [H, W], "counts": 3072}, "counts must be a list of integers or a string"),
    ({"counts": [3072]}, "neither a polygon list nor an RLE dict"),
    ([{"size": [H, W], "counts": [3072]}, {"size": [H, W], "counts": [5]}], "RLE part 1"),
])
def test_bad_rle_is_refused_before_decoding(segm, needle):
    with pytest.raises(RefbenchError) as e:
        rasterize([segm], H, W, where="inst.json: annotation 2 (image 1)")
    assert needle in str(e.value)


def test_overlong_compressed_rle_would_overflow_pycocotools_buffer():
    # counts summing past h*w make pycocotools' decoder write past its buffer: refused first
    rle = mask_utils.encode(np.asfortranarray(np.ones((H, W * 2), np.uint8)))
    with pytest.raises(RefbenchError, match="sum to height\\*width = 3072 \\(they sum to 6144\\)"):
        rasterize([{"size": [H, W], "counts": rle["counts"].decode()}], H, W)


def test_mask_size_limit():
    with pytest.raises(RefbenchError, match="above refbench's limit of 100 MP"):
        rasterize([[SQUARE]], 20000, 20000)
    with pytest.raises(RefbenchError, match="not a pair of positive integers"):
        rasterize([[SQUARE]], 0, 5)


def test_many_polygons_decode_one_at_a_time_and_saturate():
    # 300 copies of one square: count saturates at 255 instead of wrapping to 44 (uint8)
    count = coverage_count([SQUARE] * 300, H, W)
    assert count.max() == 255
    assert not rasterize([[SQUARE] * 300], H, W, "lavt").any()
    assert rasterize([[SQUARE] * 300], H, W, "union").sum() == 400


# ---- instances.json -------------------------------------------------------------------------------------------------
def _instances(**changes):
    doc = {"images": [{"id": i, "file_name": f"img{i}.jpg", "height": H, "width": W} for i in (1, 2)],
           "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]},
                           {"id": 20, "image_id": 2, "category_id": 1, "segmentation": [SQUARE]}],
           "categories": [{"id": 1, "name": "thing"}]}
    for path, value in changes.items():
        section, idx, key = path.split("__")
        doc[section][int(idx)][key] = value
    return doc


@pytest.mark.parametrize("changes,needle", [
    ({"images__1__id": 1}, "image id 1 appears twice (images[0] and images[1])"),
    ({"annotations__1__id": 10}, "annotation id 10 appears twice (annotations[0] and annotations[1])"),
    ({"images__0__height": 0}, "images[0] has height 0, not a positive integer"),
    ({"images__1__width": -640}, "images[1] has width -640, not a positive integer"),
    ({"images__0__height": 47.5}, "images[0] has height 47.5"),
    ({"images__0__height": "48"}, "images[0] has height '48'"),
    ({"images__0__width": True}, "images[0] has width True"),
    ({"images__0__id": "1"}, "images[0] has id '1', not an integer"),
    ({"images__0__height": 20000, "images__0__width": 20000}, "is 20000x20000 = 400 MP, above refbench's limit"),
    ({"images__0__file_name": "../../etc/passwd"}, "contains '..' (it would leave the image folder)"),
    ({"images__0__file_name": "/etc/passwd"}, "is an absolute path"),
    ({"images__0__file_name": "a\\..\\b.jpg"}, "contains '..'"),
    ({"images__0__file_name": ""}, "is not a non-empty string"),
    ({"images__0__file_name": 5}, "is not a non-empty string"),
    ({"annotations__1__image_id": 99}, "annotations[1] (id 20) belongs to image 99, which is not in 'images'"),
    ({"annotations__0__id": 1.5}, "annotations[0] has id 1.5"),
])
def test_instances_refusals_name_the_entry(tmp_path, changes, needle):
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(_instances(**changes)))
    with pytest.raises(RefbenchError) as e:
        load_instances(p)
    assert needle in str(e.value) and str(e.value).startswith(str(p))


def test_instances_accept_integral_floats_and_safe_subfolders(tmp_path):
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(_instances(images__0__height=48.0, images__0__file_name="sub/dir/a..b.jpg")))
    coco = load_instances(p)
    assert coco.images[1].height == 48 and isinstance(coco.images[1].height, int)
    assert check_file_name("train2014/COCO_1.jpg") is None and check_file_name("C:evil.jpg")


def test_bad_annotations_are_found_in_bulk(tmp_path):
    doc = _instances(annotations__1__segmentation=[[1, 2, NAN, 4, 5, 6]])
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(doc))
    coco = load_instances(p)
    bad = coco.bad_anns(coco.anns)
    assert [a for a, _ in bad] == [20]
    assert bad[0][1] == (f"{p}: annotation 20 (image 2): polygon 0 has a NaN coordinate (x of point 1); "
                         f"fix or drop the annotation")
    coco.validate_anns([10])  # a good one passes (and is remembered)
    with pytest.raises(RefbenchError, match="annotation 20 \\(image 2\\)"):
        coco.validate_anns([10, 20])


# ---- refs ------------------------------------------------------------------------------------------------------------
def _refer_root(tmp_path, refs=None, anns=None):
    d = tmp_path / "refcoco"
    d.mkdir(parents=True, exist_ok=True)
    doc = _instances()
    if anns is not None:
        doc["annotations"] = anns
    (d / "instances.json").write_text(json.dumps(doc))
    sent = lambda i: {"raw": f"thing {i}", "sent": f"thing {i}", "sent_id": i, "tokens": ["thing"]}  # noqa: E731
    refs = refs or [{"ref_id": 1, "ann_id": 10, "image_id": 1, "category_id": 1, "split": "val",
                     "sentences": [sent(1)]},
                    {"ref_id": 2, "ann_id": 20, "image_id": 2, "category_id": 1, "split": "val",
                     "sentences": [sent(2)]}]
    (d / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return refs


def test_split_refuses_a_bad_polygon_before_any_work(tmp_path):
    anns = _instances()["annotations"]
    anns[1]["segmentation"] = [[1, 2, 3, NAN, 5, 6]]
    _refer_root(tmp_path, anns=anns)
    with pytest.raises(RefbenchError, match=r"instances.json: annotation 20 \(image 2\): polygon 0 has a NaN"):
        open_split("refcoco/val", tmp_path)


@pytest.mark.parametrize("edit,needle", [
    (lambda r: r[1].update(ann_id=10), "ref 2 is on image 2 but its annotation 10 belongs to image 1"),
    (lambda r: r[1].update(ann_id=99), "no annotation with id 99 (referenced by ref 2"),
    (lambda r: r[1].update(image_id=99, ann_id=99), "no image with id 99"),
    (lambda r: r[1]["sentences"][0].update(sent_id=1), "sent_id 1 appears twice in split 'val'"),
    (lambda r: r[1]["sentences"][0].update(sent_id="2"), "sentence 0 has sent_id '2', not an integer"),
    (lambda r: r[1]["sentences"][0].update(raw=None), "sentence 2 is a NoneType, not text"),
    (lambda r: r[1].update(ann_id=20.0), "has ann_id 20.0, not an integer"),
    (lambda r: r[1].update(ref_id="2"), "has ref_id '2', not an integer"),
])
def test_refs_refusals(tmp_path, edit, needle):
    refs = _refer_root(tmp_path)
    edit(refs)
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    with pytest.raises(RefbenchError) as e:
        open_split("refcoco/val", tmp_path)
    assert needle in str(e.value)


def test_refzom_non_zero_ref_without_annotations_is_refused(synth_tiny, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(synth_tiny, root, symlinks=True)
    path = root / "synth-zom" / "refs(final).p"
    from refbench.data.safe_pickle import load_pickle

    refs = load_pickle(path)
    i = next(k for k, r in enumerate(refs) if r["source"] != "zero" and r["split"] == "val")
    refs[i]["ann_id"] = []
    path.write_bytes(pickle.dumps(refs, protocol=2))
    with pytest.raises(RefbenchError, match=f"ref at position {i} .* lists no annotation; mark it source 'zero'"):
        open_split("synth-zom/val", root)


def test_data_check_reports_bad_annotations_and_still_counts(synth_tiny, tmp_path):
    import shutil

    from refbench.data.check import check_data_root

    root = tmp_path / "d"
    shutil.copytree(synth_tiny, root, symlinks=True)
    inst = root / "synth" / "instances.json"
    doc = json.loads(inst.read_text())
    poly = next(a for a in doc["annotations"] if isinstance(a["segmentation"][0], list))
    poly["segmentation"][0][1] = NAN
    inst.write_text(json.dumps(doc))
    res = {r.key: r for r in check_data_root(root, ["synth", "synth-zom"])}
    assert any(f"annotation {poly['id']} (image {poly['image_id']}): polygon 0 has a NaN" in e
               for e in res["synth"].errors)
    assert res["synth"].splits and not res["synth-zom"].errors  # counts still reported; other datasets unaffected


# ---- images ----------------------------------------------------------------------------------------------------------
def png_header_claiming(path, width, height):
    """A tiny valid PNG whose IHDR claims width x height (PIL reads the size without decoding)."""
    Image.new("L", (1, 1)).save(path, format="PNG")
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path):
    from refbench.data.dataset import load_rgb
    from refbench.data.transforms import open_image

    big = png_header_claiming(tmp_path / "big.jpg", 20000, 20000)
    with pytest.raises(RefbenchError, match="is larger than refbench's limit of 100 MP|is 20000x20000 = 400 MP"):
        load_rgb(big)
    # between PIL's warning threshold (~89 MP) and refbench's limit: no warning output, and still refused above
    edge = png_header_claiming(tmp_path / "edge.png", 10000, 9500)
    with _no_warnings():
        open_image(edge).close()
    over = png_header_claiming(tmp_path / "over.png", 10001, 10000)
    with pytest.raises(RefbenchError, match="100 MP"):
        open_image(over)
    assert 10001 * 10000 > MAX_PIXELS >= 10000 * 9500


class _no_warnings:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self.log = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        assert not self.log, [str(w.message) for w in self.log]


def test_image_size_mismatch_and_truncation_are_one_line(tmp_path):
    from refbench.data.dataset import load_rgb

    p = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30)).save(p)
    with pytest.raises(RefbenchError, match="image is 40x30 but instances.json says 64x48"):
        load_rgb(p, (64, 48))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(RefbenchError, match="cannot (decode|read) image"):
        load_rgb(p, (40, 30))


def test_check_image_headers_before_work(synth_tiny, tmp_path):
    import shutil

    from refbench.data.dataset import check_image_headers

    root = tmp_path / "d"
    shutil.copytree(synth_tiny, root, symlinks=True)
    sd = open_split("synth/val", root)
    check_image_headers(sd, sd.samples)  # all fine
    target = sd.image_path(sd.samples[0])
    png_header_claiming(target, 20000, 20000)
    with pytest.raises(RefbenchError, match=f"{target.name}: image is .*limit of 100 MP"):
        check_image_headers(sd, sd.samples)
