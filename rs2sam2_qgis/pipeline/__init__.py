"""rs2sam2's QGIS-free geospatial engine: raster + text queries -> polygons (tiling, stitching, polygonize, export).

Nothing here imports qgis. Entry points: ``segment_raster`` and ``write_vector``; defaults in ``SegmentOptions``.
The names below are loaded on first use (PEP 562), so the plugin's QGIS process can import the light modules
(``options``, ``request``, ``errors``) without rasterio/pyogrio, which must not load there (see worker.py).
"""
from __future__ import annotations

import importlib

#: public name -> the submodule that defines it
_EXPORTS = {
    "Cancelled": "errors", "InputError": "errors", "SegmentOptions": "options", "write_vector": "export",
    "DetectedPolygon": "polygonize", "RunStats": "run", "SegmentResult": "run", "segment_raster": "run",
    "raster_info": "source",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
