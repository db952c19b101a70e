"""segment_raster: raster + text queries + predictor -> polygons per query (the engine's one entry point)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import rasterio
from affine import Affine

from .batching import Prefetcher, batched
from .errors import Cancelled, InputError
from .feature_cache import FeatureCache, cache_usable, predict_cached, source_fingerprint, tile_key
from .options import SegmentOptions
from .polygonize import DetectedPolygon, Polygonizer, disk_reader, memory_reader, polygonize_canvas
from .source import RasterSource, open_source
from .stitching import GeoTiffSink, MemorySink, Stitcher
from .text_window import check_text_window
from .tiling import TileGrid, aoi_valid, area_of_interest, mask_in_window, no_valid_pixel

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass
class RunStats:
    tiles_total: int = 0
    tiles_run: int = 0
    megapixels: float = 0.0          # area of interest, grid pixels
    seconds_total: float = 0.0
    seconds_read: float = 0.0        # reader thread (overlaps inference)
    seconds_inference: float = 0.0
    seconds_stitch: float = 0.0
    seconds_polygonize: float = 0.0
    device: str = ""
    device_reason: str = ""
    precision: str = ""
    model: str = ""
    canvas: str = ""                 # "memory" or "disk"
    tile: int = 0
    overlap_px: int = 0
    tiles_encoded: int = 0           # tiles whose features were computed (feature-reusable models; else 0)
    feature_cache_hits: int = 0      # tiles whose features came from the feature cache (memory or disk)
    warnings: list = field(default_factory=list)  # one line each: the run went on, but the user should know

    @property
    def seconds_per_megapixel(self) -> float:
        return self.seconds_total / self.megapixels if self.megapixels else float("nan")


@dataclass
class SegmentResult:
    queries: list
    polygons: dict                   # query -> list[DetectedPolygon]
    crs_wkt: Optional[str]           # None: pixel coordinates
    raster_path: str
    model: str
    created_at: str
    stats: RunStats = field(default_factory=RunStats)
    single_layer: bool = False       # GeoPackage: one layer with a query column instead of one per query

    def all_polygons(self) -> list:
        return [p for q in self.queries for p in self.polygons[q]]

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.polygons.values())

    @property
    def total_area_m2(self) -> float:
        return float(sum(p.area_m2 or 0.0 for p in self.all_polygons()))


def clean_queries(queries) -> list[str]:
    if isinstance(queries, str):
        queries = [queries]
    out = []
    for q in queries or []:
        q = " ".join(str(q).split())
        bad = next((c for c in q if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            raise InputError(f"the query {q!r} holds a control character (U+{ord(bad):04X}); type plain text, e.g. "
                             f'"the white storage tanks"')
        if not q:
            raise InputError('empty query; type what to find, e.g. "the white storage tanks"')
        if q not in out:
            out.append(q)
    if not out:
        raise InputError('no query given; type what to find, e.g. "the white storage tanks"')
    return out


def segment_raster(raster_path, queries: Sequence[str] | str, predictor, options: Optional[SegmentOptions] = None,
                   progress: Optional[ProgressFn] = None, is_cancelled: Optional[CancelFn] = None,
                   feature_cache: Optional[FeatureCache] = None) -> SegmentResult:
    """Find the queried objects in a raster; returns polygons per query in the raster's CRS.

    ``progress(fraction, message)`` is called as tiles finish; ``is_cancelled()`` is polled between batches and
    during polygonizing, and raises ``Cancelled`` (nothing is written by this function). Bad input raises
    ``InputError``.

    When the predictor's model has text-independent image features (``predictor.features_reusable``), each tile is
    encoded once and decoded for every query, through a per-tile feature cache: ``feature_cache`` (a FeatureCache
    kept by the caller across runs), else one built from the options (memory, plus ``options.feature_cache`` on
    disk).
    """
    t_start = time.perf_counter()
    options = (options or SegmentOptions()).validate()
    queries = clean_queries(queries)
    check_text_window(getattr(predictor, "model", None), queries)
    src = open_source(raster_path, options)
    mask_geom = options.mask_geometry
    if mask_geom is not None and src.pixel_coords:
        raise InputError("a mask polygon needs a raster with a CRS; drop the mask or georeference the raster")
    aoi = area_of_interest(src, options.extent, mask_geom)
    tile = int(options.tile or predictor.input_size)
    grid = TileGrid(src, tile, options.overlap, aoi)
    transform = src.grid_transform
    aoi_transform = transform * Affine.translation(aoi.col, aoi.row)
    created_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    stats = RunStats(tiles_total=len(grid), megapixels=aoi.height * aoi.width / 1e6,
                     device=str(predictor.device), device_reason=getattr(predictor, "device_reason", ""),
                     precision=getattr(predictor, "precision", ""), model=predictor.model_name, tile=tile,
                     overlap_px=grid.overlap_px)
    T = len(queries)
    canvas_mb = aoi.height * aoi.width * (4 * T) / 2**20
    if canvas_mb > options.in_memory_max_mb:
        sink = GeoTiffSink(T, aoi, options.threshold, aoi_transform, src.crs_wkt, options.temp_dir)
    else:
        sink = MemorySink(T, aoi, options.threshold)
    stats.canvas = sink.kind
    cache = fingerprint = None
    if cache_usable(predictor):
        cache = feature_cache if feature_cache is not None else FeatureCache(
            options.feature_cache_memory_mb, options.feature_cache, options.feature_cache_max_mb)
        fingerprint = source_fingerprint(src, options, tile, predictor.model_digest())
        cache_before = (cache.stats.memory_hits + cache.stats.disk_hits, cache.stats.encoded)
    cancelled = is_cancelled or (lambda: False)

    def report(frac, msg):
        if progress is not None:
            progress(float(min(max(frac, 0.0), 1.0)), msg)

    def produce():
        with rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 2**20), src.open() as ds:
            for batch in batched(grid, options.batch_size):
                items = []
                for t in batch:
                    rgb, valid = src.read(ds, t.row, t.col, t.size, t.size)
                    if mask_geom is not None:
                        valid &= mask_in_window(mask_geom, transform, t.row, t.col, t.size, t.size)
                    items.append((t, rgb, valid, aoi_valid(valid, t, aoi)))
                yield items

    try:
        with rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 2**20):
            stitcher = Stitcher(T, aoi, tile, grid.overlap_px, sink, grid.rows, grid.cols)
            report(0.0, f"{len(grid)} tiles of {tile} px on {stats.device}")
            done = 0
            with Prefetcher(produce, depth=options.prefetch) as reader:
                for items in reader:
                    if cancelled():
                        raise Cancelled()
                    run = [it for it in items if it[3]]
                    if run:
                        t0 = time.perf_counter()
                        if cache is not None:
                            keys = [tile_key(fingerprint, (it[0].row, it[0].col, it[0].size, it[0].size), it[1])
                                    for it in run]
                            prob = predict_cached(predictor, cache, keys, [it[1] for it in run], queries)
                        else:
                            prob = predictor.predict(np.stack([it[1] for it in run]), queries)
                        stats.seconds_inference += time.perf_counter() - t0
                        stats.tiles_run += len(run)
                    t0 = time.perf_counter()
                    k = 0
                    for t, _rgb, valid, has in items:
                        if has:
                            stitcher.add(t, prob[k], valid)
                            k += 1
                    stats.seconds_stitch += time.perf_counter() - t0
                    done += len(items)
                    report(0.9 * done / max(1, len(grid)), f"tile {done}/{len(grid)}")
                stats.seconds_read = reader.seconds_busy
            if stats.tiles_run == 0:
                raise no_valid_pixel(src, options)
            if cache is not None:
                stats.feature_cache_hits = cache.stats.memory_hits + cache.stats.disk_hits - cache_before[0]
                stats.tiles_encoded = cache.stats.encoded - cache_before[1]
            if cancelled():
                raise Cancelled()
            t0 = time.perf_counter()
            stitcher.finish()
            stats.seconds_stitch += time.perf_counter() - t0

            t0 = time.perf_counter()
            simplify = 0.5 * src.pixel_size if options.simplify is None else float(options.simplify)
            if src.pixel_coords and options.simplify is None:
                simplify = 0.5
            poly = Polygonizer(aoi_transform, src.crs_wkt, options.threshold, simplify, options.min_area_m2,
                               options.min_pixels, options.fill_holes_m2, predictor.model_name, created_at,
                               options.connectivity)
            polygons = {}
            with contextlib.ExitStack() as stack:
                if sink.kind != "memory":
                    mds = stack.enter_context(rasterio.open(sink.mask_path))
                    pds = stack.enter_context(rasterio.open(sink.prob_path))
                for i, q in enumerate(queries):
                    report(0.9 + 0.1 * i / T, f"polygonizing '{q}'")
                    read_mask, read_prob = (memory_reader(sink.prob[i], options.threshold) if sink.kind == "memory"
                                            else disk_reader(mds, pds, i + 1))
                    polygons[q], warning = polygonize_canvas(poly, q, read_mask, read_prob, aoi.height, aoi.width,
                                                             options.connectivity, cancelled,
                                                             options.polygonize_max_edges)
                    if warning:
                        stats.warnings.append(warning)
            stats.seconds_polygonize = time.perf_counter() - t0
    finally:
        sink.cleanup()
    stats.seconds_total = time.perf_counter() - t_start
    n = sum(len(v) for v in polygons.values())
    report(1.0, f"{n} polygon(s) in {stats.seconds_total:.1f} s on {stats.device}")
    return SegmentResult(queries=queries, polygons=polygons, crs_wkt=src.crs_wkt, raster_path=str(raster_path),
                         model=predictor.model_name, created_at=created_at, stats=stats,
                         single_layer=options.single_layer)
