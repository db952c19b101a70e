"""Data-set loaders: tiny fake copies of each on-disk layout are written here and read back."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from training.datasets import RRSISD, RefSegRS, RISBench, build_dataset, swap_left_right
from training.datasets.coco_mask import (
    annotation_mask,
    polygon_decode,
    rle_decode,
    rle_encode,
    rle_from_string,
    rle_to_string,
)
from training.datasets.common import HFlipSwap

# ---------------------------------------------------------------------------------------------------- COCO masks


def test_rle_string_codec_by_hand():
    # maskApi.c: 5 bits per char + 48; the 4th count is stored as the difference to the 2nd (1 - 2 = -1 -> 'O')
    assert rle_to_string([5, 3, 2]) == "532"
    assert rle_to_string([4, 2, 1, 1]) == "421O"
    assert rle_from_string("421O") == [4, 2, 1, 1]
    assert rle_from_string(b"532") == [5, 3, 2]
    big = [0, 1000, 37, 5000, 3]
    assert rle_from_string(rle_to_string(big)) == big


def test_rle_column_major_and_roundtrip():
    # 3x2 mask, column-major runs: [1 bg, 2 fg, 3 bg] -> column 0 = [0,1,1], column 1 = [0,0,0]
    m = rle_decode({"size": [3, 2], "counts": [1, 2, 3]})
    assert m.tolist() == [[False, False], [True, False], [True, False]]
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) > 0.6
    assert (rle_decode(rle_encode(mask)) == mask).all()
    mask[0, 0] = True  # a mask that starts with foreground gets a leading 0 count
    assert (rle_decode(rle_encode(mask)) == mask).all()


def test_polygons_and_overlap_rule():
    (m,) = polygon_decode([[1, 1, 5, 1, 5, 5, 1, 5]], 8, 8)
    assert m[1:6, 1:6].all() and m.sum() == 25
    # two overlapping parts: the refer toolkit sums them, the authors keep == 1, so the overlap is background
    seg = [[0, 0, 3, 0, 3, 3, 0, 3], [2, 2, 5, 2, 5, 5, 2, 5]]
    am = annotation_mask(seg, 8, 8)
    assert not am[2, 2] and not am[3, 3] and am[0, 0] and am[5, 5]


# ---------------------------------------------------------------------------------------------------- RRSIS-D


@pytest.fixture()
def rrsisd_root(tmp_path):
    root = tmp_path / "rrsisd_data"
    (root / "rrsisd").mkdir(parents=True)
    (root / "images" / "rrsisd" / "JPEGImages").mkdir(parents=True)
    h, w = 32, 40
    masks = {}
    for k in (1, 2):
        Image.fromarray(np.full((h, w, 3), 40 * k, np.uint8)).save(
            root / "images" / "rrsisd" / "JPEGImages" / f"0000{k}.jpg")
    rle_mask = np.zeros((h, w), bool)
    rle_mask[4:10, 6:20] = True
    masks[11] = rle_mask
    inst = {
        "images": [{"id": 1, "file_name": "00001.jpg", "height": h, "width": w},
                   {"id": 2, "file_name": "00002.jpg", "height": h, "width": w}],
        "annotations": [
            {"id": 11, "image_id": 1, "segmentation": rle_encode(rle_mask), "category_id": 1},
            {"id": 12, "image_id": 2, "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]], "category_id": 2},
            {"id": 13, "image_id": 2, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]], "category_id": 2},
        ],
        "categories": [{"id": 1, "name": "vehicle"}, {"id": 2, "name": "storage tank"}],
    }
    (root / "rrsisd" / "instances.json").write_text(json.dumps(inst))
    refs = [
        {"ref_id": 0, "ann_id": 11, "image_id": 1, "split": "train", "category_id": 1,
         "sentences": [{"sent": "the vehicle on the left", "raw": "The vehicle on the left"},
                       {"sent": "a car", "raw": "A car"}]},
        {"ref_id": 1, "ann_id": 12, "image_id": 2, "split": "val", "category_id": 2,
         "sentences": [{"sent": "the big tank"}, {"sent": "tank in the middle"}]},
        {"ref_id": 2, "ann_id": 13, "image_id": 2, "split": "val", "category_id": 2,
         "sentences": [{"sent": "the corner tank"}]},
    ]
    with open(root / "rrsisd" / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh)
    return root, masks


def test_rrsisd_layout(rrsisd_root):
    root, masks = rrsisd_root
    train = RRSISD(root, "train", size=16, box_aug=False)
    assert len(train) == 1  # one sample per ref in training (random sentence)
    img, mask, text, sid = train.raw(0)
    assert img.shape == (32, 40, 3) and img.dtype == np.uint8
    assert (mask == masks[11]).all() and text in ("the vehicle on the left", "a car")
    item = train[0]
    assert item["image"].shape == (3, 16, 16) and item["mask"].shape == (16, 16)
    assert item["image"].dtype == torch.float32 and 0 <= float(item["image"].min()) <= float(item["image"].max()) <= 1
    val = RRSISD(root, "val", size=None)
    assert len(val) == 3  # every sentence of every ref
    texts = [val.raw(i)[2] for i in range(3)]
    assert texts == ["the big tank", "tank in the middle", "the corner tank"]
    m = val.raw(0)[1]
    assert m[10:21, 10:21].all() and m.sum() == 121
    assert build_dataset("rrsisd", "val", None, root=root).__len__() == 3
    with pytest.raises(ValueError):
        RRSISD(root, "test")


def test_rrsisd_authors_box_augmentation(rrsisd_root):
    root, _ = rrsisd_root
    ds = RRSISD(root, "train", size=None, box_aug=True)
    ds.boxed = {0}  # force the (normally 20%) augmented set to hold our only ref
    img = ds.raw(0)[0]
    assert (img == 0).all(axis=-1).sum() >= 32 * 32 // 2  # black boxes drawn on the image


# ---------------------------------------------------------------------------------------------------- RefSegRS


def test_refsegrs_layout(tmp_path):
    root = tmp_path / "RefSegRS"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in (7, 8):
        Image.fromarray(np.full((24, 24, 3), 10 * k, np.uint8)).save(root / "images" / f"{k}.tif")
        m = np.zeros((24, 24), np.uint8)
        m[:, :8] = 40  # <= 50: background
        m[:, 8:12] = 51  # > 50: foreground
        m[:, 12:] = 0
        Image.fromarray(m).save(root / "masks" / f"{k}.tif")
    (root / "output_phrase_test.txt").write_text("7 the road next to the vegetation\n8 a low vegetation\n")
    ds = RefSegRS(root, "test", size=12)
    assert len(ds) == 2
    img, mask, text, _ = ds.raw(1)
    assert text == "a low vegetation" and img.shape == (24, 24, 3)
    assert mask[:, 8:12].all() and mask.sum() == 24 * 4
    assert ds[0]["mask"].shape == (12, 12)


def test_risbench_layout(tmp_path):
    root = tmp_path / "RISBench"
    (root / "img_rgb").mkdir(parents=True)
    (root / "mask").mkdir()
    for name in ("val_1_2", "val_3_4"):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "img_rgb" / f"{name}.png")
        m = np.zeros((20, 20), np.uint8)
        m[5:10, 5:10] = 255
        Image.fromarray(m).save(root / "mask" / f"{name}.png")
    # keys with and without the extension
    (root / "output_phrase_val.txt").write_text("val_1_2.png the ship at the top\nval_3_4 the white plane\n")
    ds = RISBench(root, "val", size=None)
    assert [ds.raw(i)[2] for i in range(2)] == ["the ship at the top", "the white plane"]
    assert all(ds.raw(i)[1].sum() == 25 for i in range(2))
    with pytest.raises(FileNotFoundError):
        RISBench(root, "train")


# ---------------------------------------------------------------------------------------------------- GIS folder


def test_gis_folder_geotiff_geopackage(tmp_path):
    import pyogrio
    import rasterio
    import shapely
    from pyproj import Transformer
    from rasterio.transform import from_origin

    root = tmp_path / "gis"
    root.mkdir()
    x0, y0, res = 500000.0, 4_000_100.0, 0.5  # UTM 33N, 0.5 m pixels, 200 x 200
    data = np.random.default_rng(0).integers(0, 255, (3, 200, 200), dtype=np.uint8)
    with rasterio.open(root / "scene.tif", "w", driver="GTiff", width=200, height=200, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(x0, y0, res, res)) as dst:
        dst.write(data)
    # two tanks (same text) and one building, stored in WGS84 to exercise the reprojection
    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)

    def box_ll(c0, r0, c1, r1):  # pixel box -> lon/lat polygon
        xs = [x0 + c * res for c in (c0, c1, c1, c0)]
        ys = [y0 - r * res for r in (r0, r0, r1, r1)]
        return shapely.Polygon([to_ll.transform(x, y) for x, y in zip(xs, ys)])

    geoms = [box_ll(20, 20, 40, 40), box_ll(60, 20, 70, 30), box_ll(120, 120, 180, 160)]
    texts = np.array(["the storage tanks", "the storage tanks", "the large building"], dtype=object)
    splits = np.array(["train", "train", "val"], dtype=object)
    pyogrio.raw.write(str(root / "scene.gpkg"), np.array(shapely.to_wkb(geoms), dtype=object),
                      field_data=[texts, splits], fields=["text", "split"], crs="EPSG:4326",
                      geometry_type="Polygon", driver="GPKG")
    train = build_dataset("gis", "train", size=64, root=root, chip=100)
    assert len(train) == 2
    img, mask, text, _ = train.raw(0)
    assert img.shape == (100, 100, 3) and mask.shape == (100, 100) and text == "the storage tanks"
    # both tanks (same sentence) are in the mask: 20*20 + 10*10 pixels, within a pixel row/column of slack
    assert abs(int(mask.sum()) - 500) < 60
    assert train[0]["image"].shape == (3, 64, 64)
    val = build_dataset("gis", "val", size=None, root=root, chip=50)
    img, mask, text, _ = val.raw(0)
    assert text == "the large building"
    assert img.shape[0] >= 60 * 1.25 - 1  # the chip grows to hold an object larger than `chip`
    assert abs(int(mask.sum()) - 60 * 40) < 150
    # chip pixels are the raster's pixels
    with rasterio.open(root / "scene.tif") as src:
        assert src.read(1).dtype == np.uint8


# ---------------------------------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_splits_and_sentences():
    a = build_dataset("synthetic", "val", 64, length=12, scene_size=128)
    b = build_dataset("synthetic", "val", 64, length=12, scene_size=128)
    for i in (0, 5, 11):
        ia, ma, ta, _ = a.raw(i)
        ib, mb, tb, _ = b.raw(i)
        assert (ia == ib).all() and (ma == mb).all() and ta == tb
        assert ma.any(), f"sample {i} ({ta!r}) has an empty target"
    t = build_dataset("synthetic", "train", 64, length=12, scene_size=128)
    assert not (t.raw(0)[0] == a.raw(0)[0]).all()  # train and val scenes come from different seed streams
    item = a[3]
    assert item["image"].shape == (3, 64, 64) and set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
    lvl0 = build_dataset("synthetic", "val", None, length=40, level=0, scene_size=128)
    assert all(lvl0.expression(i)[1].kind == "class" for i in range(40))
    with pytest.raises(ValueError):
        build_dataset("synthetic", "holdout", 64)


def test_synthetic_distinct_refs_gives_one_scene_different_sentences():
    """distinct_refs (training only): the refs of a scene share its image and differ in sentence while the scene
    has enough sentences; without it (val/test) the samples are what they always were."""
    opts = dict(length=80, scene_size=128, density=1.6, level=2)
    plain = build_dataset("synthetic", "train", 64, **opts)
    dist = build_dataset("synthetic", "train", 64, distinct_refs=True, **opts)
    rps = dist.refs_per_scene
    repeats_plain = repeats_dist = 0
    for scene_idx in range(len(dist) // rps):
        idx = range(scene_idx * rps, (scene_idx + 1) * rps)
        texts = [dist.raw(i)[2] for i in idx]
        assert all((dist.raw(i)[0] == dist.raw(idx[0])[0]).all() for i in idx)  # one image
        assert all(dist.raw(i)[1].any() for i in idx)
        repeats_dist += rps - len(set(texts))
        repeats_plain += rps - len({plain.raw(i)[2] for i in idx})
    assert repeats_dist == 0 < repeats_plain
    again = build_dataset("synthetic", "train", 64, distinct_refs=True, **opts)
    assert [again.raw(i)[2] for i in range(8)] == [dist.raw(i)[2] for i in range(8)]  # deterministic


def test_synthetic_plural_single_names_one_object_in_the_plural():
    from training.datasets.synthetic import describe, generate_scene
    from training.datasets.vocabulary import NAMES

    plurals = {n for _, pl in NAMES.values() for n in pl} - {"water"}
    seen = 0
    for seed in range(10):
        scene = generate_scene(seed, 128, 1.6)
        counts = {}
        for o in scene.objects:
            counts[o.cls] = counts.get(o.cls, 0) + 1
        default = describe(scene, np.random.default_rng(seed), 0)
        assert default == describe(scene, np.random.default_rng(seed), 0, 0.0)  # off: the sentences as they were
        for e in describe(scene, np.random.default_rng(seed), 0, plural_single=1.0):
            cls = scene.objects[[o.label for o in scene.objects].index(e.target[0])].cls
            if counts[cls] == 1 and cls != "water":
                assert e.text.split()[-1] in plurals and len(e.target) == 1
                seen += 1
    assert seen > 3


def test_synthetic_sentences_are_true():
    """Spot-check the generator's semantics: superlatives pick the extreme, colours the colour."""
    from training.datasets.synthetic import describe, generate_scene

    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(12):
        scene = generate_scene(seed, 256)
        objs = {o.label: o for o in scene.objects}
        for e in describe(scene, rng, 2):
            tg = [objs[k] for k in e.target]
            same = [o for o in scene.objects if o.cls == tg[0].cls]
            if e.text.startswith(("the largest ", "the biggest ")) and " in the " not in e.text \
                    and " on the " not in e.text and "roofed" not in e.text:
                assert tg[0].area == max(o.area for o in same)
                checked += 1
            if "-roofed" in e.text and e.kind == "colour":
                colour = e.text.split("the ")[1].split("-roofed")[0]
                assert {o.colour for o in tg} == {colour}
                assert len(tg) == sum(o.colour == colour for o in same)
                checked += 1
    assert checked > 5


def test_flip_swaps_left_and_right():
    assert swap_left_right("the tank on the left of the Right road, leftmost") == \
        "the tank on the right of the Left road, rightmost"
    assert swap_left_right("the west building") == "the east building"
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    mask = np.array([[1, 0, 0], [1, 0, 0]], bool)
    im2, m2, t2 = HFlipSwap(p=1.0)(img, mask, "the car on the left")
    assert t2 == "the car on the right" and m2[:, 2].all() and (im2[:, 0] == img[:, 2]).all()
