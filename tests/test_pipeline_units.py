"""Engine parts on their own: tile grid, weight window, prefetching reader, stretch, ground areas, options."""
import threading
import time

import numpy as np
import pytest
import shapely

from rs2sam2_qgis.pipeline import InputError, SegmentOptions
from rs2sam2_qgis.pipeline.areas import AreaCalculator
from rs2sam2_qgis.pipeline.batching import Prefetcher, batched
from rs2sam2_qgis.pipeline.source import open_source
from rs2sam2_qgis.pipeline.stitching import MemorySink, Stitcher, weight_profile, weight_sums
from rs2sam2_qgis.pipeline.tiling import Tile, Window2D, tile_starts
from tests.colour_model import write_raster


def test_tile_starts_anchor_at_origin_and_cover_everything():
    assert tile_starts(160, 64, 48) == [0, 48, 96]
    assert tile_starts(170, 64, 48) == [0, 48, 96, 106]  # last tile moved back to the edge
    assert tile_starts(50, 64, 48) == [0]
    for n in (64, 65, 200, 1001):
        s = tile_starts(n, 64, 48)
        covered = np.zeros(n, bool)
        for a in s:
            covered[a:a + 64] = True
        assert covered.all() and s[0] == 0 and s[-1] + 64 == max(n, 64)


def test_weight_profile_is_smooth_positive_and_sums_are_exact():
    w = weight_profile(64, 16)
    assert w.min() > 0 and w.max() == 1.0 and np.allclose(w, w[::-1])
    assert np.abs(np.diff(w)).max() < 0.11  # no jumps
    ws = weight_sums([0, 48, 96], 64, w, 0, 160)
    brute = np.zeros(160)
    for s in (0, 48, 96):
        brute[s:s + 64] += w
    np.testing.assert_allclose(ws, brute)


def _stitch(probs, opinions, abstain):
    """Two 64 px tiles side by side sharing 16 columns (one row), two queries; returns the sink's [2, 64, 112]."""
    aoi = Window2D(0, 0, 64, 112)
    sink = MemorySink(2, aoi, 0.5)
    st = Stitcher(2, aoi, 64, 16, sink, [0], [0, 48], abstain=abstain)
    valid = np.ones((64, 64), bool)
    for k, (col, prob) in enumerate(zip((0, 48), probs)):
        st.add(Tile(k, 0, col, 64), prob, valid, opinions[k])
    st.finish()
    return sink.prob


def test_a_tile_that_abstains_adds_no_weight_and_the_others_blend_as_before():
    """Extent scope: a tile gated out for a query gives no opinion, so an object in the overlap keeps the
    probability of the tile that holds it (it used to be averaged with the gated tile's zeros)."""
    left = np.zeros((2, 64, 64), np.float32)
    left[:, 20:40, 40:64] = 1.0                        # an object reaching into the overlap (columns 48-63)
    right = np.zeros((2, 64, 64), np.float32)
    blended = _stitch([left, right], [None, None], abstain=False)
    assert blended[0, 30, 56] < 0.9                    # averaged with the right tile's zeros
    both = _stitch([left, right], [np.array([True, True]), np.array([True, True])], abstain=True)
    np.testing.assert_allclose(both, blended, atol=1e-6)  # every tile answering: the plain weighted blend
    gated = _stitch([left, right], [np.array([True, True]), np.array([False, True])], abstain=True)
    assert gated[0, 20:40, 40:64].min() == pytest.approx(1.0)   # query 0: the right tile abstains
    np.testing.assert_allclose(gated[1], blended[1], atol=1e-6)  # query 1: both answered
    nobody = _stitch([left, right], [np.array([False, True]), np.array([False, True])], abstain=True)
    assert not nobody[0].any()                         # no opinion anywhere: nothing


def test_prefetcher_orders_bounds_and_reraises():
    produced = []

    def gen():
        for i in range(20):
            produced.append(i)
            yield i

    p = Prefetcher(gen, depth=2)
    it = iter(p)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) <= 5  # bounded read-ahead: 1 consumed + 2 queued + 1 waiting to be put (+1 slack)
    assert list(it) == list(range(1, 20))
    p.close()

    def bad():
        yield 1
        raise OSError("disk went away")

    with Prefetcher(bad) as p, pytest.raises(OSError, match="disk went away"):
        list(p)
    # close() stops a reader that is blocked on a full queue
    p = Prefetcher(lambda: iter(range(10**9)), depth=1)
    next(iter(p))
    p.close()
    assert not any(t.name == "rs2sam2-reader" and t.is_alive() for t in threading.enumerate())
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]


