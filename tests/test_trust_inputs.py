"""Every failure of a user's file -> one line, exit code 2, nothing written, in every front end (CLI segment, batch
and info; the plugin's worker, whose message the dock and the Processing algorithm show as it is); and every output
placed right (GCP-only rasters warped through their GCPs, never pixel coordinates under a CRS)."""
from __future__ import annotations

import hashlib
import json
import os
import textwrap

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from affine import Affine
from rasterio.control import GroundControlPoint

from rs2sam2_qgis import worker
from rs2sam2_qgis.pipeline import cli, model_spec
from rs2sam2_qgis.pipeline.options import SegmentOptions
from rs2sam2_qgis.pipeline.request import ModelChoice, SegmentRequest
from rs2sam2_qgis.worker_client import segment_job
from tests.colour_model import ColourModel, rgb_scene, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
BOX = (10, 10, 40, 60)  # rows 10-40, columns 10-60: a red box
BOX_BOUNDS = (500010.0, 4999960.0, 500060.0, 4999990.0)


def _gcps(transform, size=100):
    """Four GCPs at the corners of a size x size raster placed by ``transform``."""
    pts = []
    for r, c in ((0, 0), (0, size), (size, 0), (size, size)):
        x, y = transform * (c, r)
        pts.append(GroundControlPoint(row=r, col=c, x=x, y=y))
    return pts


