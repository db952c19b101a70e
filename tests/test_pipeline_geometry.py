"""Engine geometry: polygons land where the objects are (half a pixel), ground areas within 1 % in UTM,
Web Mercator and lon/lat, every dtype with nodata, no seams across tiles, extent-invariant tile grid."""
import math

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import box

from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster
from tests.colour_model import ColourModel, rgb_scene, write_raster

A, E2 = 6378137.0, 0.00669437999014  # WGS84


def ground_area_factor(lat_deg):
    """m2 of ground per (radian lon x radian lat) at a latitude: M * N * cos(lat) on the WGS84 ellipsoid."""
    phi = math.radians(lat_deg)
    w = 1 - E2 * math.sin(phi) ** 2
    m, n = A * (1 - E2) / w ** 1.5, A / math.sqrt(w)
    return m, n, phi


# (crs, transform, pixel size, expected ground m2 of a w x h pixel box at its place)
def utm_case():
    t = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
    return "EPSG:32633", t, lambda poly: poly.area / 0.9996 ** 2  # UTM at the central meridian: scale k0


def mercator_case():
    # about 60 N: Web Mercator's planar m2 are ~4x the ground's
    y0 = 8399737.89  # ~ 60 N
    t = Affine(2.0, 0, 1113194.9, 0, -2.0, y0)

    def expect(poly):
        c = poly.centroid
        lat = math.degrees(2 * math.atan(math.exp(c.y / A)) - math.pi / 2)
        m, n, phi = ground_area_factor(lat)
        return poly.area * m * n * math.cos(phi) ** 2 / A ** 2
    return "EPSG:3857", t, expect


def lonlat_case():
    t = Affine(1e-5, 0, 10.0, 0, -1e-5, 45.0)

    def expect(poly):
        c = poly.centroid
        m, n, phi = ground_area_factor(c.y)
        return poly.area * math.radians(1) ** 2 * m * n * math.cos(phi)
    return "EPSG:4326", t, expect


CASES = {"utm": utm_case, "3857": mercator_case, "4326": lonlat_case}
RED = (255, 0, 0)
GREY = (60, 60, 60)


def pix_box(t, r0, c0, r1, c1):
    return shapely.Polygon([t * (c0, r0), t * (c1, r0), t * (c1, r1), t * (c0, r1)])


@pytest.fixture(scope="module")
def predictor():
    return Predictor(ColourModel(64), device="cpu")


@pytest.mark.parametrize("crs_case", list(CASES))
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_positions_and_areas_every_crs_and_dtype_with_nodata(tmp_path, predictor, crs_case, dtype):
    crs, t, expect_area = CASES[crs_case]()
    h = w = 150
    obj = (30, 20, 100, 110)          # rows 30..100, cols 20..110: spans several 64 px tiles
    scale = {"uint8": 1, "uint16": 200, "float32": 1 / 255}[dtype]
    img = rgb_scene(h, w, [(*obj, RED)], GREY, dtype=dtype, scale=scale)
    nodata = {"uint8": 0, "uint16": 65535, "float32": float("nan")}[dtype]
    img[:, :, 60:70] = nodata          # a nodata stripe through the object: never detected
    if dtype == "uint8":
        img[:, :, 60:70] = 0
    path = write_raster(tmp_path / f"{crs_case}_{dtype}.tif", img, crs=crs, transform=t, nodata=nodata)
    res = segment_raster(path, ["red roofs"], predictor, SegmentOptions(overlap=0.25))
    polys = res.polygons["red roofs"]
    px = abs(t.a)
    expected = [pix_box(t, 30, 20, 100, 60), pix_box(t, 30, 70, 100, 110)]
    assert len(polys) == 2, [p.geometry.wkt for p in polys]
    polys.sort(key=lambda p: p.geometry.centroid.x)
    for got, exp in zip(polys, expected):
        assert got.geometry.hausdorff_distance(exp) <= 0.5 * px + 1e-9
        assert got.area_m2 == pytest.approx(expect_area(exp), rel=0.01)
        assert got.score > 0.95 and got.query == "red roofs" and got.model == "colour-test"
        assert got.created_at.endswith("Z")
        assert (got.device, got.precision) == ("cpu", "fp32") == (res.stats.device, res.stats.precision)
    nodata_area = pix_box(t, 0, 60, h, 70)
    assert all(p.geometry.intersection(nodata_area).area < 1e-9 * px * px for p in polys)
    if crs_case == "3857":  # the planar "m2" would be ~4x the ground area
        assert polys[0].geometry.area > 3.5 * polys[0].area_m2


