"""rs2sam2 batch, local path: equals the engine raster by raster, merged output, failures, resume, CLI."""
from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pyogrio
import pytest

from rs2sam2_qgis.pipeline import cli, model_spec
from rs2sam2_qgis.pipeline.batch import expand_inputs, output_names, run_batch
from rs2sam2_qgis.pipeline.request import ModelChoice
from tests.colour_model import ColourModel
from tests.test_batch_common import (
    MODEL,
    OPTIONS,
    QUERIES,
    assert_same_vectors,
    make_rasters,
    read_layers,
    reference_outputs,
)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    rasters = make_rasters(d / "in")
    return {"dir": str(d / "in"), "rasters": rasters, "ref": reference_outputs(rasters, d / "ref")}


def outputs_in(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".gpkg"))


def test_inputs_folders_globs_lists_and_urls(tmp_path, scenes):
    lst = tmp_path / "list.txt"
    lst.write_text("# rasters\n" + "\n".join(scenes["rasters"][:2]) + "\nhttps://example.com/a/ortho.tif\n"
                   "s3://bucket/b/ortho.tif\n/vsizip/x.zip/c.tif\n\n")
    got = expand_inputs([os.path.join(scenes["dir"], "scene_[45].tif"), str(lst), scenes["dir"]])
    assert got[:2] == [os.path.abspath(p) for p in scenes["rasters"][4:6]]
    assert got[4:7] == ["/vsicurl/https://example.com/a/ortho.tif", "/vsis3/bucket/b/ortho.tif",
                        "/vsizip/x.zip/c.tif"]
    assert len(got) == 6 + 3  # de-duplicated
    names = output_names(got)
    assert names[0] == "scene_4.gpkg" and len(set(names)) == len(names)
    assert names[4].startswith("ortho-") and names[5].startswith("ortho-")  # same stem: hashed apart


def test_local_batch_equals_engine_per_raster(tmp_path, scenes):
    out = tmp_path / "out"
    s = run_batch(scenes["dir"], QUERIES, out, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS)
    assert (s.rasters, s.done, s.failed, s.skipped) == (6, 6, 0, 0)
    assert outputs_in(out) == [f"scene_{i}.gpkg" for i in range(6)]
    for src, ref in scenes["ref"].items():
        assert_same_vectors(out / (os.path.splitext(os.path.basename(src))[0] + ".gpkg"), ref)
    lines = [json.loads(x) for x in open(out / "manifest.jsonl")]
    assert sorted(e["source"] for e in lines) == sorted(scenes["ref"])
    assert s.polygons == sum(e["polygons"] for e in lines) > 0
    assert list(csv.reader(open(out / "failures.csv"))) == [["source", "attempts", "error_type", "error",
                                                             "failed_at"]]
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no temporary files left
    assert s.megapixels > 0 and s.seconds_per_megapixel > 0


