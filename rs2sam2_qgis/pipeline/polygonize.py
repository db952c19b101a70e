"""Probability raster -> cleaned polygons with attributes (query, score, area_m2, model, created_at)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.windows import Window
from shapely.geometry import shape

from .areas import AreaCalculator
from .errors import Cancelled


@dataclass
class DetectedPolygon:
    geometry: object  # shapely Polygon or MultiPolygon, in the raster's CRS (pixel coordinates without one)
    query: str
    score: float      # mean probability inside
    area_m2: Optional[float]
    model: str
    created_at: str

    def attributes(self) -> dict:
        return {"query": self.query, "score": self.score, "area_m2": self.area_m2, "model": self.model,
                "created_at": self.created_at}


def _polygonal(geom):
    """Only the polygonal parts of a geometry (make_valid can return collections with lines/points)."""
    if geom.is_empty:
        return geom
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    polys = []
    for p in parts:
        polys.extend(p.geoms if p.geom_type == "MultiPolygon" else [p])
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


class Polygonizer:
    def __init__(self, transform: Affine, crs_wkt: Optional[str], threshold: float, simplify: float,
                 min_area_m2: float, min_pixels: int, fill_holes_m2: float, model: str, created_at: str,
                 connectivity: int = 4):
        self.transform = transform
        self.areas = AreaCalculator(crs_wkt)
        self.threshold = threshold
        self.simplify = simplify
        self.min_area_m2 = min_area_m2
        self.min_pixels = min_pixels
        self.fill_holes_m2 = fill_holes_m2
        self.model = model
        self.created_at = created_at
        self.connectivity = connectivity
        self.pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
        self.inv = ~transform

    def _area(self, geom) -> Optional[float]:
        if self.areas.available:
            return self.areas.area_m2(geom)
        return float(geom.area / self.pixel_area)  # pixel coordinates: area in pixels

    def _fill_holes(self, poly):
        if self.fill_holes_m2 <= 0 or not poly.interiors:
            return poly
        keep = [r for r in poly.interiors if self._area(shapely.Polygon(r)) >= self.fill_holes_m2]
        return shapely.Polygon(poly.exterior, keep)

    def _score(self, raw, read_prob) -> float:
        minx, miny, maxx, maxy = raw.bounds
        cs, rs = [], []
        for x, y in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy)):
            c, r = self.inv * (x, y)
            cs.append(c)
            rs.append(r)
        r0, r1 = int(math.floor(min(rs) + 1e-6)), int(math.ceil(max(rs) - 1e-6))
        c0, c1 = int(math.floor(min(cs) + 1e-6)), int(math.ceil(max(cs) - 1e-6))
        prob = read_prob(r0, c0, r1 - r0, c1 - c0)
        wt = self.transform * Affine.translation(c0, r0)
        inside = features.geometry_mask([raw], out_shape=prob.shape, transform=wt, invert=True)
        return float(prob[inside].mean()) if inside.any() else float(prob.mean())

    def polygons(self, query: str, shapes_iter, read_prob, is_cancelled: Optional[Callable] = None
                 ) -> list[DetectedPolygon]:
        out = []
        for k, (geojson, value) in enumerate(shapes_iter):
            if is_cancelled is not None and k % 256 == 0 and is_cancelled():
                raise Cancelled()
            if not value:
                continue
            raw = shape(geojson)
            if raw.area / self.pixel_area < self.min_pixels:
                continue
            score = self._score(raw, read_prob)
            geom = self._fill_holes(raw)
            if self.simplify > 0:
                geom = geom.simplify(self.simplify, preserve_topology=True)
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
            geom = _polygonal(geom)
            if geom.is_empty:
                continue
            area = self._area(geom)
            if area is not None and area < self.min_area_m2:
                continue
            out.append(DetectedPolygon(geom, query, score, area, self.model, self.created_at))
        return out


def shapes_from_memory(prob: np.ndarray, threshold: float, transform: Affine, connectivity: int):
    mask = (prob >= threshold).astype(np.uint8)
    return features.shapes(mask, mask=mask.astype(bool), transform=transform, connectivity=connectivity)


def memory_reader(prob: np.ndarray):
    def read(row, col, height, width):
        r0, c0 = max(row, 0), max(col, 0)
        return prob[r0:max(r0, row + height), c0:max(c0, col + width)]
    return read


def shapes_from_band(mask_ds, band: int, connectivity: int):
    """Streaming polygonize (GDAL reads the band scanline by scanline)."""
    b = rasterio.band(mask_ds, band)
    return features.shapes(b, mask=b, transform=mask_ds.transform, connectivity=connectivity)


def band_reader(prob_ds, band: int):
    def read(row, col, height, width):
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, prob_ds.height), min(col + width, prob_ds.width)
        return prob_ds.read(band, window=Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0)))
    return read
