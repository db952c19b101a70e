"""Shared scenes and comparisons for the batch tests (no tests here)."""
from __future__ import annotations

import functools
import os

import numpy as np
import pyogrio
from affine import Affine

from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster, write_vector
from tests.colour_model import ColourModel, rgb_scene, write_raster

QUERIES = ["the red roofs", "white tanks"]
OPTIONS = SegmentOptions(tile=32, overlap=0.25, batch_size=4)
MODEL = functools.partial(ColourModel, 32)
RED, WHITE = (255, 0, 0), (255, 255, 255)


def make_rasters(folder) -> list[str]:
    """6 small RGB GeoTIFFs: 3 in UTM 33N (1 m pixels), 3 in Web Mercator (2 m pixels), 1-3 boxes each."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(6):
        boxes = [(5 + 3 * i, 6, 25 + 3 * i, 30, RED), (40, 35 + 2 * i, 70, 60 + 2 * i, WHITE)]
        if i % 2:
            boxes.append((60, 5, 75, 20, RED))
        img = rgb_scene(80, 80, boxes, (60, 60, 60))
        if i < 3:
            crs, t = "EPSG:32633", Affine(1.0, 0, 500000.0 + 100 * i, 0, -1.0, 5000000.0)
        else:
            crs, t = "EPSG:3857", Affine(2.0, 0, 1_600_000.0 + 200 * i, 0, -2.0, 6_000_000.0)
        paths.append(write_raster(os.path.join(folder, f"scene_{i}.tif"), img, crs=crs, transform=t))
    return paths


def reference_outputs(rasters, folder) -> dict:
    """The engine run raster by raster (segment_raster + write_vector): what batch must reproduce."""
    os.makedirs(folder, exist_ok=True)
    pred = Predictor(MODEL(), device="cpu")
    out = {}
    for r in rasters:
        res = segment_raster(r, QUERIES, pred, OPTIONS)
        path = os.path.join(folder, os.path.splitext(os.path.basename(r))[0] + ".gpkg")
        write_vector(res, path)
        out[os.path.abspath(r)] = path
    return out


def read_layers(path, drop=("created_at",)) -> dict:
    """{layer: (sorted rows of (wkb, field values...), crs, field names)} without run-time fields."""
    out = {}
    for name in sorted(str(n) for n in pyogrio.list_layers(path)[:, 0]):
        meta, _fids, geom, data = pyogrio.raw.read(path, layer=name)
        fields = [str(f) for f in meta["fields"]]
        keep = [k for k, f in enumerate(fields) if f not in drop]
        rows = sorted(tuple([bytes(g)] + [data[k][i] for k in keep]) for i, g in enumerate(geom))
        out[name] = (rows, meta["crs"], [fields[k] for k in keep])
    return out


def assert_same_vectors(a, b):
    la, lb = read_layers(a), read_layers(b)
    assert la.keys() == lb.keys(), (a, b)
    for name in la:
        assert la[name][2] == lb[name][2]
        assert la[name][1] == lb[name][1]
        assert len(la[name][0]) == len(lb[name][0]) > 0
        for ra, rb in zip(la[name][0], lb[name][0]):
            assert ra[0] == rb[0]
            for x, y in zip(ra[1:], rb[1:]):
                if isinstance(x, float):
                    assert np.isclose(x, y, rtol=1e-9, atol=0), (name, x, y)
                else:
                    assert x == y
