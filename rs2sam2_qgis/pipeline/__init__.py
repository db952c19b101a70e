"""rs2sam2's QGIS-free geospatial engine: raster + text queries -> polygons (tiling, stitching, polygonize, export).

Nothing here imports qgis. Entry points: ``segment_raster`` and ``write_vector``; defaults in ``SegmentOptions``.
"""
from .errors import Cancelled, InputError
from .export import write_vector
from .options import SegmentOptions
from .polygonize import DetectedPolygon
from .run import RunStats, SegmentResult, segment_raster
from .source import raster_info

__all__ = ["Cancelled", "InputError", "SegmentOptions", "segment_raster", "write_vector", "SegmentResult",
           "RunStats", "DetectedPolygon", "raster_info"]
