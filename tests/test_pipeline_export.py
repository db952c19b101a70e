"""Export: new GeoPackage layer per query, append keeps other layers, atomic writes (cancel/failure leave the
target byte-identical), GeoJSON and Shapefile by extension, cancellation and progress hooks."""
import hashlib
import os

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine

from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import Cancelled, InputError, SegmentOptions, segment_raster, write_vector
from tests.colour_model import ColourModel, rgb_scene, write_raster

T = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    img = rgb_scene(130, 130, [(10, 10, 50, 60, (255, 0, 0)), (70, 70, 120, 110, (0, 0, 255))], (60, 60, 60))
    return write_raster(d / "scene.tif", img, transform=T)


@pytest.fixture(scope="module")
def predictor():
    return Predictor(ColourModel(64), device="cpu")


@pytest.fixture(scope="module")
def result(scene, predictor):
    return segment_raster(scene, ["red roofs", "blue pools"], predictor)


def test_gpkg_layer_per_query_then_new_layers_then_append(tmp_path, result):
    out = tmp_path / "out.gpkg"
    assert write_vector(result, out) == ["red_roofs", "blue_pools"]
    info = pyogrio.read_info(out, layer="red_roofs")
    assert list(info["fields"]) == ["query", "score", "area_m2", "model", "device", "precision", "created_at", "presence", "rank"]
    assert info["features"] == 1 and info["crs"] == "EPSG:32633"
    # a second run adds new layers, never touching the first ones
    assert write_vector(result, out) == ["red_roofs_2", "blue_pools_2"]
    # append goes into the existing layer of the same name
    assert write_vector(result, out, append=True) == ["red_roofs", "blue_pools"]
    assert pyogrio.read_info(out, layer="red_roofs")["features"] == 2
    assert pyogrio.read_info(out, layer="red_roofs_2")["features"] == 1
    _, _, geom, fields = pyogrio.raw.read(out, layer="blue_pools")
    assert list(fields[0]) == ["blue pools", "blue pools"] and fields[2][0] == pytest.approx(2000 / 0.9996**2, 1e-3)


def test_append_keeps_other_layers_byte_for_byte(tmp_path, result):
    out = tmp_path / "mixed.gpkg"
    pts = np.array([shapely.to_wkb(shapely.Point(500001, 4999999))], dtype=object)
    pyogrio.raw.write(out, pts, [np.array(["keep me"], dtype=object)], ["note"], layer="analyst_points",
                      driver="GPKG", geometry_type="Point", crs="EPSG:32633")
    before = pyogrio.raw.read(out, layer="analyst_points")
    write_vector(result, out, layer="detections")
    write_vector(result, out, layer="detections", append=True)
    assert set(pyogrio.list_layers(out)[:, 0]) == {"analyst_points", "detections"}
    after = pyogrio.raw.read(out, layer="analyst_points")
    assert list(after[3][0]) == ["keep me"] and after[2][0] == before[2][0]
    assert pyogrio.read_info(out, layer="detections")["features"] == 4  # 2 queries x 1 object, twice
    # appending to a layer of another schema is refused and changes nothing
    d = digest(out)
    with pytest.raises(InputError, match="another schema"):
        write_vector(result, out, layer="analyst_points", append=True)
    assert digest(out) == d


def test_cancel_leaves_the_geopackage_byte_identical(tmp_path, scene, predictor, result):
    out = tmp_path / "keep.gpkg"
    write_vector(result, out)
    d = digest(out)
    calls = []

    def is_cancelled():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        segment_raster(scene, ["red"], predictor, SegmentOptions(batch_size=1), is_cancelled=is_cancelled)
    assert digest(out) == d
    # a failure while writing leaves it byte-identical too, and no temporary files behind
    bad = result.__class__(**{**result.__dict__, "crs_wkt": "not a crs"})
    with pytest.raises(pyogrio.errors.CRSError):
        write_vector(bad, out)
    assert digest(out) == d and sorted(os.listdir(tmp_path)) == ["keep.gpkg"]


def test_progress_is_monotonic_and_ends_at_one(scene, predictor):
    seen = []
    segment_raster(scene, "red", predictor, SegmentOptions(batch_size=2), progress=lambda f, m: seen.append((f, m)))
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[0] == 0.0 and fr[-1] == 1.0 and all(isinstance(m, str) for _, m in seen)


def test_geojson_and_shapefile_by_extension(tmp_path, result):
    gj = tmp_path / "o.geojson"
    write_vector(result, gj)
    info = pyogrio.read_info(gj)
    assert info["driver"] == "GeoJSON" and info["features"] == 2
    shp = tmp_path / "o.shp"
    write_vector(result, shp)
    write_vector(result, shp, append=True)
    info = pyogrio.read_info(shp)
    assert info["driver"] == "ESRI Shapefile" and info["features"] == 4
    assert list(info["fields"]) == ["query", "score", "area_m2", "model", "device", "precision", "created_at", "presence", "rank"]
    with pytest.raises(InputError, match="unsupported extension"):
        write_vector(result, tmp_path / "o.kml")
    with pytest.raises(InputError, match="cannot be appended"):
        write_vector(result, gj, append=True)


def test_single_layer_option_and_empty_result(tmp_path, scene, predictor):
    res = segment_raster(scene, ["red", "blue", "green"], predictor, SegmentOptions(single_layer=True))
    out = tmp_path / "one.gpkg"
    assert write_vector(res, out) == ["rs2sam2"]
    _, _, _, fields = pyogrio.raw.read(out)
    assert sorted(fields[0]) == ["blue", "red"]  # 'green': nothing found
    none = segment_raster(scene, "green", predictor)
    assert write_vector(none, out) == ["green"] and pyogrio.read_info(out, layer="green")["features"] == 0
