"""Property-based fuzzing of the user contract (hypothesis), to find the next class of bad input before users do.

For generated rasters (dtype, bands, nodata, size, geotransform with rotation and shear, CRS projected, geographic or
none, files cut short), queries (empty, whitespace, control characters, right-to-left, very long) and model files
(random bytes, truncations of the demo checkpoint), `rs2sam2 segment` (in-process, the colour test model unless the
model file is the subject) must either exit 0 with the polygons exactly where the raster's transform puts the red
box, or exit 2 with one line. Never a traceback, never a changed existing GeoPackage on failure (nor a changed
existing layer on success), never a stray file.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rs2sam2_qgis.pipeline import cli, model_spec
from tests.colour_model import ColourModel, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                max_examples=int(os.environ.get("RS2SAM2_FUZZ_EXAMPLES", "40")))

DTYPES = {"uint8": 1, "uint16": 200, "int16": 100, "float32": 1.0 / 255}  # value scale of the 0..255 scene
CRSS = {"utm": "EPSG:32633", "geographic": "EPSG:4326", "none": None}
LOADED = re.compile(r"^model .+ loaded in [0-9.]+ s$")


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


class Workspace:
    """A folder with an existing GeoPackage (layer 'existing') that every run targets."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="rs2sam2-fuzz-")
        self.dir = self._tmp.name
        self.inputs = os.path.join(self.dir, "in")
        self.outputs = os.path.join(self.dir, "out")
        os.makedirs(self.inputs)
        os.makedirs(self.outputs)
        self.gpkg = os.path.join(self.outputs, "out.gpkg")
        seed = write_raster(os.path.join(self.inputs, "seed.tif"), _scene(40, 40, (5, 5, 20, 20), "uint8"))
        assert cli.main(["segment", seed, "red", "-o", self.gpkg, "--quiet", "--layer", "existing"]) == 0
        self.existing = pyogrio.raw.read(self.gpkg, layer="existing")[2]

    def close(self):
        self._tmp.cleanup()

    def run(self, args, capsys) -> tuple[int, list[str], list[str]]:
        """cli.main -> (exit code, stderr lines, the layers it added)."""
        before = _digest(self.gpkg)
        layers = set(pyogrio.list_layers(self.gpkg)[:, 0])
        capsys.readouterr()
        rc = cli.main(args)
        # stderr: the one error line, after at most the run's own "model ... loaded in N s" line
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not LOADED.match(line)]
        assert sorted(os.listdir(self.outputs)) == ["out.gpkg"], os.listdir(self.outputs)  # no stray file
        changed = _digest(self.gpkg) != before
        if rc == 0:
            assert changed
            np.testing.assert_array_equal(pyogrio.raw.read(self.gpkg, layer="existing")[2], self.existing)
        else:
            assert rc == 2, err
            assert len(err) == 1 and err[0].startswith("rs2sam2: error: "), err
            assert not changed
        return rc, err, sorted(set(pyogrio.list_layers(self.gpkg)[:, 0]) - layers)


@pytest.fixture
def ws(monkeypatch):
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    w = Workspace()
    yield w
    w.close()


def _scene(h, w, box, dtype):
    """[3, h, w] grey scene with a pure red box (rows r0:r1, cols c0:c1), scaled to the dtype."""
    img = np.full((3, h, w), 60.0)
    r0, c0, r1, c1 = box
    img[:, r0:r1, c0:c1] = np.array([255.0, 0.0, 0.0])[:, None, None]
    out = img * DTYPES[dtype]
    return out.astype(dtype)