def _vrt(path, source, width, height, srs=None, gcps=None, gcp_srs="EPSG:32633"):
    """A VRT over ``source`` with an SRS and/or GCPs but no GeoTransform (what gdal_translate -gcp writes)."""
    bands = "".join(f"""
      <VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{ci}</ColorInterp>
        <SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>{b}</SourceBand>
        </SimpleSource></VRTRasterBand>""" for b, ci in ((1, "Red"), (2, "Green"), (3, "Blue")))
    srs_xml = f"<SRS>{srs}</SRS>" if srs else ""
    gcp_xml = ""
    if gcps:
        gcp_xml = f'<GCPList Projection="{gcp_srs}">' + "".join(
            f'<GCP Id="" Pixel="{g.col}" Line="{g.row}" X="{g.x!r}" Y="{g.y!r}"/>' for g in gcps) + "</GCPList>"
    path.write_text(textwrap.dedent(f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}">
      {srs_xml}{gcp_xml}{bands}
    </VRTDataset>"""))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")
    img = rgb_scene(100, 100, [(*BOX, (255, 0, 0))], (60, 60, 60))
    f = {"ok": write_raster(d / "ok.tif", img, transform=T)}
    # a tiled, compressed raster cut in half: its last blocks are missing
    big = write_raster(d / "big.tif", rgb_scene(512, 512, [(400, 400, 450, 450, (255, 0, 0))]), tiled=True,
                       blockxsize=128, blockysize=128, compress="deflate")
    data = open(big, "rb").read()
    (d / "truncated.tif").write_bytes(data[: len(data) // 2])
    f["truncated"] = str(d / "truncated.tif")
    # GCP-only: a GeoTIFF with GCPs (no CRS, no geotransform) and the VRT (SRS + GCPs, no geotransform)
    with rasterio.open(d / "gcp.tif", "w", driver="GTiff", width=100, height=100, count=3, dtype="uint8",
                       crs="EPSG:32633", gcps=_gcps(T)) as ds:  # with gcps=, crs= is the GCPs' CRS
        ds.write(img)
    f["gcp_tif"] = str(d / "gcp.tif")
    f["gcp_vrt"] = _vrt(d / "gcp.vrt", f["ok"], 100, 100, srs="EPSG:32633", gcps=_gcps(T))
    f["gcp_rotated"] = _vrt(d / "gcp_rot.vrt", f["ok"], 100, 100, srs="EPSG:32633",
                            gcps=_gcps(T * Affine.rotation(30)))
    f["two_gcps"] = _vrt(d / "two_gcps.vrt", f["ok"], 100, 100, srs="EPSG:32633", gcps=_gcps(T)[:2])
    f["crs_no_transform"] = _vrt(d / "crs_only.vrt", f["ok"], 100, 100, srs="EPSG:32633")
    f["rotated"] = write_raster(d / "rot.tif", img, transform=T * Affine.rotation(30))
    # empty data
    f["nodata_u8"] = write_raster(d / "nodata_u8.tif", np.zeros((3, 64, 64), np.uint8), nodata=0)
    f["nodata_f32"] = write_raster(d / "nodata_f32.tif", np.full((3, 64, 64), np.nan, np.float32), nodata=np.nan)
    half = img.copy()
    half[:, 50:, :] = 0
    f["half_nodata"] = write_raster(d / "half.tif", half, transform=T, nodata=0)
    # model files
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"encoder.weight": torch.zeros(3)}, d / "foreign.pt")
    torch.save({"model": {"image_encoder.trunk.w": torch.zeros(2), "sam_mask_decoder.w": torch.zeros(2)}},
               d / "sam2_only.pt")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1000)}, str(d / "whole.safetensors"))
    blob = (d / "whole.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(blob[: len(blob) // 2])
    import model_core.checkpoints as ck

    demo = ck.DEMO_PATH.read_bytes()
    (d / "truncated_demo.pt").write_bytes(demo[: len(demo) // 3])
    f["dir"] = d
    return f


MODEL_FILES = {
    "empty": ("empty.pt", "is empty (0 bytes)"),
    "random bytes": ("random.pt", "corrupt, truncated or not a model"),
    "foreign torch file": ("foreign.pt", "not a model checkpoint rs2sam2 knows"),
    "truncated safetensors": ("truncated.safetensors", "corrupt, truncated or not a model"),
    "truncated rs2sam2 checkpoint": ("truncated_demo.pt", "corrupt, truncated or not a model"),
    "another model family (SAM2 part only)": ("sam2_only.pt", "only one part of a model"),
}


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def out(tmp_path, files, monkeypatch):
    """An existing GeoPackage that a failed run must leave byte-identical."""
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    path = tmp_path / "out.gpkg"
    assert cli.main(["segment", files["ok"], "red", "-o", str(path), "--quiet"]) == 0
    monkeypatch.undo()
    return path


def _one_line_exit_2(capsys, rc, needle, out=None, before=None):
    err = capsys.readouterr().err.strip().splitlines()
    err = [e for e in err if not e.startswith("model ")]  # the model-loaded line of a run that got that far
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("rs2sam2: error: ") and needle in err[0], err
    if out is not None:
        assert digest(out) == before
        assert sorted(os.listdir(out.parent)) == ["out.gpkg"]
    return err[0]


@pytest.mark.parametrize("case", list(MODEL_FILES))
def test_bad_model_file_segment(case, files, out, capsys):
    name, needle = MODEL_FILES[case]
    before = digest(out)
    capsys.readouterr()
    rc = cli.main(["segment", files["ok"], "red", "-o", str(out), "--quiet", "--model", str(files["dir"] / name)])
    line = _one_line_exit_2(capsys, rc, needle, out, before)
    assert name in line


@pytest.mark.parametrize("case", ["empty", "random bytes", "another model family (SAM2 part only)"])
def test_bad_model_file_batch(case, files, tmp_path, capsys):
    name, needle = MODEL_FILES[case]
    outdir = tmp_path / "batch"
    rc = cli.main(["batch", files["ok"], "-q", "red", "-o", str(outdir), "--quiet", "--model",
                   str(files["dir"] / name)])
    _one_line_exit_2(capsys, rc, needle)
    assert not outdir.exists() or not any(p.suffix == ".gpkg" for p in outdir.rglob("*"))


def _worker_reply(job, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    rc = worker.handle(json.dumps(job))
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return rc, lines[-1]


@pytest.mark.parametrize("case", list(MODEL_FILES))
def test_bad_model_file_worker(case, files, out, capsys):
    """The worker's reply is what the dock's message bar and the Processing algorithm's exception show."""
    name, needle = MODEL_FILES[case]
    before = digest(out)
    model = ModelChoice(str(files["dir"] / name), device="cpu")
    rc, reply = _worker_reply(segment_job(SegmentRequest(raster=files["ok"], queries=["red"], model=model,
                                                         output=str(out))), capsys)
    assert rc == 2 and reply["type"] == "error" and reply["kind"] == "input", reply
    assert needle in reply["message"] and "\n" not in reply["message"] and not reply["trace"]
    assert digest(out) == before and sorted(os.listdir(out.parent)) == ["out.gpkg"]


BAD_RASTERS = {
    "truncated blocks found mid-run": ("truncated", "cannot be read at rows"),
    "GCPs too few to fit": ("two_gcps", "only 2 ground control point(s)"),
    "CRS without geotransform": ("crs_no_transform", "has a CRS but no geotransform"),
    "all nodata (uint8)": ("nodata_u8", "holds no valid pixel"),
    "all nodata (float NaN)": ("nodata_f32", "holds no valid pixel"),
}


@pytest.mark.parametrize("case", list(BAD_RASTERS))
def test_bad_raster_segment_and_worker(case, files, out, capsys, monkeypatch):
    key, needle = BAD_RASTERS[case]
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    before = digest(out)
    capsys.readouterr()
    rc = cli.main(["segment", files[key], "red", "-o", str(out), "--quiet", "--tile", "64"])
    line = _one_line_exit_2(capsys, rc, needle, out, before)
    assert files[key] in line
    rc, reply = _worker_reply(segment_job(SegmentRequest(raster=files[key], queries=["red"], output=str(out),
                                                         model=ModelChoice("colour", device="cpu"),
                                                         options=SegmentOptions(tile=64))), capsys)
    assert rc == 2 and reply["kind"] == "input" and needle in reply["message"], reply
    assert digest(out) == before and sorted(os.listdir(out.parent)) == ["out.gpkg"]


def test_truncated_raster_names_the_window(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    rc = cli.main(["segment", files["truncated"], "red", "-o", str(tmp_path / "t.gpkg"), "--quiet", "--tile", "128"])
    line = _one_line_exit_2(capsys, rc, "columns")
    assert "truncated or corrupt" in line
    assert os.listdir(tmp_path) == []


def test_extent_over_nodata_only(files, out, capsys, monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    before = digest(out)
    capsys.readouterr()
    rc = cli.main(["segment", files["half_nodata"], "red", "-o", str(out), "--quiet", "--tile", "64",
                   "--extent", "500000,4999900,500100,4999940"])  # rows 60-100: nodata
    _one_line_exit_2(capsys, rc, "the extent holds no valid pixel", out, before)


def test_mask_over_nodata_only(files):
    from model_core.predictor import Predictor
    from rs2sam2_qgis.pipeline import InputError, SegmentOptions, segment_raster

    mask = shapely.box(500010, 4999910, 500090, 4999930)  # inside the nodata half
    with pytest.raises(InputError, match="the mask polygon holds no valid pixel"):
        segment_raster(files["half_nodata"], ["red"], Predictor(ColourModel(64), device="cpu"),
                       SegmentOptions(tile=64, mask_geometry=mask))


def test_info_on_broken_files_is_one_line(files, capsys):
    rc = cli.main(["info", str(files["dir"] / "random.pt")])
    _one_line_exit_2(capsys, rc, "not a raster GDAL can read")


# ------------------------------------------------------------------------------------------ placement
def _bounds(path):
    return pyogrio.read_info(path)["total_bounds"], pyogrio.read_info(path)["crs"]


@pytest.mark.parametrize("key", ["gcp_tif", "gcp_vrt"])
def test_gcp_only_rasters_are_placed_through_their_gcps(key, files, tmp_path, monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    o = tmp_path / "g.gpkg"
    assert cli.main(["segment", files[key], "red", "-o", str(o), "--quiet", "--tile", "64", "--simplify", "0"]) == 0
    bounds, crs = _bounds(o)
    assert crs == "EPSG:32633"
    assert np.allclose(bounds, BOX_BOUNDS, atol=1e-6), bounds  # exactly where the affine raster puts it


def test_rotated_gcps_land_where_the_rotated_transform_puts_the_box(files, tmp_path, monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    o = tmp_path / "gr.gpkg"
    assert cli.main(["segment", files["gcp_rotated"], "red", "-o", str(o), "--quiet", "--tile", "64",
                     "--simplify", "0"]) == 0
    geoms = pyogrio.raw.read(o)[2]
    poly = shapely.union_all(shapely.from_wkb(geoms))
    t = T * Affine.rotation(30)
    r0, c0, r1, c1 = BOX
    want = shapely.Polygon([t * (c0, r0), t * (c1, r0), t * (c1, r1), t * (c0, r1)])
    # a north-up warp of a rotated raster: the box is redrawn on a new grid, edges within a pixel
    assert want.symmetric_difference(poly).area < 0.12 * want.area
    assert poly.centroid.distance(want.centroid) < 1.0


def test_rotated_affine_rasters_still_land_exactly(files, tmp_path, monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    o = tmp_path / "r.gpkg"
    assert cli.main(["segment", files["rotated"], "red", "-o", str(o), "--quiet", "--tile", "64",
                     "--simplify", "0"]) == 0
    poly = shapely.union_all(shapely.from_wkb(pyogrio.raw.read(o)[2]))
    t = T * Affine.rotation(30)
    r0, c0, r1, c1 = BOX
    want = shapely.Polygon([t * (c0, r0), t * (c1, r0), t * (c1, r1), t * (c0, r1)])
    assert want.symmetric_difference(poly).area < 1e-6 * want.area


# ------------------------------------------------------------------------------------------ queries
def test_query_longer_than_the_text_window_is_refused_naming_the_limit(files, out, capsys):
    before = digest(out)
    capsys.readouterr()
    rc = cli.main(["segment", files["ok"], "the red roofs " * 150, "-o", str(out), "--quiet", "--model", "demo"])
    line = _one_line_exit_2(capsys, rc, "reads at most 32", out, before)
    assert "tokens long" in line


def test_query_within_the_window_runs(files, tmp_path):
    assert cli.main(["segment", files["ok"], "the red roofs", "-o", str(tmp_path / "q.gpkg"), "--quiet",
                     "--model", "demo"]) == 0


@pytest.mark.parametrize("query", ["red\x00roofs", "red\x1b[31m"])
def test_control_characters_are_refused(query, files, out, capsys):
    before = digest(out)
    capsys.readouterr()
    rc = cli.main(["segment", files["ok"], query, "-o", str(out), "--quiet"])
    _one_line_exit_2(capsys, rc, "control character", out, before)


def test_every_tokenizer_counts_past_its_window():
    """The counts the check relies on: the demo's CLIP tokenizer and XLM-R sentencepiece (beit3 presets)."""
    import model_core
    from rs2sam2_qgis.pipeline.text_window import model_tokenizer

    tok = model_tokenizer(model_core.load_model("demo"))
    assert tok.window == 32 and tok.token_count("red") == 3 and tok.token_count("red " * 100) == 102
    from model_core.checkpoints import ASSETS
    from model_core.union_encoder import XLMRTokenizer

    x = XLMRTokenizer(ASSETS / "tiny_spm.model", max_tokens=8)
    long = "the red roofs of the big storage tanks near the river"
    assert x.token_count(long) > 8 and len(x.encode(long)) == 8 and x.window == 8


@pytest.mark.parametrize("args", [["segment", "x.tif", "-:", "-o", "o.gpkg"], ["segment", "x.tif"],
                                  ["segment", "x.tif", "red", "-o", "o.gpkg", "--tile", "big"]])
def test_usage_errors_are_one_line_exit_2(args, capsys):
    """argparse's own errors (found by the fuzz suite: a query starting with '-') follow the one-line contract."""
    rc = cli.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("rs2sam2: error: "), err
    if "-:" in args:
        assert 'goes after "--"' in err[0]


def test_help_still_exits_0(capsys):
    assert cli.main(["segment", "--help"]) == 0 and "usage:" in capsys.readouterr().out
