"""Probability canvas -> cleaned polygons with attributes (query, score, area_m2, model, device, precision,
created_at; presence and rank in whole-extent scope).

Threshold -> connected regions strip by strip in pixel coordinates, with their mean probability (strips.py: bounded
memory, and a cap on the mask's boundary with a warning) -> pixel cleaning (min pixels) -> map coordinates -> hole
filling, simplification (map units), make_valid -> ground areas (vectorised) -> min-area filter. Everything but the
hole filling runs vectorised over chunks of polygons, so noisy masks with 1e5 specks stay fast.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio.windows import Window

from . import strips
from .areas import AreaCalculator
from .errors import Cancelled
from .strips import MAX_BOUNDARY_EDGES, RegionTooComplex, coarse_factor, coarse_reader, regions, strip_rows

CHUNK = 20000  # polygons processed together (bounds Python-side memory)
CHUNK_COORDS = 2_000_000  # ... or this many vertices


@dataclass
class DetectedPolygon:
    geometry: object  # shapely Polygon or MultiPolygon, in the raster's CRS (pixel coordinates without one)
    query: str
    score: float      # mean probability inside
    area_m2: float | None
    model: str
    created_at: str
    device: str = ""     # where the model ran (cpu, cuda) and in which precision (fp32, bf16, fp16): the same
    precision: str = ""  # weights can draw slightly different outlines on another device or precision
    presence: float | None = None  # the model's belief that its tile(s) hold the referent (whole-extent scope)
    rank: int | None = None        # 1 = the best answer to the query over the extent (whole-extent scope)

    def attributes(self) -> dict:
        return {"query": self.query, "score": self.score, "area_m2": self.area_m2, "model": self.model,
                "device": self.device, "precision": self.precision, "created_at": self.created_at,
                "presence": self.presence, "rank": self.rank}


def polygonal(geom):
    """Only the polygonal parts of a geometry (make_valid can return collections with lines/points)."""
    if geom.is_empty or geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = []
    for g in getattr(geom, "geoms", []):
        if g.geom_type == "Polygon":
            polys.append(g)
        elif g.geom_type == "MultiPolygon":
            polys.extend(g.geoms)
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


class Polygonizer:
    def __init__(self, transform: Affine, crs_wkt: str | None, threshold: float, simplify: float,
                 min_area_m2: float, min_pixels: int, fill_holes_m2: float, model: str, created_at: str,
                 connectivity: int = 4, device: str = "", precision: str = ""):
        self.transform = transform
        self.areas = AreaCalculator(crs_wkt)
        self.threshold = threshold
        self.simplify = simplify
        self.min_area_m2 = min_area_m2
        self.min_pixels = min_pixels
        self.fill_holes_m2 = fill_holes_m2
        self.model = model
        self.created_at = created_at
        self.device, self.precision = device, precision
        self.connectivity = connectivity
        self.pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
        self.inv = ~transform

    def _areas(self, geoms) -> np.ndarray:
        if self.areas.available:
            return self.areas.areas_m2(geoms)
        return shapely.area(np.asarray(geoms, dtype=object)) / self.pixel_area  # pixel coordinates: pixels

    def _fill_holes(self, poly):
        rings = list(poly.interiors)
        holes = np.array([shapely.Polygon(r) for r in rings], dtype=object)
        keep = self._areas(holes) >= self.fill_holes_m2
        return shapely.Polygon(poly.exterior, [r for r, k in zip(rings, keep) if k])

    def _to_map(self, geoms: np.ndarray) -> np.ndarray:
        t = self.transform
        return shapely.transform(geoms, lambda xy: np.column_stack([t.a * xy[:, 0] + t.b * xy[:, 1] + t.c,
                                                                    t.d * xy[:, 0] + t.e * xy[:, 1] + t.f]))

    def polygons(self, query: str, found: Iterable[tuple], is_cancelled: Callable | None = None,
                 cell: int = 1, height: int = 0, width: int = 0) -> list[DetectedPolygon]:
        """Cleaned polygons from (region in pixel coordinates, score) pairs (strips.regions), in chunks. ``cell`` >
        1: the regions are in k x k cells of a height x width canvas (scaled back and clipped to it here)."""
        out, geoms, scores, coords = [], [], [], 0
        for k, (geom, score) in enumerate(found):
            if is_cancelled is not None and k % 1024 == 0 and is_cancelled():
                raise Cancelled()
            geoms.append(geom)
            scores.append(score)
            coords += shapely.get_num_coordinates(geom)
            if len(geoms) >= CHUNK or coords >= CHUNK_COORDS:
                out.extend(self._process(query, geoms, scores, cell, height, width))
                geoms, scores, coords = [], [], 0
        if geoms:
            out.extend(self._process(query, geoms, scores, cell, height, width))
        return out

    def _process(self, query, geoms, scores, cell, height, width) -> list[DetectedPolygon]:
        geoms, scores = np.asarray(geoms, dtype=object), np.asarray(scores, dtype=np.float64)
        if cell > 1:
            geoms = shapely.clip_by_rect(shapely.transform(geoms, lambda xy: xy * cell), 0, 0, width, height)
        if (shapely.get_type_id(geoms) != 3).any():  # 8-connected unions and clips: one feature per polygon part
            geoms, idx = shapely.get_parts(geoms, return_index=True)
            poly = shapely.get_type_id(geoms) == 3
            geoms, scores = geoms[poly], scores[idx[poly]]
        keep = np.nonzero(shapely.area(geoms) >= max(self.min_pixels, 1e-9))[0]
        geoms, scores = geoms[keep], scores[keep]
        if len(geoms) == 0:
            return []
        geoms = self._to_map(geoms)
        if self.fill_holes_m2 > 0:
            for i in np.nonzero(shapely.get_num_interior_rings(geoms) > 0)[0]:
                geoms[i] = self._fill_holes(geoms[i])
        if self.simplify > 0:
            geoms = simplify_rings(geoms, self.simplify)
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = [polygonal(g) for g in shapely.make_valid(geoms[bad])]
        keep = ~shapely.is_empty(geoms)
        geoms, scores = geoms[keep], scores[keep]
        areas = self._areas(geoms)
        keep = ~(areas < self.min_area_m2)
        out = []
        for g, sc, a in zip(geoms[keep], scores[keep], areas[keep]):
            out.append(DetectedPolygon(g, query, float(sc), None if np.isnan(a) or not self.areas.available
                                       else float(a), self.model, self.created_at, self.device, self.precision))
        return out


def simplify_rings(polys: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on every ring on its own, vectorised (GEOS simplifies polygons with a buffer(0) pass that is
    very slow on polygons with thousands of holes). Holes that collapse are dropped; a collapsed shell drops the
    polygon (empty). Crossings it may create are repaired by make_valid afterwards."""
    rings, poly_idx = shapely.get_rings(polys, return_index=True)
    simple = shapely.simplify(rings, tolerance, preserve_topology=False)
    ncoords = shapely.get_num_coordinates(simple)
    ok = (ncoords >= 4) & ~shapely.is_empty(simple)
    # the first ring of each polygon is its shell
    first = np.ones(len(rings), bool)
    first[1:] = poly_idx[1:] != poly_idx[:-1]
    shell_ok = np.zeros(len(polys), bool)
    shell_ok[poly_idx[first & ok]] = True
    keep = ok & shell_ok[poly_idx]
    out = np.empty(len(polys), dtype=object)
    out[:] = shapely.Polygon()
    if keep.any():
        built = np.empty(len(polys), dtype=object)
        shapely.polygons(shapely.linearrings(shapely.get_coordinates(simple[keep]),
                                             indices=np.repeat(np.arange(keep.sum()), ncoords[keep])),
                         indices=poly_idx[keep], out=built)
        out[shell_ok] = built[shell_ok]
    return out