@st.composite
def rasters(draw):
    h = draw(st.integers(1, 140))
    w = draw(st.integers(1, 140))
    crs = draw(st.sampled_from(list(CRSS)))
    size = 1e-5 if crs == "geographic" else draw(st.sampled_from([0.3, 1.0, 2.5]))
    transform = (Affine.translation(draw(st.floats(-1, 1)) * (10 if crs == "geographic" else 1e5) + (
        15.0 if crs == "geographic" else 500000.0), 45.0 if crs == "geographic" else 5000000.0)
        * Affine.rotation(draw(st.sampled_from([0.0, 0.0, 30.0, 90.0, 211.0])))
        * Affine.shear(draw(st.sampled_from([0.0, 0.0, 15.0])), 0.0)
        * Affine.scale(size, -size))
    box = None
    if h >= 8 and w >= 8:  # a box big enough for the 2-98 % stretch of non-uint8 rasters to keep it red
        r0, c0 = draw(st.integers(0, h // 2)), draw(st.integers(0, w // 2))
        box = (r0, c0, min(h, r0 + max(4, h // 3)), min(w, c0 + max(4, w // 3)))
    return {"h": h, "w": w, "dtype": draw(st.sampled_from(list(DTYPES))), "bands": draw(st.sampled_from([1, 3, 4])),
            "nodata": draw(st.sampled_from([None, 0])), "crs": crs, "transform": transform, "box": box,
            "cut": draw(st.sampled_from([None, None, None, 0.3, 0.6, 0.9])),
            "tiled": draw(st.booleans())}


def _write(spec, folder) -> str:
    h, w, box = spec["h"], spec["w"], spec["box"]
    img = _scene(h, w, box or (0, 0, 0, 0), spec["dtype"])
    extra = {}
    if spec["bands"] == 1:
        img = img[:1]
    elif spec["bands"] == 4:
        img = np.concatenate([img, np.full((1, h, w), 255 * DTYPES[spec["dtype"]], img.dtype)])
        extra["photometric"] = "RGB" if spec["dtype"] == "uint8" else None
        extra["alpha"] = "YES" if spec["dtype"] == "uint8" else None
    if spec["tiled"] and h >= 16 and w >= 16:
        extra.update(tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    extra = {k: v for k, v in extra.items() if v is not None}
    path = os.path.join(folder, "r.tif")
    if os.path.exists(path):
        os.remove(path)  # a cut file from the previous example: GDAL would fail to replace it
    path = write_raster(path, img, crs=CRSS[spec["crs"]], transform=spec["transform"],
                        nodata=spec["nodata"], **extra)
    if spec["cut"] is not None:
        data = open(path, "rb").read()
        with open(path, "wb") as fh:
            fh.write(data[: max(1, int(len(data) * spec["cut"]))])
    return path


def _expected_box(spec):
    r0, c0, r1, c1 = spec["box"]
    t = spec["transform"] if spec["crs"] != "none" else Affine.identity()
    return shapely.Polygon([t * (c0, r0), t * (c1, r0), t * (c1, r1), t * (c0, r1)])


@FUZZ
@given(spec=rasters(), pixel_coords=st.booleans())
def test_rasters_exit_0_placed_right_or_exit_2_one_line(ws, capsys, spec, pixel_coords):
    path = _write(spec, ws.inputs)
    args = ["segment", path, "the red roofs", "-o", ws.gpkg, "--quiet", "--simplify", "0", "--min-pixels", "0",
            ] + (["--allow-pixel-coords"] if pixel_coords else [])
    rc, err, added = ws.run(args, capsys)
    if spec["crs"] == "none" and not pixel_coords:
        assert rc == 2 and ("no CRS" in err[0] or spec["cut"] is not None)
    if rc == 2:
        return
    # exit 0: only a raster GDAL could read whole can get here, and the red box is exactly where it should be
    assert len(added) == 1
    geoms = shapely.from_wkb(pyogrio.raw.read(ws.gpkg, layer=added[0])[2])
    found = shapely.union_all(geoms) if len(geoms) else shapely.Polygon()
    if spec["box"] is None or spec["bands"] == 1:  # no red to find (grey rasters replicate one band)
        assert found.is_empty
        return
    want = _expected_box(spec)
    assert want.symmetric_difference(found).area <= 1e-6 * want.area, (want.wkt, found.wkt)


def test_a_cut_raster_never_runs_halfway(ws, capsys):
    """The hypothesis strategy above cuts files; this one cut is sure to land inside the tile data."""
    spec = {"h": 128, "w": 128, "dtype": "uint8", "bands": 3, "nodata": None, "crs": "utm", "box": (8, 8, 60, 60),
            "transform": Affine(1, 0, 500000, 0, -1, 5000000), "cut": 0.5, "tiled": True}
    rc, err, _ = ws.run(["segment", _write(spec, ws.inputs), "red", "-o", ws.gpkg, "--quiet"], capsys)
    assert rc == 2 and "truncated or corrupt" in err[0]


CONTROL = "".join(chr(c) for c in list(range(0, 32)) + [127])
queries = st.one_of(
    st.just(""), st.text(" \t\n\r\u00a0\u2003", max_size=5),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.builds(lambda a, c, b: a + c + b, st.sampled_from(["red", "the red roofs "]), st.sampled_from(CONTROL),
              st.text(max_size=5)),
    st.sampled_from(["السقوف الحمراء red", "הגגות האדומים", "red \u202eroofs", "红色 red 屋顶", "red\u200b"]),
    st.builds(lambda n: "the red roofs " * n, st.integers(50, 400)),
)


@FUZZ
@given(query=queries)
def test_queries_exit_0_or_exit_2_one_line(ws, capsys, query):
    raster = os.path.join(ws.inputs, "q.tif")
    if not os.path.exists(raster):
        write_raster(raster, _scene(60, 60, (10, 10, 30, 40), "uint8"))
    # after "--": a query may start with "-" (argparse's own errors: tests/test_trust_inputs.py)
    rc, err, _ = ws.run(["segment", raster, "-o", ws.gpkg, "--quiet", "--", query], capsys)
    if not query.strip():
        assert rc == 2 and "query" in err[0]
    if any(c in CONTROL and not c.isspace() for c in query):  # whitespace controls (tab, newline) are spaces
        assert rc == 2 and "control character" in err[0]


@FUZZ
@given(query=queries)
def test_the_text_window_refuses_or_the_query_fits(query):
    """With a real tokenizer (the demo model's, 32 tokens): refused naming the limit, or it fits uncut."""
    from rs2sam2_qgis.pipeline import InputError
    from rs2sam2_qgis.pipeline.text_window import check_text_window, model_tokenizer

    model = _demo()
    try:
        check_text_window(model, [query])
    except InputError as exc:
        assert "reads at most 32" in str(exc) and "\n" not in str(exc)
    else:
        assert model_tokenizer(model).token_count(query) <= 32


_DEMO = []


def _demo():
    if not _DEMO:
        import model_core

        _DEMO.append(model_core.load_model("demo"))
    return _DEMO[0]


@FUZZ
@given(kind=st.sampled_from(["random", "cut demo", "cut demo", "zeroed demo"]), fraction=st.floats(0.0, 0.999),
       seed=st.integers(0, 2**32 - 1))
def test_model_files_exit_2_one_line(ws, capsys, monkeypatch, kind, fraction, seed):
    from model_core.checkpoints import DEMO_PATH

    monkeypatch.setattr(model_spec, "resolve_model", REAL_RESOLVE_MODEL)
    demo = DEMO_PATH.read_bytes()
    rng = np.random.default_rng(seed)
    n = int(len(demo) * fraction)
    if kind == "random":
        data = rng.bytes(min(n, 200_000))
    elif kind == "cut demo":
        data = demo[:n]
    else:  # a block of zeros inside the demo checkpoint (a bad sector)
        data = demo[:n] + bytes(min(4096, len(demo) - n)) + demo[n + 4096:]
    model = os.path.join(ws.inputs, "model.pt")
    with open(model, "wb") as fh:
        fh.write(data)
    raster = os.path.join(ws.inputs, "m.tif")
    if not os.path.exists(raster):
        write_raster(raster, _scene(32, 32, (4, 4, 20, 20), "uint8"))
    rc, err, _ = ws.run(["segment", raster, "red", "-o", ws.gpkg, "--quiet", "--model", model], capsys)
    if kind != "zeroed demo":
        assert rc == 2 and model in err[-1]


REAL_RESOLVE_MODEL = model_spec.resolve_model
