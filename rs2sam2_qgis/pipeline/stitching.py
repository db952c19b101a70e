"""Blend overlapping tile probabilities into one georeferenced probability raster per query.

Tiles arrive in row-major order; a rolling band buffer (one tile high, the area of interest wide) accumulates
``sum(w * p)`` with a smooth separable weight window (flat in the middle, cosine ramps over the overlap), and
rows no later tile can touch are normalised and flushed to a sink: numpy in memory when small, a temporary tiled
GeoTIFF when large. ``sum(w)`` is separable (row sums x column sums over the grid's tile starts): a tile is skipped
only when all its pixels in the area of interest are invalid, and those are written as 0 anyway, so no weight
buffer is needed. Memory is O(queries x tile x width), independent of the raster's height.

In extent scope a tile may abstain for a query (its presence gate says the referent is not there, or the search
did not need it): it then adds neither probability nor weight, so an object at its edge keeps the probability the
tile that holds it gave, instead of being averaged with zeros and lost. That needs the weight sum per query and
pixel: a second band of the same size (``abstain=True``).
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from .tiling import Tile, Window2D


def weight_profile(tile: int, overlap_px: int, floor: float = 1e-3) -> np.ndarray:
    """1-D weights: 1 in the middle, raised-cosine ramps over ``overlap_px`` at each edge, never 0."""
    i = np.arange(tile, dtype=np.float64) + 0.5
    d = np.minimum(i, tile - i)  # distance to the nearest edge, in pixels
    ramp = max(1, overlap_px)
    w = np.where(d >= ramp, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(d / ramp, 0, 1)))
    return np.maximum(w, floor)


def weight_sums(starts, tile: int, profile: np.ndarray, begin: int, end: int) -> np.ndarray:
    """Sum of the 1-D weights of every tile (at ``starts``) over positions [begin, end)."""
    out = np.zeros(end - begin, np.float64)
    for s in starts:
        a, b = max(s, begin), min(s + tile, end)
        if b > a:
            out[a - begin:b - begin] += profile[a - s:b - s]
    return out


class MemorySink:
    kind = "memory"

    def __init__(self, n_queries: int, aoi: Window2D, threshold: float):
        self.prob = np.zeros((n_queries, aoi.height, aoi.width), np.float32)
        self.threshold = threshold

    def write(self, row: int, block: np.ndarray):
        self.prob[:, row:row + block.shape[1]] = block

    def close(self):
        pass

    def cleanup(self):
        self.prob = None


class GeoTiffSink:
    """Temporary tiled GeoTIFFs: probabilities (uint8 = round(p x 255), one band per query: 4x less I/O than
    float32; only scores read them) and the thresholded mask (uint8, thresholded before quantisation)."""
    kind = "disk"

    def __init__(self, n_queries: int, aoi: Window2D, threshold: float, transform: Affine, crs_wkt: str | None,
                 temp_dir: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="rs2sam2-", dir=temp_dir)
        self.threshold = threshold
        self.prob_path = os.path.join(self.dir, "probability.tif")
        self.mask_path = os.path.join(self.dir, "mask.tif")
        common = dict(driver="GTiff", width=aoi.width, height=aoi.height, count=n_queries, transform=transform,
                      crs=crs_wkt, tiled=True, blockxsize=512, blockysize=512, sparse_ok=True, BIGTIFF="IF_SAFER")
        self.prob_ds = rasterio.open(self.prob_path, "w", dtype="uint8", compress="zstd", zstd_level=1, **common)
        self.mask_ds = rasterio.open(self.mask_path, "w", dtype="uint8", compress="zstd", zstd_level=1, **common)

    def write(self, row: int, block: np.ndarray):
        win = Window(0, row, block.shape[2], block.shape[1])
        self.prob_ds.write((block * 255.0 + 0.5).astype(np.uint8), window=win)
        self.mask_ds.write((block >= self.threshold).astype(np.uint8), window=win)

    def close(self):
        for ds in (self.prob_ds, self.mask_ds):
            if ds is not None and not ds.closed:
                ds.close()

    def cleanup(self):
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


FLUSH_ROWS = 128  # rows normalised and written at a time (bounds the temporaries to FLUSH_ROWS x width)


class Stitcher:
    """Rolling band accumulator. Invalid pixels (nodata, outside the mask polygon) are NaN in the accumulator:
    validity is a property of the pixel, the same in every tile, so no separate validity buffer is needed."""

    def __init__(self, n_queries: int, aoi: Window2D, tile: int, overlap_px: int, sink, row_starts, col_starts,
                 abstain: bool = False):
        self.T = n_queries
        self.aoi = aoi
        self.tile = tile
        self.sink = sink
        prof = weight_profile(tile, overlap_px)
        self.w = np.outer(prof, prof).astype(np.float32)
        self.row_wsum = weight_sums(row_starts, tile, prof, aoi.row, aoi.row_end)
        self.inv_col_wsum = (1.0 / weight_sums(col_starts, tile, prof, aoi.col, aoi.col_end)).astype(np.float32)
        self.acc = np.zeros((n_queries, tile, aoi.width), np.float32)
        #: per query and pixel, the weights of the tiles that gave an opinion (abstain=True), else None
        self.wacc = np.zeros_like(self.acc) if abstain else None
        self.top = aoi.row  # grid row of buffer row 0

    def _advance(self, new_top: int):
        """Flush rows [top, new_top) (no later tile touches them) and move the buffer down."""
        new_top = min(max(new_top, self.top), self.aoi.row_end)
        n = new_top - self.top
        if n <= 0:
            return
        k = min(n, self.tile)
        # self.top >= aoi.row always, so buffer rows [0, k) are all inside the area of interest
        for a in range(0, k, FLUSH_ROWS):
            b = min(k, a + FLUSH_ROWS)
            if self.wacc is None:
                rows = slice(self.top + a - self.aoi.row, self.top + b - self.aoi.row)
                inv = (1.0 / self.row_wsum[rows]).astype(np.float32)[:, None] * self.inv_col_wsum[None, :]
                out = self.acc[:, a:b] * inv
            else:
                wsum = self.wacc[:, a:b]
                out = np.divide(self.acc[:, a:b], wsum, out=np.zeros_like(wsum), where=wsum > 0)
            np.nan_to_num(out, copy=False, nan=0.0)
            np.clip(out, 0.0, 1.0, out=out)
            self.sink.write(self.top + a - self.aoi.row, out)
        # rows past the buffer (no tile touched them) stay 0 in the sink; shift the rest up in non-overlapping
        # chunks (a single overlapping slice assignment would make numpy copy it whole first)
        for buf in (self.acc, self.wacc):
            if buf is None:
                continue
            for a in range(0, self.tile - k, min(k, FLUSH_ROWS)):
                b = min(self.tile - k, a + min(k, FLUSH_ROWS))
                buf[:, a:b] = buf[:, a + k:b + k]
            buf[:, self.tile - k:] = 0
        self.top = new_top

    def add(self, tile: Tile, prob: np.ndarray, valid: np.ndarray, opinion: np.ndarray | None = None):
        """prob [T, size, size] for the grid window at (tile.row, tile.col); valid [size, size]; ``opinion`` [T]
        (abstain=True): the queries the tile answers for (the others add nothing; None: all)."""
        if tile.row > self.top:
            self._advance(tile.row)
        a = self.aoi
        r0, r1 = max(tile.row, a.row), min(tile.row + tile.size, a.row_end)
        c0, c1 = max(tile.col, a.col), min(tile.col + tile.size, a.col_end)
        if r1 <= r0 or c1 <= c0:
            return
        tr, tc = slice(r0 - tile.row, r1 - tile.row), slice(c0 - tile.col, c1 - tile.col)
        br, bc = slice(r0 - self.top, r1 - self.top), slice(c0 - a.col, c1 - a.col)
        w = self.w[tr, tc]
        contrib = prob[:, tr, tc] * w
        contrib[:, ~valid[tr, tc]] = np.nan
        if self.wacc is None:
            self.acc[:, br, bc] += contrib
            return
        if opinion is None or np.all(opinion):
            self.acc[:, br, bc] += contrib
            self.wacc[:, br, bc] += w
            return
        for q in np.flatnonzero(opinion):  # basic slices: a boolean index would copy the band's window twice
            self.acc[q, br, bc] += contrib[q]
            self.wacc[q, br, bc] += w

    def finish(self):
        while self.top < self.aoi.row_end:
            self._advance(self.top + self.tile)
        self.acc = self.wacc = None  # the tile-row band (tile x width per query): freed before polygonizing needs memory
        self.sink.close()