def test_uint16_stretch_ignores_nodata_and_uses_a_decimated_read(tmp_path):
    data = np.full((3, 300, 300), 1000, np.uint16)
    data[:, :, :100] = 65535                     # nodata: must not become the stretch's top
    data[:, 150:200, 150:200] = 3000
    path = write_raster(tmp_path / "u16.tif", data, nodata=65535)
    src = open_source(path, SegmentOptions())
    lo, hi = src.stretch[0]
    assert lo == 1000 and hi == 3000
    with src.open() as ds:
        rgb, valid = src.read(ds, 0, 0, 300, 300)
    assert not valid[:, :100].any() and valid[:, 100:].all()
    assert rgb[160, 160, 0] == 255 and rgb[250, 250, 0] == 0 and rgb[0, 0, 0] == 0


@pytest.mark.parametrize("crs,poly", [
    ("EPSG:32633", shapely.box(500000, 5000000, 500100, 5000050)),
    ("EPSG:3857", shapely.box(1113194, 8399737, 1113394, 8399937)),
    ("EPSG:4326", shapely.box(10.0, 45.0, 10.001, 45.002)),
])
def test_vectorised_areas_match_exact_geodesic(crs, poly):
    calc = AreaCalculator(crs)
    exact = calc.exact_area_m2(poly)
    fast = calc.areas_m2([poly])[0]
    assert fast == pytest.approx(exact, rel=1e-4)
    if crs == "EPSG:3857":  # Web Mercator at 60 N: planar 'm2' are ~4x the ground's
        assert poly.area / exact == pytest.approx(4.0, rel=0.02)
    assert AreaCalculator(None).areas_m2([poly])[0] != AreaCalculator(None).areas_m2([poly])[0]  # NaN


def test_options_validate_with_clear_messages():
    for bad, needle in [(dict(overlap=0.95), "overlap"), (dict(threshold=1.5), "threshold"),
                        (dict(bands=(1, 2)), "bands"), (dict(extent=(1, 2, 0, 3)), "extent"),
                        (dict(tile=4), "tile size")]:
        with pytest.raises(InputError, match=needle):
            SegmentOptions(**bad).validate()
    assert SegmentOptions().overlap == 0.25 and SegmentOptions().threshold == 0.5


def test_exact_area_subtracts_holes_and_fast_path_agrees():
    calc = AreaCalculator("EPSG:32633")
    shell = shapely.box(500000, 5000000, 503000, 5003000)      # 3 km: takes the exact path
    hole = shapely.box(501000, 5001000, 502000, 5002000)
    poly = shell.difference(hole)
    assert calc.exact_area_m2(poly) == pytest.approx(calc.exact_area_m2(shell) - calc.exact_area_m2(hole),
                                                     rel=1e-9)
    assert calc.exact_area_m2(poly) == pytest.approx(8e6 / 0.9996 ** 2, rel=2e-4)
    small = shapely.box(500000, 5000000, 500300, 5000300).difference(shapely.box(500100, 5000100, 500200, 5000200))
    assert calc.areas_m2([small])[0] == pytest.approx(calc.exact_area_m2(small), rel=1e-5)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_strips_with_merged_seams_equal_one_pass_polygonize(connectivity, monkeypatch):
    """Regions cut by strip seams come out whole: the same polygons (and mean probabilities) as GDAL's polygonize
    of the whole mask at once, for blobs, a noisy mask and snakes that cross many seams."""
    from rasterio import features

    from rs2sam2_qgis.pipeline import strips as S
    from rs2sam2_qgis.pipeline.polygonize import memory_reader

    rng = np.random.default_rng(1)
    prob = (rng.random((300, 97)) > 0.45).astype(np.float32) * rng.uniform(0.5, 1.0, (300, 97)).astype(np.float32)
    prob[:, 40] = 0.9  # a column crossing every seam
    prob[150:152, :] = 0.8  # a row joining everything
    read_mask, read_prob = memory_reader(prob, 0.5)
    mask = (prob >= 0.5).astype(np.uint8)
    truth = [shapely.geometry.shape(g) for g, v in features.shapes(mask, mask=mask.astype(bool),
                                                                    connectivity=connectivity) if v]
    monkeypatch.setattr(S, "strip_rows", lambda width, cell=1: 7)  # 7-row strips: 42 seams
    got = list(S.regions(read_mask, read_prob, 300, 97, connectivity))

    def key(g):
        return round(g.area, 6), round(g.centroid.x, 6), round(g.centroid.y, 6)
    assert len(got) == len(truth) > 50
    assert sorted(key(g) for g, _ in got) == sorted(key(g) for g in truth)
    for g, score in got:
        inside = features.rasterize([(g, 1)], out_shape=prob.shape, fill=0, dtype="uint8") > 0
        assert score == pytest.approx(float(prob[inside].astype(np.float64).mean()), rel=1e-9)

