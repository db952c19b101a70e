"""The plugin's long-lived engine worker keeps tile features between runs: a second query on the same layer with
a feature-reusable model (RSRefSeg) encodes no tile again; RS2-SAM2 (text-dependent features) never caches."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from rs2sam2_qgis import worker
from rs2sam2_qgis.pipeline.options import SegmentOptions
from rs2sam2_qgis.pipeline.request import ModelChoice, SegmentRequest
from rs2sam2_qgis.worker_client import segment_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def raster(tmp_path):
    path = tmp_path / "scene.tif"
    pixels = np.random.default_rng(0).integers(0, 255, size=(3, 200, 200), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=200, height=200, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000.0, 4649776.0, 0.5, 0.5)) as dst:
        dst.write(pixels)
    return path


def _run(raster, tmp_path, model: str, query: str) -> dict:
    request = SegmentRequest(raster=str(raster), queries=[query], model=ModelChoice(model, device="cpu"),
                             output=str(tmp_path / f"{query.replace(' ', '_')}.gpkg"),
                             options=SegmentOptions(tile=128, overlap=0.25))
    return worker._segment(segment_job(request))["stats"]


def test_second_query_on_the_same_layer_reuses_the_tile_features(raster, tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "_FEATURES", None)
    first = _run(raster, tmp_path, "rsrefseg-tiny", "the red roofs")
    # the tiles, and the windows of the second looks at the plural's candidates (second_look.py); a window looked
    # at for two texts ("the red roofs", and "the roofs": run.answer's noun check) is encoded once
    assert first["tiles_run"] < first["tiles_encoded"] < first["tiles_run"] + first["second_looks"]
    second = _run(raster, tmp_path, "rsrefseg-tiny", "the storage tanks")
    # every tile from the cache; only a second look centred elsewhere than the first run's is new
    assert second["tiles_encoded"] <= second["second_looks"]
    assert second["feature_cache_hits"] >= second["tiles_run"] == first["tiles_run"]


def test_text_dependent_models_do_not_use_the_cache(raster, tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "_FEATURES", None)
    for query in ("the red roofs", "the storage tanks"):
        stats = _run(raster, tmp_path, "demo", query)
        assert stats["tiles_encoded"] == 0 and stats["feature_cache_hits"] == 0
