"""Tile grid anchored to the raster's origin, and the area of interest (extent / polygon mask) in grid pixels.

Because the grid depends only on the raster (size, tile, overlap), never on the extent, a sub-extent sees exactly the
tiles the whole raster would at every pixel it covers, so it gives the same probabilities there and the same polygons.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio import features

from .errors import InputError


@dataclass(frozen=True)
class Window2D:
    row: int
    col: int
    height: int
    width: int

    @property
    def row_end(self):
        return self.row + self.height

    @property
    def col_end(self):
        return self.col + self.width


@dataclass(frozen=True)
class Tile:
    index: int
    row: int
    col: int
    size: int


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts 0, stride, 2*stride, ... ; the last tile is moved back to end at the raster's edge (no padding unless
    the raster is smaller than one tile). Depends only on (length, tile, stride)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    if not starts or starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def overlap_pixels(tile: int, overlap: float) -> int:
    return min(tile - 1, max(0, int(round(tile * overlap))))


def area_of_interest(src, extent=None, mask_geometry=None) -> Window2D:
    """The grid-pixel window covering the extent and/or the mask's bounds, clipped to the raster."""
    H, W = src.grid_height, src.grid_width
    r0, c0, r1, c1 = 0, 0, H, W
    inv = ~src.grid_transform
    boxes = []
    if extent is not None:
        boxes.append(("extent", tuple(float(v) for v in extent)))
    if mask_geometry is not None:
        if mask_geometry.is_empty:
            raise InputError("the mask polygon is empty; draw or select a polygon over the raster")
        boxes.append(("mask polygon", tuple(mask_geometry.bounds)))
    for what, (xmin, ymin, xmax, ymax) in boxes:
        cols, rows = [], []
        for x, y in ((xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)):
            c, r = inv * (x, y)
            cols.append(c)
            rows.append(r)
        br0, br1 = max(r0, int(math.floor(min(rows)))), min(r1, int(math.ceil(max(rows))))
        bc0, bc1 = max(c0, int(math.floor(min(cols)))), min(c1, int(math.ceil(max(cols))))
        if br1 <= br0 or bc1 <= bc0:
            b = _bounds(src)
            raise InputError(f"the {what} ({xmin:g},{ymin:g},{xmax:g},{ymax:g}) lies outside the raster "
                             f"(bounds {b[0]:g},{b[1]:g},{b[2]:g},{b[3]:g} in the raster's CRS); "
                             f"give coordinates in the raster's CRS that overlap it")
        r0, r1, c0, c1 = br0, br1, bc0, bc1
    return Window2D(r0, c0, r1 - r0, c1 - c0)


def _bounds(src):
    t = src.grid_transform
    xs, ys = [], []
    for c, r in ((0, 0), (src.grid_width, 0), (0, src.grid_height), (src.grid_width, src.grid_height)):
        x, y = t * (c, r)
        xs.append(x)
        ys.append(y)
    return min(xs), min(ys), max(xs), max(ys)


class TileGrid:
    """All tiles of the raster's grid that touch the area of interest, in row-major order."""

    def __init__(self, src, tile: int, overlap: float, aoi: Window2D):
        self.tile = int(tile)
        self.overlap_px = overlap_pixels(self.tile, overlap)
        self.stride = self.tile - self.overlap_px
        self.aoi = aoi
        rows = tile_starts(src.grid_height, self.tile, self.stride)
        cols = tile_starts(src.grid_width, self.tile, self.stride)
        self.rows = [r for r in rows if r < aoi.row_end and r + self.tile > aoi.row]
        self.cols = [c for c in cols if c < aoi.col_end and c + self.tile > aoi.col]

    def __len__(self):
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[Tile]:
        k = 0
        for r in self.rows:
            for c in self.cols:
                yield Tile(k, r, c, self.tile)
                k += 1


def mask_in_window(mask_geometry, transform: Affine, row: int, col: int, height: int, width: int) -> np.ndarray:
    """True where the grid pixel's centre lies inside the polygon (for a window of the grid)."""
    if mask_geometry is None:
        return np.ones((height, width), bool)
    wt = transform * Affine.translation(col, row)
    return features.geometry_mask([mask_geometry], out_shape=(height, width), transform=wt, invert=True)


def aoi_valid(valid: np.ndarray, tile: Tile, aoi: Window2D) -> bool:
    """Does the tile have any valid pixel inside the area of interest?"""
    r0, r1 = max(aoi.row, tile.row) - tile.row, min(aoi.row_end, tile.row + tile.size) - tile.row
    c0, c1 = max(aoi.col, tile.col) - tile.col, min(aoi.col_end, tile.col + tile.size) - tile.col
    return r1 > r0 and c1 > c0 and bool(valid[r0:r1, c0:c1].any())


def no_valid_pixel(src, options) -> InputError:
    """The one line for a run that found no valid pixel (all nodata, or an extent/mask over nodata only)."""
    where = " and ".join(w for w, v in (("extent", options.extent), ("mask polygon", options.mask_geometry))
                         if v is not None)
    if where:
        return InputError(f"the {where} holds no valid pixel of {src.path} (all nodata or masked); choose an area "
                          f"over image data")
    return InputError(f"{src.path} holds no valid pixel (every pixel is nodata or masked); check its nodata value "
                      f"and mask (rs2sam2 info) or choose another raster")
