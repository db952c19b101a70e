"""Polygonize in bounded memory: strips (seams merged: tests/test_pipeline_units.py) and, for masks whose boundary
passes the cap, coarser cells with a warning, so the polygons held never grow with the raster's area."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from rs2sam2_qgis.pipeline import cli, model_spec
from rs2sam2_qgis.pipeline.polygonize import Polygonizer, memory_reader, polygonize_canvas
from rs2sam2_qgis.pipeline.strips import boundary_edges
from tests.colour_model import ColourModel, write_raster

T = Affine(0.5, 0, 500000.0, 0, -0.5, 5000000.0)


def _edges(mask):
    m = np.asarray(mask, bool)
    return boundary_edges(lambda t, b: m[t:b], m.shape[0], m.shape[1], 2)


def test_boundary_edges_count_every_pixel_edge():
    one = np.zeros((5, 5), bool)
    one[2, 2] = True
    assert _edges(one) == 4
    block = np.zeros((6, 7), bool)
    block[1:3, 2:4] = True
    assert _edges(block) == 8
    assert _edges(np.ones((4, 4), bool)) == 16  # the raster's border counts
    checker = (np.indices((8, 8)).sum(0) % 2).astype(bool)
    assert _edges(checker) == 32 * 4


def _noise(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, n)).astype(np.float32)


def _poly():
    return Polygonizer(T, "EPSG:32633", 0.5, 0.0, 0.0, 0, 0.0, "m", "now")


def test_noisy_mask_past_the_cap_is_coarsened_with_a_warning_and_bounded_output():
    prob = _noise(600)
    read_mask, read_prob = memory_reader(prob, 0.5)
    cap = 20_000
    assert _edges(prob >= 0.5) > 10 * cap
    polys, warning = polygonize_canvas(_poly(), "q", read_mask, read_prob, 600, 600, 4, None, cap)
    assert warning and "noise-like" in warning and "pixel cells" in warning and "'q'" in warning
    coords = sum(shapely.get_num_coordinates(p.geometry) for p in polys)
    assert 0 < coords <= 2 * cap
    bounds = shapely.total_bounds([p.geometry for p in polys])
    x0, y1 = T * (0, 0)
    x1, y0 = T * (600, 600)
    assert bounds[0] >= x0 and bounds[2] <= x1 and bounds[1] >= y0 and bounds[3] <= y1


def test_output_size_does_not_grow_with_the_area_past_the_cap():
    cap = 20_000
    sizes = {}
    for n in (400, 1200):
        read_mask, read_prob = memory_reader(_noise(n, 1), 0.5)
        polys, warning = polygonize_canvas(_poly(), "q", read_mask, read_prob, n, n, 4, None, cap)
        assert warning
        sizes[n] = sum(shapely.get_num_coordinates(p.geometry) for p in polys)
    assert sizes[1200] <= 2 * cap and sizes[400] <= 2 * cap


def test_masks_under_the_cap_are_pixel_exact_and_silent():
    prob = np.zeros((300, 300), np.float32)
    prob[10:50, 20:90] = 0.9
    prob[100:103, 5:295] = 0.7
    read_mask, read_prob = memory_reader(prob, 0.5)
    polys, warning = polygonize_canvas(_poly(), "q", read_mask, read_prob, 300, 300)
    assert warning is None
    assert sorted(round(p.geometry.area / 0.25) for p in polys) == [3 * 290, 40 * 70]
    assert sorted(round(p.score, 4) for p in polys) == [0.7, 0.9]


def test_cli_prints_the_warning_and_still_writes(tmp_path, monkeypatch, capsys):
    img = (np.random.default_rng(0).random((3, 200, 200)) > 0.5).astype(np.uint8) * 255
    img[1:] = 0  # red noise: half the pixels red
    raster = write_raster(tmp_path / "noise.tif", img, transform=T)
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    o = tmp_path / "n.gpkg"
    rc = cli.main(["segment", raster, "red", "-o", str(o), "--quiet", "--tile", "64", "--max-edges", "5000",
                   "--min-pixels", "0"])
    err = capsys.readouterr().err
    assert rc == 0 and o.exists()
    assert "rs2sam2: warning: the mask of 'red' is noise-like" in err


@pytest.mark.parametrize("bad", ["10", "-1"])
def test_max_edges_below_1000_is_refused(bad, tmp_path, monkeypatch, capsys):
    raster = write_raster(tmp_path / "a.tif", np.zeros((3, 10, 10), np.uint8), transform=T)
    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: ColourModel(64))
    assert cli.main(["segment", raster, "red", "-o", str(tmp_path / "a.gpkg"), "--max-edges", bad]) == 2
    assert "max edges" in capsys.readouterr().err


def test_a_region_too_complex_to_merge_across_strips_is_coarsened(monkeypatch):
    """One percolating region crossing every seam: its union would cost ~700 B a vertex, so past the region cap
    the canvas is polygonized again on cells twice as large, with a warning."""
    from rs2sam2_qgis.pipeline import strips

    monkeypatch.setattr(strips, "strip_rows", lambda width, cell=1: 64)
    monkeypatch.setattr(strips, "MAX_REGION_COORDS", 3000)
    merged = []
    merge = strips._merge
    monkeypatch.setattr(strips, "_merge", lambda pieces: merged.append(
        sum(shapely.get_num_coordinates(p) for p in pieces)) or merge(pieces))
    prob = (np.random.default_rng(2).random((400, 400)) > 0.3).astype(np.float32)  # 70 %: percolates
    read_mask, read_prob = memory_reader(prob, 0.5)
    polys, warning = polygonize_canvas(_poly(), "q", read_mask, read_prob, 400, 400, 4, None, 10**9)
    assert warning and "crosses strip seams" in warning and "more than the 3,000" in warning
    assert polys and max(merged, default=0) <= 3000  # no union past the cap
