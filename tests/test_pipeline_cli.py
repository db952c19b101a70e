"""The rs2sam2 CLI: a full run with the colour model, `info`, and every bad input -> one line + exit code 2
with the output file unchanged."""
import hashlib
import os
import stat
import subprocess
import sys

import numpy as np
import pyogrio
import pytest
from affine import Affine

from rs2sam2_qgis.pipeline import cli, model_spec
from tests.colour_model import ColourModel, rgb_scene, write_raster

T = Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0)
REAL_RESOLVE_MODEL = model_spec.resolve_model


@pytest.fixture(autouse=True)
def colour_model(monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    img = rgb_scene(100, 100, [(10, 10, 40, 60, (255, 0, 0))], (60, 60, 60))
    r = {
        "ok": write_raster(d / "ok.tif", img, transform=T),
        "nocrs": write_raster(d / "nocrs.tif", img, crs=None, transform=Affine.identity()),
        "five": write_raster(d / "five.tif", np.concatenate([img, img[:2]]), transform=T),
        "grey": write_raster(d / "grey.tif", img[:1], transform=T),
        "rot": write_raster(d / "rot.tif", img, transform=T * Affine.rotation(20)),
    }
    (d / "notraster.tif").write_text("hello, I am text")
    r["notraster"] = str(d / "notraster.tif")
    return r


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def out(tmp_path, rasters):
    """An existing GeoPackage that bad runs must leave byte-identical."""
    path = tmp_path / "out.gpkg"
    assert cli.main(["segment", rasters["ok"], "red", "-o", str(path), "--quiet"]) == 0
    return path


def test_segment_writes_layers_and_prints_a_summary(tmp_path, rasters, capsys):
    o = tmp_path / "a.gpkg"
    rc = cli.main(["segment", rasters["ok"], "the red roofs", "blue", "-o", str(o), "--tile", "64",
                   "--overlap", "0.25", "--threshold", "0.5", "--min-area", "1", "--simplify", "0.5"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert set(pyogrio.list_layers(o)[:, 0]) == {"the_red_roofs", "blue"}
    assert "1 polygon(s)" in cap.out and "s/Mpx" in cap.out and "device cpu" in cap.out
    assert "total area 1,501.2 m2" in cap.out  # 30 x 50 m at UTM's central meridian: 1500 / 0.9996^2
    assert "model colour-test on cpu" in cap.err


def test_grey_rotated_and_pixel_coords_and_bands_are_accepted(tmp_path, rasters):
    assert cli.main(["segment", rasters["grey"], "white", "-o", str(tmp_path / "g.geojson"), "--quiet"]) == 0
    assert cli.main(["segment", rasters["rot"], "red", "-o", str(tmp_path / "r.gpkg"), "--quiet"]) == 0
    o = tmp_path / "px.gpkg"
    assert cli.main(["segment", rasters["nocrs"], "red", "-o", str(o), "--quiet", "--allow-pixel-coords"]) == 0
    info = pyogrio.read_info(o)
    assert info["crs"] is None and info["total_bounds"] == (10.0, 10.0, 60.0, 40.0)
    assert cli.main(["segment", rasters["five"], "red", "-o", str(tmp_path / "f.shp"), "--quiet",
                     "--bands", "1,2,3"]) == 0


def test_info(rasters, capsys):
    assert cli.main(["info", rasters["five"]]) == 0
    text = capsys.readouterr().out
    assert "100 x 100 px" in text and "EPSG:32633" in text and "--bands" in text


BAD = {
    "missing file": (lambda r, o: ["segment", "/nonexistent/x.tif", "red", "-o", o], "raster not found"),
    "not a raster": (lambda r, o: ["segment", r["notraster"], "red", "-o", o], "not a raster GDAL can read"),
    "no crs": (lambda r, o: ["segment", r["nocrs"], "red", "-o", o], "--allow-pixel-coords"),
    "five bands": (lambda r, o: ["segment", r["five"], "red", "-o", o], "--bands R,G,B"),
    "band out of range": (lambda r, o: ["segment", r["ok"], "red", "-o", o, "--bands", "1,2,7"], "do not exist"),
    "empty query": (lambda r, o: ["segment", r["ok"], "  ", "-o", o], "empty query"),
    "bad extension": (lambda r, o: ["segment", r["ok"], "red", "-o", o[:-5] + ".kml"], "unsupported extension"),
    "output folder missing": (lambda r, o: ["segment", r["ok"], "red", "-o", "/nonexistent/dir/o.gpkg"],
                              "does not exist"),
    "extent outside": (lambda r, o: ["segment", r["ok"], "red", "-o", o, "--extent", "0,0,10,10"],
                       "lies outside the raster"),
    "extent malformed": (lambda r, o: ["segment", r["ok"], "red", "-o", o, "--extent", "1,2,3"], "4 comma"),
    "bad overlap": (lambda r, o: ["segment", r["ok"], "red", "-o", o, "--overlap", "0.95"], "overlap"),
    "missing checkpoint": (lambda r, o: ["segment", r["ok"], "red", "-o", o, "--model", "/no/such.pt"],
                           "checkpoint not found"),
    "missing raster for info": (lambda r, o: ["info", "/nonexistent.tif"], "raster not found"),
    "cuda unavailable": (lambda r, o: ["segment", r["ok"], "red", "-o", o, "--device", "cuda"], "use --device cpu"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_output_unchanged(case, rasters, out, capsys, monkeypatch):
    if case == "cuda unavailable" and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is present here")
    if case == "missing checkpoint":
        monkeypatch.setattr(model_spec, "resolve_model", REAL_RESOLVE_MODEL)
    args, needle = BAD[case]
    before = digest(out)
    capsys.readouterr()
    rc = cli.main(args(rasters, str(out)))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("rs2sam2: error: ") and needle in err[0], err
    assert digest(out) == before
    assert sorted(os.listdir(out.parent)) == ["out.gpkg"]


def test_output_not_writable(tmp_path, rasters, capsys):
    if os.geteuid() == 0:
        # root ignores permission bits: use a path whose parent is a file instead
        o = str(tmp_path / "out.gpkg" / "x.gpkg")
        (tmp_path / "out.gpkg").write_bytes(b"")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        o = str(ro / "x.gpkg")
    assert cli.main(["segment", rasters["ok"], "red", "-o", o]) == 2
    assert "output folder" in capsys.readouterr().err


def test_console_entry_runs_as_a_subprocess(rasters):
    p = subprocess.run([sys.executable, "-m", "rs2sam2_qgis.pipeline.cli", "segment", rasters["ok"], " ", "-o",
                        "x.gpkg"], capture_output=True, text=True, cwd=os.path.dirname(rasters["ok"]))
    assert p.returncode == 2 and p.stderr.strip() == ('rs2sam2: error: empty query; type what to find, e.g. '
                                                      '"the white storage tanks"')


def test_train_and_eval_get_the_remaining_argv(monkeypatch):
    import types

    seen = {}
    for name in ("training.train", "training.evaluate"):
        mod = types.ModuleType(name)
        mod.main = lambda argv, _n=name: seen.setdefault(_n, list(argv)) and 0
        monkeypatch.setitem(sys.modules, name, mod)
    assert cli.main(["train", "--preset", "nano", "--epochs", "1"]) == 0
    assert cli.main(["eval", "ckpt.pt", "--split", "val"]) == 0
    assert seen == {"training.train": ["--preset", "nano", "--epochs", "1"],
                    "training.evaluate": ["ckpt.pt", "--split", "val"]}
