"""Issue 20's acceptance on the bundled sample with the shipped demo model, through the engine's defaults (scope
"extent"): absent things give no polygon, a singular superlative or position gives one polygon where it belongs,
and the class-level plural keeps its IoU. Guards the demo model and the engine together, whichever changes."""
from pathlib import Path

import pyogrio
import pytest
import rasterio
import shapely

import model_core
from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "sample_scene.tif"
TRUTH = REPO / "data" / "sample" / "sample_scene.gpkg"
DEMO = REPO / "model_core" / "assets" / "demo.pt"
QUERIES = ["the airport runway", "the swimming pools", "the largest building", "the building in the top left",
           "the buildings"]

pytestmark = pytest.mark.slow


def _truth(klass: str) -> list:
    info = pyogrio.raw.read(TRUTH, where=f"class = '{klass}'", read_geometry=True, columns=[])
    return list(shapely.from_wkb(info[2]))


@pytest.fixture(scope="module")
def answers():
    predictor = Predictor(model_core.load_model(str(DEMO)), device="cpu")
    result = segment_raster(str(SAMPLE), QUERIES, predictor, SegmentOptions())
    assert result.stats.scope == "extent"
    return result.polygons


@pytest.mark.parametrize("query", ["the airport runway", "the swimming pools"])
def test_absent_things_give_no_polygon(answers, query):
    assert answers[query] == []


def test_the_largest_building_is_one_polygon_on_a_largest_building(answers):
    (found,) = answers["the largest building"]
    buildings = _truth("building")
    hit = max(buildings, key=lambda g: g.intersection(found.geometry).area)
    assert hit.intersection(found.geometry).area > 0.5 * found.geometry.area
    # the sample's two largest buildings differ by 0.2 m2 (342.2 vs 342.0): either is a right answer
    assert hit.area >= 0.98 * max(g.area for g in buildings)
    assert found.rank == 1


def test_the_building_in_the_top_left_is_one_polygon_in_the_top_left_quadrant(answers):
    (found,) = answers["the building in the top left"]
    with rasterio.open(SAMPLE) as src:
        left, bottom, right, top = src.bounds
    c = found.geometry.centroid
    assert c.x < (left + right) / 2 and c.y > (bottom + top) / 2


def test_the_buildings_keep_their_iou(answers):
    found = shapely.union_all([p.geometry for p in answers["the buildings"]])
    truth = shapely.union_all(_truth("building"))
    assert found.intersection(truth).area / found.union(truth).area >= 0.85
