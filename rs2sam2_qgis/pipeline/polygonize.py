"""Probability raster -> cleaned polygons with attributes (query, score, area_m2, model, device, precision,
created_at).

Threshold -> rasterio.features.shapes (GDAL polygonize; streaming from a band when the canvas is on disk) ->
scores (mean probability inside each raw polygon: all polygons rasterised strip by strip with their ids, then one
bincount) -> hole filling, simplification (map units), make_valid -> ground areas (vectorised) -> min-area filter.
Everything but the hole filling runs vectorised over all polygons, so noisy masks with 1e5 specks stay fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.windows import Window

from .areas import AreaCalculator
from .errors import Cancelled

SPARSE_FRACTION = 0.25  # polygons' boxes cover less than this share: score them window by window
CHUNK = 20000  # polygons processed together (bounds Python-side memory)
CHUNK_COORDS = 2_000_000  # ... or this many vertices
STRIP_PIXELS = 1 << 22  # pixels per rasterised strip when scoring (16 MB of int32 ids)


@dataclass
class DetectedPolygon:
    geometry: object  # shapely Polygon or MultiPolygon, in the raster's CRS (pixel coordinates without one)
    query: str
    score: float      # mean probability inside
    area_m2: Optional[float]
    model: str
    created_at: str
    device: str = ""     # where the model ran (cpu, cuda) and in which precision (fp32, bf16, fp16): the same
    precision: str = ""  # weights can draw slightly different outlines on another device or precision
    presence: Optional[float] = None  # the model's belief that its tile(s) hold the referent (whole-extent scope)
    rank: Optional[int] = None        # 1 = the best answer to the query over the extent (whole-extent scope)

    def attributes(self) -> dict:
        return {"query": self.query, "score": self.score, "area_m2": self.area_m2, "model": self.model,
                "device": self.device, "precision": self.precision, "created_at": self.created_at,
                "presence": self.presence, "rank": self.rank}


def _polygonal(geom):
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
    def __init__(self, transform: Affine, crs_wkt: Optional[str], threshold: float, simplify: float,
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

    def _pixel_box(self, geoms):
        """Pixel row/col ranges [r0, r1) x [c0, c1) of each geometry's bounds (rotation-aware)."""
        b = shapely.bounds(geoms)
        inv = self.inv
        rows, cols = [], []
        for x, y in ((b[:, 0], b[:, 1]), (b[:, 0], b[:, 3]), (b[:, 2], b[:, 1]), (b[:, 2], b[:, 3])):
            rows.append(inv.d * x + inv.e * y + inv.f)
            cols.append(inv.a * x + inv.b * y + inv.c)
        rows, cols = np.stack(rows), np.stack(cols)
        f = lambda v: np.floor(v + 1e-6).astype(np.int64)  # noqa: E731
        c = lambda v: np.ceil(v - 1e-6).astype(np.int64)  # noqa: E731
        return f(rows.min(0)), c(rows.max(0)), f(cols.min(0)), c(cols.max(0))

    def scores(self, geoms, read_rows, height: int, width: int, is_cancelled=None, shapes_=None) -> np.ndarray:
        """Mean probability inside each (raw, disjoint) polygon: rasterise ids strip by strip, bincount.
        ``shapes_``: the same polygons as GeoJSON-like dicts (faster to rasterise than shapely objects)."""
        shapes_ = geoms if shapes_ is None else shapes_
        n = len(geoms)
        sums = np.zeros(n + 1, np.float64)
        counts = np.zeros(n + 1, np.float64)
        if n == 0:
            return sums[1:]
        r0s, r1s, c0s, c1s = self._pixel_box(geoms)
        r0s, r1s = np.clip(r0s, 0, height), np.clip(r1s, 0, height)
        c0s, c1s = np.clip(c0s, 0, width), np.clip(c1s, 0, width)
        if ((r1s - r0s) * (c1s - c0s)).sum() < SPARSE_FRACTION * height * width:
            # sparse detections: read and rasterise each polygon's own window only
            for i in range(n):
                if is_cancelled is not None and i % 256 == 0 and is_cancelled():
                    raise Cancelled()
                if r1s[i] <= r0s[i] or c1s[i] <= c0s[i]:
                    continue
                shape_ = (int(r1s[i] - r0s[i]), int(c1s[i] - c0s[i]))
                ids = features.rasterize([(geoms[i] if shapes_[i] is None else shapes_[i], 1)], out_shape=shape_,
                                         fill=0, dtype="uint8",
                                         transform=self.transform * Affine.translation(c0s[i], r0s[i]))
                prob = read_rows(int(r0s[i]), int(r1s[i]), int(c0s[i]), int(c1s[i]))
                inside = ids > 0
                sums[i + 1], counts[i + 1] = float(prob[inside].sum()), float(inside.sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                s = sums[1:] / counts[1:]
            return np.where(counts[1:] > 0, s, self.threshold)
        order = np.argsort(r0s, kind="stable")
        r0_sorted = r0s[order]
        strip = max(64, STRIP_PIXELS // max(1, width))
        for top in range(0, height, strip):
            if is_cancelled is not None and is_cancelled():
                raise Cancelled()
            bottom = min(height, top + strip)
            last = np.searchsorted(r0_sorted, bottom, side="left")
            cand = order[:last]
            cand = cand[r1s[cand] > top]
            if len(cand) == 0:
                continue
            strip_tf = self.transform * Affine.translation(0, top)
            inside = (r0s[cand] >= top) & (r1s[cand] <= bottom)
            items = [(geoms[i] if shapes_[i] is None else shapes_[i], int(i) + 1) for i in cand[inside]]
            big = cand[~inside]
            if len(big):
                # polygons reaching past the strip: rasterise only their part in it (clipped to the strip's box)
                xs, ys = zip(*(strip_tf * (c, r) for c, r in ((0, -1), (width, -1), (0, bottom - top + 1),
                                                             (width, bottom - top + 1))))
                clipped = shapely.clip_by_rect(geoms[big], min(xs), min(ys), max(xs), max(ys))
                items += [(g, int(i) + 1) for g, i in zip(clipped, big) if not g.is_empty]
            ids = features.rasterize(items, out_shape=(bottom - top, width), transform=strip_tf, fill=0,
                                     dtype="int32")
            prob = read_rows(top, bottom)
            sums += np.bincount(ids.ravel(), weights=prob.ravel(), minlength=n + 1)
            counts += np.bincount(ids.ravel(), minlength=n + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = sums[1:] / counts[1:]
        return np.where(counts[1:] > 0, s, self.threshold)

    def polygons(self, query: str, shapes_iter, read_rows, height: int, width: int,
                 is_cancelled: Optional[Callable] = None) -> list[DetectedPolygon]:
        """Cleaned polygons from ``features.shapes`` output, processed in chunks (bounded Python memory)."""
        out, chunk, coords = [], [], 0
        for k, (geojson, value) in enumerate(shapes_iter):
            if is_cancelled is not None and k % 1024 == 0 and is_cancelled():
                raise Cancelled()
            if value:
                chunk.append(geojson)
                coords += sum(len(r) for r in geojson["coordinates"])
                if len(chunk) >= CHUNK or coords >= CHUNK_COORDS:
                    out.extend(self._process(query, chunk, read_rows, height, width, is_cancelled))
                    chunk, coords = [], 0
        if chunk:
            out.extend(self._process(query, chunk, read_rows, height, width, is_cancelled))
        return out

    def _process(self, query, dicts, read_rows, height, width, is_cancelled) -> list[DetectedPolygon]:
        raw = polygons_from_geojson(dicts)
        keep = np.nonzero(shapely.area(raw) / self.pixel_area >= max(self.min_pixels, 1e-9))[0]
        raw, dicts = raw[keep], [dicts[i] for i in keep]
        if len(raw) == 0:
            return []
        # big polygons: drop their GeoJSON copy now (Python tuples cost ~10x shapely's memory); scoring clips them
        for i in np.nonzero(shapely.get_num_coordinates(raw) > 4096)[0]:
            dicts[i] = None
        scores = self.scores(raw, read_rows, height, width, is_cancelled, dicts)
        del dicts
        geoms = raw.copy()
        if self.fill_holes_m2 > 0:
            for i in np.nonzero(shapely.get_num_interior_rings(geoms) > 0)[0]:
                geoms[i] = self._fill_holes(geoms[i])
        if self.simplify > 0:
            geoms = simplify_rings(geoms, self.simplify)
            bad = ~shapely.is_valid(geoms)
            if bad.any():
                geoms[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
        keep = ~shapely.is_empty(geoms)
        geoms, scores = geoms[keep], scores[keep]
        areas = self._areas(geoms)
        keep = ~(areas < self.min_area_m2)
        out = []
        for g, s, a in zip(geoms[keep], scores[keep], areas[keep]):
            out.append(DetectedPolygon(g, query, float(s), None if np.isnan(a) or not self.areas.available
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


def polygons_from_geojson(dicts) -> np.ndarray:
    """GeoJSON-like Polygon dicts (from features.shapes) -> array of shapely Polygons, built vectorised."""
    if not dicts:
        return np.array([], dtype=object)
    rings, ring_poly = [], []
    for i, d in enumerate(dicts):
        for ring in d["coordinates"]:
            rings.append(np.asarray(ring, dtype=np.float64))
            ring_poly.append(i)
    sizes = np.fromiter((len(r) for r in rings), dtype=np.int64, count=len(rings))
    ring_ids = np.repeat(np.arange(len(rings)), sizes)
    lr = shapely.linearrings(np.concatenate(rings), indices=ring_ids)
    out = np.empty(len(dicts), dtype=object)
    shapely.polygons(lr, indices=np.asarray(ring_poly), out=out)
    return out


def shapes_from_memory(prob: np.ndarray, threshold: float, transform: Affine, connectivity: int):
    mask = (prob >= threshold).astype(np.uint8)
    return features.shapes(mask, mask=mask.astype(bool), transform=transform, connectivity=connectivity)


def memory_rows(prob: np.ndarray):
    """read(top, bottom, left=0, right=width) -> float probabilities of that window."""
    return lambda top, bottom, left=0, right=None: prob[top:bottom, left:right]


def shapes_from_band(mask_ds, band: int, connectivity: int):
    """Streaming polygonize (GDAL reads the band scanline by scanline)."""
    b = rasterio.band(mask_ds, band)
    return features.shapes(b, mask=b, transform=mask_ds.transform, connectivity=connectivity)


def band_rows(prob_ds, band: int):
    """read(top, bottom, left=0, right=width) from the disk canvas (uint8 = probability x 255) -> float."""
    def read(top, bottom, left=0, right=None):
        right = prob_ds.width if right is None else right
        data = prob_ds.read(band, window=Window(left, top, right - left, bottom - top))
        return data.astype(np.float32) / 255.0 if data.dtype == np.uint8 else data
    return read
