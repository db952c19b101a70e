"""True ground areas (m2) of polygons in any CRS: geodesic on the CRS's ellipsoid.

Geographic CRSs are measured directly; projected CRSs (UTM, and area-distorting ones such as EPSG:3857, whose planar
"m2" are 2-3x too large away from the equator) are transformed to their own lon/lat first, then measured
geodesically, so every CRS gives the same ground area for the same place. CRSs without a datum fall back to planar
area times the unit's size in metres; no CRS gives None.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry.polygon import orient


class AreaCalculator:
    def __init__(self, crs_wkt: Optional[str]):
        self.crs = CRS.from_wkt(crs_wkt) if crs_wkt else None
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
        if self.geod is not None and not self.crs.is_geographic:
            lonlat = CRS.from_user_input(geodetic.to_2d() if hasattr(geodetic, "to_2d") else geodetic)
            self.transformer = Transformer.from_crs(self.crs, lonlat, always_xy=True)
        if self.geod is None:
            unit = self.crs.axis_info[0].unit_conversion_factor if self.crs.axis_info else 1.0
            self.planar_factor = float(unit) ** 2

    @property
    def available(self) -> bool:
        return self.crs is not None

    def to_lonlat(self, geom):
        if self.transformer is None:
            return geom
        tr = self.transformer

        def f(xy):
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geom, f)

    def area_m2(self, geom) -> Optional[float]:
        if self.crs is None or geom.is_empty:
            return None
        if self.geod is None:
            return float(geom.area * self.planar_factor)
        g = self.to_lonlat(geom)
        if g.geom_type == "Polygon":
            g = orient(g, 1.0)
        elif g.geom_type == "MultiPolygon":
            g = shapely.MultiPolygon([orient(p, 1.0) for p in g.geoms])
        area, _ = self.geod.geometry_area_perimeter(g)
        return float(abs(area))

    def ring_area_m2(self, ring_coords) -> Optional[float]:
        return self.area_m2(shapely.Polygon(ring_coords))
