"""True ground areas (m2) of polygons in any CRS, on the CRS's ellipsoid.

Geographic CRSs are measured directly; projected CRSs (UTM, and area-distorting ones such as EPSG:3857, whose planar
"m2" are 2-3x too large away from the equator) are measured in their own lon/lat, so every CRS gives the same ground
area for the same place. Many polygons at once: the planar area times the local ground-area-per-map-unit factor at
the polygon's centroid (the Jacobian of the CRS -> lon/lat mapping times M*N*cos(lat), vectorised); polygons larger
than ``EXACT_ABOVE_M`` across are measured exactly (geodesic polygon area). CRSs without a datum: planar area times
the unit's size in metres; no CRS: None.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer

EXACT_ABOVE_M = 2000.0  # polygons wider/taller than this (ground metres) get the exact geodesic area


class AreaCalculator:
    def __init__(self, crs_wkt: Optional[str]):
        self.crs = CRS.from_user_input(crs_wkt) if crs_wkt else None
        self.geod: Optional[Geod] = None
        self.transformer: Optional[Transformer] = None
        self.planar_factor: Optional[float] = None
        if self.crs is None:
            return
        geodetic = self.crs if self.crs.is_geographic else self.crs.geodetic_crs
        if geodetic is not None:
            try:
                self.geod = geodetic.get_geod()
            except Exception:  # noqa: BLE001 - some CRSs have no ellipsoid
                self.geod = None
        if self.geod is not None:
            lonlat = CRS.from_user_input(geodetic.to_2d() if hasattr(geodetic, "to_2d") else geodetic)
            # always_xy: x = lon, y = lat whatever the CRS's axis order
            self.transformer = Transformer.from_crs(self.crs, lonlat, always_xy=True)
        else:
            unit = self.crs.axis_info[0].unit_conversion_factor if self.crs.axis_info else 1.0
            self.planar_factor = float(unit) ** 2

    @property
    def available(self) -> bool:
        return self.crs is not None

    def _lonlat(self, x, y):
        x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
        if x.size == 1:  # pyproj 3.7 takes a 1-element array for a scalar (numpy DeprecationWarning): pad it
            lon, lat = self.transformer.transform(np.repeat(x, 2), np.repeat(y, 2))
            return lon[:1], lat[:1]
        return self.transformer.transform(x, y)

    def exact_area_m2(self, geom) -> Optional[float]:
        """Geodesic area of a (Multi)Polygon: shells minus holes, each ring measured on the ellipsoid."""
        if self.crs is None or geom.is_empty:
            return None
        if self.geod is None:
            return float(geom.area * self.planar_factor)
        parts = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        total = 0.0
        for poly in parts:
            rings = shapely.get_rings(poly)
            n = shapely.get_num_coordinates(rings)
            xy = shapely.get_coordinates(rings)
            lon, lat = self._lonlat(xy[:, 0], xy[:, 1])
            ends = np.cumsum(n)
            for k, (e, m) in enumerate(zip(ends, n)):
                area, _ = self.geod.polygon_area_perimeter(lon[e - m:e], lat[e - m:e])
                total += abs(area) if k == 0 else -abs(area)
        return float(total)

    area_m2 = exact_area_m2

    def local_factor(self, x, y):
        """Ground m2 per map unit2 at points (x, y): |det d(lon,lat)/d(x,y)| (radians) * M * N * cos(lat)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        h = np.maximum(np.abs(x), np.abs(y)) * 1e-7 + 1e-7 if self.crs.is_geographic else \
            np.full_like(x, 0.01 / (self.crs.axis_info[0].unit_conversion_factor or 1.0))
        lon0, lat0 = self._lonlat(x, y)
        lon1, lat1 = self._lonlat(x + h, y)
        lon2, lat2 = self._lonlat(x, y + h)
        d = math.pi / 180.0
        det = np.abs((lon1 - lon0) * (lat2 - lat0) - (lon2 - lon0) * (lat1 - lat0)) * d * d / (h * h)
        a, f = self.geod.a, self.geod.f
        e2 = f * (2 - f)
        phi = np.radians(lat0)
        w = 1 - e2 * np.sin(phi) ** 2
        m, n = a * (1 - e2) / w ** 1.5, a / np.sqrt(w)
        return det * m * n * np.cos(phi)

    def areas_m2(self, geoms) -> np.ndarray:
        """Ground areas (m2) of an array of geometries; NaN without a CRS."""
        geoms = np.asarray(geoms, dtype=object)
        if self.crs is None or len(geoms) == 0:
            return np.full(len(geoms), np.nan)
        planar = shapely.area(geoms)
        if self.geod is None:
            return planar * self.planar_factor
        c = shapely.centroid(geoms)
        cx, cy = shapely.get_x(c), shapely.get_y(c)
        k = self.local_factor(cx, cy)
        out = planar * k
        b = shapely.bounds(geoms)
        span = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * np.sqrt(k)  # ~ ground metres across
        for i in np.nonzero(~(span < EXACT_ABOVE_M))[0]:
            out[i] = self.exact_area_m2(geoms[i])
        return out
