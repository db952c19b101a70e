"""Blend overlapping tile probabilities into one georeferenced probability raster per query.

Tiles arrive in row-major order; a rolling band buffer (one tile high, the area of interest wide) accumulates
``sum(w * p)`` and ``sum(w)`` with a smooth weight window (flat in the middle, cosine ramps over the overlap), and
rows no later tile can touch are normalised and flushed to a sink: numpy in memory when small, a temporary tiled
GeoTIFF when large. Memory is O(tile x width), independent of the raster's height.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Optional

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from .tiling import Tile, Window2D


def weight_window(tile: int, overlap_px: int, floor: float = 1e-3) -> np.ndarray:
    """Separable 2-D weights: 1 in the middle, raised-cosine ramps over ``overlap_px`` at each edge, never 0."""
    i = np.arange(tile, dtype=np.float64) + 0.5
    d = np.minimum(i, tile - i)  # distance to the nearest edge, in pixels
    ramp = max(1, overlap_px)
    w = np.where(d >= ramp, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(d / ramp, 0, 1)))
    w = np.maximum(w, floor).astype(np.float32)
    return np.outer(w, w)


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
    """Temporary tiled GeoTIFFs: probabilities (float32, one band per query) and the thresholded mask (uint8)."""
    kind = "disk"

    def __init__(self, n_queries: int, aoi: Window2D, threshold: float, transform: Affine, crs_wkt: Optional[str],
                 temp_dir: Optional[str] = None):
        self.dir = tempfile.mkdtemp(prefix="rs2sam2-", dir=temp_dir)
        self.threshold = threshold
        self.prob_path = os.path.join(self.dir, "probability.tif")
        self.mask_path = os.path.join(self.dir, "mask.tif")
        common = dict(driver="GTiff", width=aoi.width, height=aoi.height, count=n_queries, transform=transform,
                      crs=crs_wkt, tiled=True, blockxsize=512, blockysize=512, sparse_ok=True, BIGTIFF="IF_SAFER")
        self.prob_ds = rasterio.open(self.prob_path, "w", dtype="float32", compress="zstd", zstd_level=1,
                                     **common)
        self.mask_ds = rasterio.open(self.mask_path, "w", dtype="uint8", compress="zstd", zstd_level=1, **common)

    def write(self, row: int, block: np.ndarray):
        win = Window(0, row, block.shape[2], block.shape[1])
        self.prob_ds.write(block, window=win)
        self.mask_ds.write((block >= self.threshold).astype(np.uint8), window=win)

    def close(self):
        for ds in (self.prob_ds, self.mask_ds):
            if ds is not None and not ds.closed:
                ds.close()

    def cleanup(self):
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Stitcher:
    def __init__(self, n_queries: int, aoi: Window2D, tile: int, overlap_px: int, sink):
        self.T = n_queries
        self.aoi = aoi
        self.tile = tile
        self.sink = sink
        self.w = weight_window(tile, overlap_px)
        self.acc = np.zeros((n_queries, tile, aoi.width), np.float32)
        self.wsum = np.zeros((tile, aoi.width), np.float32)
        self.valid = np.zeros((tile, aoi.width), bool)
        self.top = aoi.row  # grid row of buffer row 0
        self.flushed_to = aoi.row

    def _advance(self, new_top: int):
        """Flush rows [top, new_top) (no later tile touches them) and move the buffer down."""
        new_top = min(max(new_top, self.top), self.aoi.row_end)
        n = new_top - self.top
        if n <= 0:
            return
        k = min(n, self.tile)
        r0 = max(self.top, self.aoi.row)
        if k > r0 - self.top:
            a, b = r0 - self.top, k
            ws = self.wsum[a:b]
            out = np.divide(self.acc[:, a:b], ws, out=np.zeros_like(self.acc[:, a:b]), where=ws > 0)
            out[:, ~self.valid[a:b]] = 0.0
            np.clip(out, 0.0, 1.0, out=out)
            self.sink.write(r0 - self.aoi.row, out)
        # rows past the buffer (no tile touched them) stay 0 in the sink
        if k < self.tile:
            self.acc[:, :self.tile - k] = self.acc[:, k:]
            self.wsum[:self.tile - k] = self.wsum[k:]
            self.valid[:self.tile - k] = self.valid[k:]
        self.acc[:, self.tile - k:] = 0
        self.wsum[self.tile - k:] = 0
        self.valid[self.tile - k:] = False
        self.top = new_top

    def add(self, tile: Tile, prob: np.ndarray, valid: np.ndarray):
        """prob [T, size, size] for the grid window at (tile.row, tile.col); valid [size, size]."""
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
        self.acc[:, br, bc] += prob[:, tr, tc] * w
        self.wsum[br, bc] += w
        self.valid[br, bc] |= valid[tr, tc]

    def finish(self):
        while self.top < self.aoi.row_end:
            self._advance(self.top + self.tile)
        self.sink.close()
