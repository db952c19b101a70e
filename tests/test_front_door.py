"""The front door shared by every front end: the SegmentRequest (built once, carried as JSON to the plugin's worker,
run by the same request_run.run_request as the CLI), the CLI accepting every model spec the plugin accepts, the
worker refusing py: specs that were not typed by a person, and the engine's choices read from one place."""
from __future__ import annotations

import json
import sys

import pytest
from affine import Affine

from rs2sam2_qgis import worker
from rs2sam2_qgis.pipeline import cli, options
from rs2sam2_qgis.pipeline.options import SegmentOptions
from rs2sam2_qgis.pipeline.request import ModelChoice, SegmentRequest
from rs2sam2_qgis.worker_client import segment_job
from tests.colour_model import rgb_scene, write_raster

T = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    img = rgb_scene(64, 64, [(10, 10, 40, 30, (255, 0, 0))], (60, 60, 60))
    return str(write_raster(tmp_path_factory.mktemp("front") / "scene.tif", img, transform=T))


def test_request_round_trips_through_json_unchanged():
    model = ModelChoice("nano", weights={"sam2": "/w/sam2.pt"}, device="cpu", precision="fp32", mode="authors")
    request = SegmentRequest(raster="/data/scene.tif", queries=["the red roofs", "white tanks"], output="/o/x.gpkg",
                             model=model, layer="roofs", append=True, result_file="/tmp/r.pkl",
                             mask_wkt="POLYGON ((0 0, 1 0, 1 1, 0 0))",
                             options=SegmentOptions(tile=128, overlap=0.1, extent=(1.0, 2.0, 3.0, 4.0), bands=(3, 2, 1),
                                                    scope="tile", presence_threshold=0.4))
    job = json.loads(json.dumps(segment_job(request)))  # what travels on the worker's stdin
    assert job["action"] == "segment"
    assert SegmentRequest.from_dict(job["request"]) == request
    assert SegmentRequest.from_dict(SegmentRequest(raster="r", queries=["q"], output="o").to_dict()).options == \
        SegmentOptions()
    assert request.segment_options().mask_geometry.area == pytest.approx(0.5)
    in_process = SegmentRequest(raster="r", queries=["q"], output="o", model=ModelChoice(lambda: None))
    with pytest.raises(TypeError, match="callable"):  # a callable cannot travel to the worker
        in_process.to_dict()


def test_request_takes_its_mask_as_text_only():
    import shapely

    with pytest.raises(ValueError, match="mask_wkt"):
        SegmentRequest(raster="r", queries=["q"], output="o",
                       options=SegmentOptions(mask_geometry=shapely.box(0, 0, 1, 1)))


def test_cli_accepts_a_preset_and_a_py_spec(raster, tmp_path, capsys):
    rc = cli.main(["segment", raster, "red", "-o", str(tmp_path / "code.gpkg"), "--quiet", "--device", "cpu",
                   "--model", "py:tests.colour_model:ColourModel"])
    assert rc == 0 and "model colour-test on cpu" in capsys.readouterr().err
    rc = cli.main(["segment", raster, "red", "-o", str(tmp_path / "preset.gpkg"), "--quiet", "--device", "cpu",
                   "--model", "nano", "--tile", "64"])
    assert rc == 0 and "wrote" in capsys.readouterr().out


def test_worker_refuses_a_py_spec_it_was_not_allowed_and_imports_nothing(raster, tmp_path, capsys, monkeypatch):
    mark = tmp_path / "imported"
    monkeypatch.setenv("RS2SAM2_IMPORT_MARK", str(mark))
    monkeypatch.delitem(sys.modules, "tests.records_its_import", raising=False)
    request = SegmentRequest(raster=raster, queries=["red"], output=str(tmp_path / "o.gpkg"),
                             model=ModelChoice("py:tests.records_its_import:model", device="cpu"))
    capsys.readouterr()
    rc = worker.handle(json.dumps(segment_job(request)))
    reply = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert rc == 2 and reply["kind"] == "input" and "names Python code to run" in reply["message"], reply
    assert "tests.records_its_import" not in sys.modules and not mark.exists()
    assert not (tmp_path / "o.gpkg").exists()


def test_the_engine_modes_are_model_core_modes():
    from model_core.authors_mode import MODES

    assert options.MODES == MODES


def test_options_validate_with_the_limits_the_uis_show():
    for name, (lo, hi) in options.LIMITS.items():
        SegmentOptions(**{name: lo}).validate()
        SegmentOptions(**{name: hi}).validate()
        below = lo - 1 if isinstance(lo, int) else lo - 0.0005
        with pytest.raises(ValueError, match=name.split("_")[0]):
            SegmentOptions(**{name: below}).validate()