def polygonize_canvas(poly: Polygonizer, query: str, read_mask, read_prob, height: int, width: int,
                      connectivity: int = 4, is_cancelled: Callable | None = None,
                      max_edges: int = MAX_BOUNDARY_EDGES) -> tuple[list[DetectedPolygon], str | None]:
    """One query's canvas -> (polygons, a warning or None). ``read_mask(top, bottom)`` / ``read_prob(top,
    bottom)``: rows of the thresholded mask / probabilities. Past ``max_edges`` boundary edges, or with a region
    too complex to merge across strips, the mask is polygonized on coarser cells (strips.py) and the warning says
    so."""
    k, edges = coarse_factor(read_mask, read_prob, poly.threshold, height, width, max_edges)
    why = f"{edges:,} pixel edges, over the {max_edges:,} that are polygonized pixel by pixel"
    while True:
        try:
            if k == 1:
                return poly.polygons(query, regions(read_mask, read_prob, height, width, connectivity,
                                                    is_cancelled), is_cancelled), None
            cells = coarse_reader(read_prob, height, width, k)
            found = regions(lambda t, b, c=cells: c(t, b) >= poly.threshold, cells, -(-height // k),
                            -(-width // k), connectivity, is_cancelled, strip_rows(width, k))
            polys = poly.polygons(query, found, is_cancelled, cell=k, height=height, width=width)
            break
        except RegionTooComplex as exc:
            why = f"{exc}, more than the {strips.MAX_REGION_COORDS:,} merged in bounded memory"
            k = max(2, 2 * k)
    warning = (f"the mask of '{query}' is noise-like ({why}): it was polygonized on {k} x {k} pixel cells to stay "
               f"in bounded memory; a model suited to this imagery, a higher threshold or a smaller area gives "
               f"pixel-exact polygons")
    return polys, warning


def memory_reader(prob: np.ndarray, threshold: float):
    """(read_mask, read_prob) over an in-memory probability canvas."""
    return (lambda top, bottom: prob[top:bottom] >= threshold), (lambda top, bottom: prob[top:bottom])


def disk_reader(mask_ds, prob_ds, band: int):
    """(read_mask, read_prob) over the temporary GeoTIFF canvas (mask thresholded before the uint8 quantisation
    of the probabilities)."""
    def rows(ds, top, bottom):
        return ds.read(band, window=Window(0, top, ds.width, bottom - top))

    def read_prob(top, bottom):
        return rows(prob_ds, top, bottom).astype(np.float32) / 255.0
    return (lambda top, bottom: rows(mask_ds, top, bottom) > 0), read_prob
