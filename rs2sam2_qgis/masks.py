"""The area a run is limited to, from polygons a person chose (the dock's selected features, the Processing
algorithm's mask layer): one union in the raster's CRS, as the WKT a SegmentRequest carries."""
from __future__ import annotations

from collections.abc import Iterable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsGeometry,
)

from .compat import GEOMETRY_POLYGON


def polygon_union_wkt(geometries: Iterable[QgsGeometry], source_crs: QgsCoordinateReferenceSystem,
                      target_crs: QgsCoordinateReferenceSystem,
                      transform_context: QgsCoordinateTransformContext) -> str | None:
    """The union of the polygon geometries (others and empty ones skipped), transformed from `source_crs` to
    `target_crs`, as WKT; None when there is no polygon."""
    transform = None
    if source_crs != target_crs:
        transform = QgsCoordinateTransform(source_crs, target_crs, transform_context)
    polygons = []
    for geometry in geometries:
        geometry = QgsGeometry(geometry)
        if geometry.isNull() or geometry.isEmpty() or geometry.type() != GEOMETRY_POLYGON:
            continue
        if transform is not None:
            geometry.transform(transform)
        polygons.append(geometry)
    return QgsGeometry.unaryUnion(polygons).asWkt() if polygons else None