def test_merged_output_has_source_column_in_one_crs(tmp_path, scenes):
    out = tmp_path / "all.gpkg"
    s = run_batch(scenes["rasters"], QUERIES, out, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS)
    assert s.merged == str(out) and s.done == 6
    layers = read_layers(out)
    assert set(layers) == {"the_red_roofs", "white_tanks"}
    total = 0
    for rows, crs, fields in layers.values():
        assert fields == ["query", "score", "area_m2", "model", "device", "precision", "presence", "rank", "source"]
        assert crs == "EPSG:32633"  # the first raster's; the Web Mercator ones are reprojected
        assert {r[-1] for r in rows} == set(scenes["ref"])
        total += len(rows)
    assert total == s.polygons
    # reprojected polygons land where the engine put them
    import shapely
    from pyproj import Transformer
    src = os.path.abspath(scenes["rasters"][4])
    meta, _, geom, data = pyogrio.raw.read(out, layer="white_tanks")
    mine = shapely.from_wkb(geom[data[-1] == src])
    _, _, g_ref, _ = pyogrio.raw.read(scenes["ref"][src], layer="white_tanks")
    tr = Transformer.from_crs("EPSG:3857", "EPSG:32633", always_xy=True)
    ref = shapely.transform(shapely.from_wkb(g_ref), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    assert shapely.union_all(mine).symmetric_difference(shapely.union_all(ref)).area < 1e-6


def test_corrupt_raster_is_retried_then_recorded_and_the_rest_complete(tmp_path, scenes):
    d = tmp_path / "in"
    shutil.copytree(scenes["dir"], d)
    (d / "scene_2b_corrupt.tif").write_bytes(b"II*\x00" + os.urandom(2000))
    out = tmp_path / "out"
    s = run_batch(str(d), QUERIES, out, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS, retries=1, backoff=0)
    assert (s.rasters, s.done, s.failed) == (7, 6, 1)
    rows = list(csv.DictReader(open(out / "failures.csv")))
    assert len(rows) == 1 and rows[0]["source"].endswith("scene_2b_corrupt.tif")
    assert rows[0]["attempts"] == "2" and rows[0]["error_type"] == "InputError" and "GDAL" in rows[0]["error"]
    assert outputs_in(out) == [f"scene_{i}.gpkg" for i in range(6)]


def test_resume_after_interrupt_redoes_only_what_is_missing(tmp_path, scenes):
    out = tmp_path / "out"

    def interrupt_after_two(run, job):
        if run.summary.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(scenes["dir"], QUERIES, out, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS,
                  on_result=interrupt_after_two)
    assert outputs_in(out) == ["scene_0.gpkg", "scene_1.gpkg"]  # only complete outputs
    assert not [f for f in os.listdir(out) if f.startswith(".")]
    # a damaged output is not trusted: its checksum no longer matches the manifest
    with open(out / "scene_1.gpkg", "ab") as f:
        f.write(b"junk")
    before = os.stat(out / "scene_0.gpkg").st_mtime_ns
    s = run_batch(scenes["dir"], QUERIES, out, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS, resume=True)
    assert (s.skipped, s.done, s.failed) == (1, 5, 0)
    assert sorted(os.path.basename(r.source) for r in s.records if r.status == "done") == \
        [f"scene_{i}.tif" for i in range(1, 6)]
    assert os.stat(out / "scene_0.gpkg").st_mtime_ns == before  # untouched
    for src, ref in scenes["ref"].items():
        assert_same_vectors(out / (os.path.splitext(os.path.basename(src))[0] + ".gpkg"), ref)
    # another query is another run: nothing is skipped
    s2 = run_batch(scenes["dir"], ["red"], out, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS, resume=True)
    assert (s2.skipped, s2.done) == (0, 6)


def test_cli_batch(tmp_path, scenes, monkeypatch, capsys):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(32))
    out = tmp_path / "merged.gpkg"
    rc = cli.main(["batch", os.path.join(scenes["dir"], "*.tif"), "-q", QUERIES[0], "-q", QUERIES[1], "-o", str(out),
                   "--tile", "32", "--overlap", "0.25", "--device", "cpu", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "6 raster(s): 6 done, 0 skipped (complete), 0 failed" in cap.out and "s/Mpx" in cap.out
    assert "source" in pyogrio.read_info(out, layer="the_red_roofs")["fields"]
    rc = cli.main(["batch", scenes["dir"], "-q", "red", "-o", str(tmp_path / "x.geojson"), "--quiet"])
    assert rc == 2 and "must be a folder" in capsys.readouterr().err


def test_batch_mode_authors_runs_the_authors_contract_and_is_its_own_run(tmp_path, scenes, monkeypatch, capsys):
    """--mode reaches the Predictor (local path) and is part of the resume signature: an analyst run does not
    count as done for an authors run. A model without the authors' contract is refused before any raster."""
    from rs2sam2_qgis.pipeline import batch

    made, make_predictor = [], batch.make_predictor

    def spy(model, device, precision, mode="analyst"):
        made.append(mode)
        return make_predictor(model, device, precision, mode)

    monkeypatch.setattr(batch, "make_predictor", spy)
    one = scenes["rasters"][:1]
    out = tmp_path / "out"
    s = run_batch(one, ["the buildings"], out, model=ModelChoice("demo", device="cpu", mode="authors"), options=OPTIONS)
    assert (s.done, s.failed) == (1, 0) and made == ["authors"]
    s = run_batch(one, ["the buildings"], out, model=ModelChoice("demo", device="cpu", mode="authors"), options=OPTIONS,
                  resume=True)
    assert (s.skipped, s.done) == (1, 0)
    s = run_batch(one, ["the buildings"], out, model=ModelChoice("demo", device="cpu"), options=OPTIONS, resume=True)
    assert (s.skipped, s.done) == (0, 1) and made[-1] == "analyst"  # another mode is another run
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(32))
    rc = cli.main(["batch", scenes["dir"], "-q", "red", "-o", str(tmp_path / "c"), "--mode", "authors", "--quiet"])
    assert rc == 2 and "authors" in capsys.readouterr().err
    assert outputs_in(tmp_path / "c") == []


def test_ray_actor_takes_the_mode():
    """The Ray path builds its Predictor in InferenceActor; checked here without a cluster (plain construction)."""
    from rs2sam2_qgis.pipeline.batch_ray import InferenceActor

    actor = InferenceActor(lambda: model_spec.resolve_model("demo"), ModelChoice(device="cpu", mode="authors"), None)
    info = actor.ready()
    assert info["mode"] == "authors" and info["precision"] == "fp32"