def test_no_seam_object_across_four_tiles_with_tile_blind_borders(tmp_path):
    # tiles 64, stride 48: tile borders at 48/64/96/112; the model sees nothing within 4 px of any tile border
    pred = Predictor(ColourModel(64, edge_fade=4), device="cpu")
    t = Affine(0.5, 0, 300000.0, 0, -0.5, 4000000.0)
    obj = (20, 25, 90, 85)  # covers the crossing of 4 tiles' borders
    path = write_raster(tmp_path / "seam.tif", rgb_scene(160, 160, [(*obj, RED)], GREY), transform=t)
    res = segment_raster(path, "red", pred, SegmentOptions(overlap=0.25))
    polys = res.polygons["red"]
    assert len(polys) == 1
    exp = pix_box(t, *obj)
    assert polys[0].geometry.geom_type == "Polygon" and not polys[0].geometry.interiors
    assert polys[0].geometry.hausdorff_distance(exp) <= 0.25 + 1e-9
    # without overlap, the blind borders cut the object: proves the test can see a seam
    res0 = segment_raster(path, "red", pred, SegmentOptions(overlap=0.0))
    assert len(res0.polygons["red"]) > 1 or res0.polygons["red"][0].geometry.interiors


def test_sub_extent_gives_the_same_polygons_as_the_whole_raster(tmp_path):
    pred = Predictor(ColourModel(64, edge_fade=4), device="cpu")
    t = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
    objs = [(20, 20, 50, 60, RED), (100, 90, 140, 150, RED), (150, 30, 190, 70, RED)]
    path = write_raster(tmp_path / "ext.tif", rgb_scene(210, 200, objs, GREY), transform=t)
    whole = segment_raster(path, "red", pred, SegmentOptions())
    # an extent not aligned with the tile grid, around the second object only
    ext = (500000 + 77.3, 5000000 - 161.7, 500000 + 171.2, 5000000 - 83.9)
    sub = segment_raster(path, "red", pred, SegmentOptions(extent=ext))
    assert len(whole.polygons["red"]) == 3 and len(sub.polygons["red"]) == 1
    inside = [p for p in whole.polygons["red"] if box(*ext).contains(p.geometry)]
    assert len(inside) == 1
    assert sub.polygons["red"][0].geometry.equals_exact(inside[0].geometry, 1e-9)
    assert sub.polygons["red"][0].score == pytest.approx(inside[0].score, abs=1e-6)
    assert sub.stats.tiles_total < whole.stats.tiles_total


def test_rotated_geotransform_is_supported(tmp_path, predictor):
    t = Affine.translation(400000, 6000000) * Affine.rotation(30) * Affine.scale(2.0, -2.0)
    obj = (30, 40, 80, 120)
    path = write_raster(tmp_path / "rot.tif", rgb_scene(128, 160, [(*obj, RED)], GREY), crs="EPSG:32632",
                        transform=t)
    res = segment_raster(path, "red", predictor)
    (p,) = res.polygons["red"]
    exp = pix_box(t, *obj)
    assert p.geometry.hausdorff_distance(exp) <= 0.5 * 2.0 + 1e-6
    assert p.area_m2 == pytest.approx(exp.area, rel=0.01)


