"""SegmentOptions and the choices and limits around a run: the single place for the engine's defaults, the
accepted values of each choice and the range of each number (CLI, dock and Processing algorithm all read them).
Standard library only: the plugin reads it inside QGIS's own process."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import InputError

#: how a query is answered: over the whole analysis extent, or by each tile on its own
SCOPES = ("extent", "tile")
#: how the Predictor decides masks: probabilities at the tile's size, or the RS2-SAM2 authors' contract
#: (model_core.authors_mode.MODES; tests/test_front_door.py keeps the two equal)
MODES = ("analyst", "authors")
#: where the model runs: "auto" is CUDA when torch sees a GPU (a CLI user may also name one, e.g. cuda:1)
DEVICES = ("auto", "cuda", "cpu")
#: inclusive (lowest, highest) value of each number a person sets; validate() and every UI's spin box use these
LIMITS = {
    "tile": (16, 16384),
    "overlap": (0.0, 0.89),
    "threshold": (0.001, 0.999),
    "presence_threshold": (0.0, 0.99),
}


@dataclass
class SegmentOptions:
    #: tile side in (possibly resampled) raster pixels; None = the model's input_size
    tile: int | None = None
    #: fraction of the tile shared with each neighbour (0 <= overlap < 0.9)
    overlap: float = 0.25
    #: probability above which a pixel is foreground
    threshold: float = 0.5
    #: draw each answer's outline on the image's colour edges (edges.py: a guided filter within half a mask cell,
    #: on a second canvas; the answer is chosen on the model's own); the "authors" mode is never refined
    refine_edges: bool = True
    #: polygons with a smaller ground area (m2) are dropped (pixel units when the raster has no CRS)
    min_area_m2: float = 0.0
    #: polygons with fewer pixels than this are dropped (speckle); 0 keeps all
    min_pixels: int = 4
    #: Douglas-Peucker tolerance in map units; None = half a pixel; 0 = no simplification
    simplify: float | None = None
    #: holes with a smaller ground area (m2) are filled; 0 keeps all holes
    fill_holes_m2: float = 0.0
    #: 1-based band indices mapped to R, G, B (one index = grey replicated); None = RGB / 1,2,3 / grey
    bands: Sequence[int] | None = None
    #: (xmin, ymin, xmax, ymax) in the raster's CRS; None = the whole raster
    extent: Sequence[float] | None = None
    #: a shapely (Multi)Polygon in the raster's CRS: only pixels inside it can be detected
    mask_geometry: Any = None
    #: tiles per predictor call
    batch_size: int = 4
    #: batches read ahead of inference by the reader thread
    prefetch: int = 1
    #: resample to this ground sample distance (map units per pixel); None = native resolution
    gsd: float | None = None
    #: percentiles for the stretch of non-uint8 rasters, computed once per raster with nodata masked
    stretch_percentiles: tuple = (2.0, 98.0)
    #: one stretch for all three bands (keeps hues) or one per band
    stretch_per_band: bool = False
    #: accept a raster without a CRS and write pixel coordinates (column, row)
    allow_pixel_coords: bool = False
    #: probability canvases larger than this (MB) go to a temporary tiled GeoTIFF instead of memory
    in_memory_max_mb: float = 64.0
    #: folder for temporary rasters (None = the system's temp folder)
    temp_dir: str | None = None
    #: GDAL block cache (MB) while the engine runs (rasterio takes GDAL_CACHEMAX in bytes: converted in run.py)
    gdal_cache_mb: int = 64
    #: 4- or 8-connected regions when polygonizing
    connectivity: int = 4
    #: masks with more pixel edges than this are polygonized on coarser cells, with a warning (bounded memory;
    #: about 100 MB of polygons per 2 million edges)
    polygonize_max_edges: int = 2_000_000
    #: GeoPackage: one layer with a query column for all queries instead of one layer per query
    single_layer: bool = False
    #: folder for the per-tile feature cache of feature-reusable models (RSRefSeg); None = memory only
    feature_cache: str | None = None
    #: the disk feature cache's bound (MB); files used longest ago are deleted beyond it
    feature_cache_max_mb: float = 4096.0
    #: in-memory feature cache bound (MB) during a run (LRU)
    feature_cache_memory_mb: float = 512.0
    #: "extent": each query is answered for the whole analysis extent (tiles without the referent give nothing;
    #: "the largest", "in the top left", "the two ..." are judged over the extent); "tile": every tile answers on
    #: its own (the engine before whole-raster referring)
    scope: str = "extent"
    #: extent scope: a tile whose presence (the model's belief that it holds the referent) is below this gives
    #: nothing; None = the model's own calibrated threshold (0.5 for a model without one)
    presence_threshold: float | None = None
    #: extent scope: halvings of the overview in which singular referents are searched: windows of the tile's side
    #: times 2 ** search_levels, each shrunk to the model's input (search.search; 0 = run every tile)
    search_levels: int = 1
    #: extent scope: the search's candidates checked together by a closer look, best first (search.search)
    search_beam: int = 4

    def replace(self, **changes) -> SegmentOptions:
        return replace(self, **changes)

    def validate(self) -> SegmentOptions:
        lo, hi = LIMITS["tile"]
        if self.tile is not None and not (lo <= int(self.tile) <= hi):
            raise InputError(f"tile size {self.tile} is out of range; use {lo}..{hi} pixels (default: the model's)")
        lo, hi = LIMITS["overlap"]
        if not (lo <= float(self.overlap) <= hi):
            raise InputError(f"overlap {self.overlap} is out of range; use a fraction in [{lo}, {hi}], e.g. 0.25")
        lo, hi = LIMITS["threshold"]
        if not (lo <= float(self.threshold) <= hi):
            raise InputError(f"threshold {self.threshold} is out of range; use a probability in [{lo}, {hi}], "
                             f"e.g. 0.5")
        if float(self.min_area_m2) < 0 or float(self.fill_holes_m2) < 0 or int(self.min_pixels) < 0:
            raise InputError("min area, min pixels and hole size must be >= 0")
        if self.simplify is not None and float(self.simplify) < 0:
            raise InputError(f"simplify tolerance {self.simplify} is negative; use >= 0 (map units)")
        if self.bands is not None:
            b = list(self.bands)
            if len(b) not in (1, 3) or any(int(i) < 1 for i in b):
                raise InputError(f"bands {b} invalid; give three 1-based band numbers R,G,B (e.g. 3,2,1) or one")
        if self.extent is not None:
            e = list(self.extent)
            if len(e) != 4 or not (e[0] < e[2] and e[1] < e[3]):
                raise InputError(f"extent {e} invalid; give xmin,ymin,xmax,ymax with xmin < xmax and ymin < ymax")
        if int(self.batch_size) < 1:
            raise InputError("batch size must be >= 1")
        if self.gsd is not None and float(self.gsd) <= 0:
            raise InputError(f"gsd {self.gsd} must be > 0 (map units per pixel)")
        lo, hi = self.stretch_percentiles
        if not (0 <= lo < hi <= 100):
            raise InputError(f"stretch percentiles {self.stretch_percentiles} invalid; use e.g. 2,98")
        if int(self.polygonize_max_edges) < 1000:
            raise InputError(f"polygonize max edges {self.polygonize_max_edges} is too small; use >= 1000 "
                             f"(default 2000000)")
        if int(self.connectivity) not in (4, 8):
            raise InputError("connectivity must be 4 or 8")
        if float(self.feature_cache_max_mb) < 0 or float(self.feature_cache_memory_mb) < 0:
            raise InputError("feature cache sizes must be >= 0 MB")
        if self.scope not in SCOPES:
            raise InputError(f"scope {self.scope!r} unknown; use {' or '.join(SCOPES)}")
        lo, hi = LIMITS["presence_threshold"]
        if self.presence_threshold is not None and not (lo <= float(self.presence_threshold) <= hi):
            raise InputError(f"presence threshold {self.presence_threshold} is out of range; use [{lo}, {hi}]")
        if int(self.search_beam) < 1:
            raise InputError(f"search beam {self.search_beam} must be >= 1 (candidates the search checks together)")
        if not (0 <= int(self.search_levels) <= 8):
            raise InputError(f"search levels {self.search_levels} out of range; use 0..8 (0 = run every tile)")
        return self