def test_disk_canvas_equals_memory_canvas_and_polygon_mask(tmp_path, predictor):
    t = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
    path = write_raster(tmp_path / "d.tif", rgb_scene(140, 140, [(20, 20, 90, 110, RED)], GREY), transform=t)
    mem = segment_raster(path, "red", predictor)
    disk = segment_raster(path, "red", predictor, SegmentOptions(in_memory_max_mb=0))
    assert mem.stats.canvas == "memory" and disk.stats.canvas == "disk"
    assert mem.polygons["red"][0].geometry.equals_exact(disk.polygons["red"][0].geometry, 1e-9)
    assert mem.polygons["red"][0].score == pytest.approx(disk.polygons["red"][0].score, abs=1 / 255)
    # only the left half of the object lies in the mask polygon
    mask = pix_box(t, 0, 0, 140, 60)
    masked = segment_raster(path, "red", predictor, SegmentOptions(mask_geometry=mask))
    (p,) = masked.polygons["red"]
    assert p.geometry.hausdorff_distance(pix_box(t, 20, 20, 90, 60)) <= 0.5


def test_single_band_alpha_and_band_mapping(tmp_path, predictor):
    t = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
    grey = np.full((1, 100, 100), 50, np.uint8)
    grey[0, 20:60, 30:70] = 255
    res = segment_raster(write_raster(tmp_path / "g.tif", grey, transform=t), "white tanks", predictor)
    assert len(res.polygons["white tanks"]) == 1
    # RGBA: alpha 0 over part of the object -> no detection there
    rgba = np.concatenate([rgb_scene(100, 100, [(20, 20, 60, 80, RED)], GREY), np.full((1, 100, 100), 255,
                                                                                        np.uint8)])
    rgba[3, :, 50:] = 0
    res = segment_raster(write_raster(tmp_path / "a.tif", rgba, transform=t, photometric="RGB", alpha="YES"),
                         "red", predictor)
    (p,) = res.polygons["red"]
    assert p.geometry.hausdorff_distance(pix_box(t, 20, 20, 60, 50)) <= 0.5
    # 5 bands, red object in band 4: picked with bands=(4, 2, 3)
    five = np.full((5, 100, 100), 60, np.uint8)
    five[3, 10:40, 10:40] = 255
    five[1:3, 10:40, 10:40] = 0
    res = segment_raster(write_raster(tmp_path / "f.tif", five, transform=t), "red", predictor,
                         SegmentOptions(bands=(4, 2, 3)))
    (p,) = res.polygons["red"]
    assert p.geometry.hausdorff_distance(pix_box(t, 10, 10, 40, 40)) <= 0.5


def test_tile_size_other_than_model_input_and_gsd_resampling(tmp_path):
    pred = Predictor(ColourModel(64), device="cpu")
    t = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
    obj = (40, 30, 120, 130)
    path = write_raster(tmp_path / "r.tif", rgb_scene(180, 180, [(*obj, RED)], GREY), transform=t)
    res = segment_raster(path, "red", pred, SegmentOptions(tile=96))  # tiles resized 96 -> 64 -> 96
    (p,) = res.polygons["red"]
    assert p.geometry.hausdorff_distance(pix_box(t, *obj)) <= 1.0
    res = segment_raster(path, "red", pred, SegmentOptions(gsd=2.0))  # 2 m grid
    (p,) = res.polygons["red"]
    assert res.stats.megapixels == pytest.approx(90 * 90 / 1e6)
    assert p.geometry.hausdorff_distance(pix_box(t, *obj)) <= 2.0
    assert p.area_m2 == pytest.approx(80 * 100 / 0.9996 ** 2, rel=0.03)


def test_min_area_simplify_and_holes(tmp_path, predictor):
    t = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
    img = rgb_scene(120, 120, [(10, 10, 70, 70, RED), (90, 90, 95, 95, RED)], GREY)
    img[:, 30:33, 30:33] = 60   # a 9 m2 hole in the big object
    path = write_raster(tmp_path / "h.tif", img, transform=t)
    res = segment_raster(path, "red", predictor)
    assert len(res.polygons["red"]) == 2
    big = max(res.polygons["red"], key=lambda p: p.area_m2)
    assert len(big.geometry.interiors) == 1
    res = segment_raster(path, "red", predictor, SegmentOptions(min_area_m2=30, fill_holes_m2=10))
    (p,) = res.polygons["red"]
    assert not p.geometry.interiors and p.area_m2 == pytest.approx(3600 / 0.9996 ** 2, rel=1e-3)
