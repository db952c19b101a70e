"""Mask -> connected regions as polygons, in strips of rows with the seams merged, in bounded memory.

Why strips: GDAL's polygonize (rasterio.features.shapes) builds every polygon of what it is given in memory before
returning the first, and returns them as GeoJSON made of Python tuples (~100 bytes a vertex). A noisy mask (an
unsuited model on a real orthophoto) has vertices in proportion to its area: 3.75 GB at 20k x 20k. Here each strip
is polygonized alone, in pixel coordinates (integers, so the pieces of a region meet exactly at a seam); pieces that
touch the seam below stay open and are merged with the pieces they touch in the next strip; a region is emitted
(one unary union of its pieces) as soon as no piece of it touches the seam. Scores (mean probability inside) are
summed per piece while the strip's probabilities are at hand.

Why a cap: a region that spans the raster (a noisy mask above threshold on most pixels) is one polygon whose holes
grow with the area; no streaming bounds that. So the boundary of the mask is counted first (a cheap pass over the
strips); past ``MAX_BOUNDARY_EDGES`` pixel edges (SegmentOptions.polygonize_max_edges) the mask is polygonized on
k x k pixel cells (mean probability of the cell against the threshold), k a factor that brings it under the cap,
and the caller is told (a warning names k). Two million edges are about 10,000 building outlines of 200 pixel edges
each, some 100 MB of polygons. One region that crosses seams is merged by a polygon union, which needs ~700 bytes a
vertex: a region past ``MAX_REGION_COORDS`` vertices raises RegionTooComplex, and the caller polygonizes again on
cells twice as large.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from rasterio import features

from .errors import Cancelled

#: pixel edges between mask and background above which the mask is polygonized on coarser cells
MAX_BOUNDARY_EDGES = 2_000_000
#: vertices of one region across seams beyond which it is not merged (RegionTooComplex): ~70 MB of union
MAX_REGION_COORDS = 100_000
#: canvas pixels read per strip (~25 MB of working arrays)
STRIP_PIXELS = 1 << 20

ReadRows = Callable[[int, int], np.ndarray]  # (top, bottom) -> [bottom - top, width] rows of the canvas


def boundary_edges(read_mask: ReadRows, height: int, width: int, rows: int) -> int:
    """Pixel edges between mask and background (raster border counted as background): an upper bound of the
    polygons' vertex count."""
    total, last = 0, np.zeros(width, bool)
    for top in range(0, height, rows):
        m = np.asarray(read_mask(top, min(height, top + rows)), bool)
        total += int(np.count_nonzero(m[:, 1:] != m[:, :-1])) + int(m[:, 0].sum()) + int(m[:, -1].sum())
        total += int(np.count_nonzero(m[0] != last)) + int(np.count_nonzero(m[1:] != m[:-1]))
        last = m[-1]
    return total + int(last.sum())


def strip_rows(width: int, cell: int = 1) -> int:
    """Rows (of k x k cells) per strip so that a strip reads about STRIP_PIXELS canvas pixels, and at least 64:
    in thinner strips most regions touch a seam and wait there as pieces (~1 kB of objects each)."""
    return max(64, STRIP_PIXELS // max(1, width * cell))


def coarse_factor(read_mask: ReadRows, read_prob: ReadRows, threshold: float, height: int, width: int,
                  cap: int = MAX_BOUNDARY_EDGES) -> tuple[int, int]:
    """(k, edges): a cell side k (pixels) whose k x k cell mask has at most ``cap`` boundary edges, and the
    full-resolution mask's edge count. Noise finer than a cell leaves ~(cells) edges, smooth shapes ~(edges / k):
    k grows by the square root of the excess until the count, measured, fits."""
    edges = boundary_edges(read_mask, height, width, strip_rows(width))
    k, e = 1, edges
    while e > cap:
        k = max(k + 1, int(math.ceil(k * math.sqrt(e / cap))))
        cells = coarse_reader(read_prob, height, width, k)
        e = boundary_edges(lambda t, b, cells=cells: cells(t, b) >= threshold, -(-height // k), -(-width // k),
                           strip_rows(width, k))
    return k, edges


def coarse_reader(read_prob: ReadRows, height: int, width: int, k: int) -> ReadRows:
    """Rows of the k x k cell means of the probabilities (partial cells at the edges: mean of what they hold)."""
    col_starts = np.arange(0, width, k)
    col_n = np.diff(np.append(col_starts, width)).astype(np.float32)
    cells_per_read = max(1, STRIP_PIXELS // max(1, width * k))  # cell rows read at once: ~STRIP_PIXELS pixels

    def read(top: int, bottom: int) -> np.ndarray:
        out = []
        for c0 in range(top, bottom, cells_per_read):
            r0, r1 = c0 * k, min(height, min(bottom, c0 + cells_per_read) * k)
            if r1 <= r0:
                break
            p = np.asarray(read_prob(r0, r1), np.float32)
            row_starts = np.arange(0, p.shape[0], k)
            row_n = np.diff(np.append(row_starts, p.shape[0])).astype(np.float32)
            sums = np.add.reduceat(np.add.reduceat(p, row_starts, axis=0), col_starts, axis=1)
            out.append(sums / np.outer(row_n, col_n))
        return np.concatenate(out) if out else np.zeros((0, len(col_starts)), np.float32)
    return read


def polygons_from_geojson(dicts) -> np.ndarray:
    """GeoJSON-like Polygon dicts (from features.shapes) -> array of shapely Polygons, built vectorised."""
    if not dicts:
        return np.array([], dtype=object)
    rings, ring_poly = [], []
    for i, d in enumerate(dicts):
        for ring in d["coordinates"]:
            rings.append(np.asarray(ring, dtype=np.float64))
            ring_poly.append(i)
    sizes = np.fromiter((len(r) for r in rings), dtype=np.int64, count=len(rings))
    lr = shapely.linearrings(np.concatenate(rings), indices=np.repeat(np.arange(len(rings)), sizes))
    out = np.empty(len(dicts), dtype=object)
    shapely.polygons(lr, indices=np.asarray(ring_poly), out=out)
    return out


def _seam_intervals(geoms: np.ndarray, y: float):
    """[x0, x1] of every exterior-ring edge lying on the line at ``y``, with the index of its polygon."""
    coords, idx = shapely.get_coordinates(shapely.get_exterior_ring(geoms), return_index=True)
    on = coords[:, 1] == y
    pair = on[:-1] & on[1:] & (idx[:-1] == idx[1:])
    k = np.nonzero(pair)[0]
    x0 = np.minimum(coords[k, 0], coords[k + 1, 0])
    x1 = np.maximum(coords[k, 0], coords[k + 1, 0])
    return x0, x1, idx[k]


def _linked(a0, a1, b0, b1, touch: bool):
    """Pairs (i, j) of intervals a_i, b_j that share a length (4-connected) or a point too (8-connected); the b
    intervals are disjoint and sorted."""
    if len(a0) == 0 or len(b0) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = np.searchsorted(b1, a0, side="left" if touch else "right")
    hi = np.searchsorted(b0, a1, side="right" if touch else "left")
    n = np.maximum(hi - lo, 0)
    i = np.repeat(np.arange(len(a0)), n)
    start = np.repeat(lo, n)
    offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return i, start + offs


class RegionTooComplex(Exception):
    """A region crossing strip seams has more vertices than can be merged in bounded memory."""


@dataclass
class _Group:
    """An open region: its pieces so far, their vertex count and probability sums."""
    pieces: list = field(default_factory=list)
    coords: int = 0
    sums: float = 0.0
    count: float = 0.0


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def regions(read_mask: ReadRows, read_prob: ReadRows, height: int, width: int, connectivity: int = 4,
            is_cancelled: Callable[[], bool] | None = None, rows: int | None = None,
            max_region_coords: int | None = None) -> Iterator[tuple]:
    """Connected regions of the mask as (Polygon or MultiPolygon in pixel coordinates, mean probability inside),
    strip by strip (``rows`` per strip; default strip_rows); memory: one strip plus the regions still open at its
    lower seam. RegionTooComplex when a region crossing seams passes ``max_region_coords`` vertices."""
    rows = rows or strip_rows(width)
    max_region_coords = max_region_coords or MAX_REGION_COORDS
    touch = connectivity == 8
    open_groups: list[_Group] = []
    open_x0 = open_x1 = open_g = np.zeros(0)
    for top in range(0, height, rows):
        if is_cancelled is not None and is_cancelled():
            raise Cancelled()
        bottom = min(height, top + rows)
        mask = np.ascontiguousarray(read_mask(top, bottom), dtype=np.uint8)
        to_strip = Affine.translation(0, top)
        dicts = [g for g, v in features.shapes(mask, mask=mask.astype(bool), transform=to_strip,
                                               connectivity=connectivity) if v]
        pieces = polygons_from_geojson(dicts)
        del dicts
        n = len(pieces)
        sums = counts = np.zeros(n + 1)
        if n:
            ids = features.rasterize(((g, i + 1) for i, g in enumerate(pieces)), out_shape=mask.shape,
                                     transform=to_strip, fill=0, dtype="int32")
            prob = np.asarray(read_prob(top, bottom), np.float64)
            sums = np.bincount(ids.ravel(), weights=prob.ravel(), minlength=n + 1)
            counts = np.bincount(ids.ravel(), minlength=n + 1).astype(np.float64)
            del ids, prob
        del mask
        # link the open regions above the seam at `top` with this strip's pieces touching it
        pairs: list = []
        if n and len(open_groups):
            t0, t1, tp = _seam_intervals(pieces, float(top))
            order = np.argsort(t0, kind="stable")
            t0, t1, tp = t0[order], t1[order], tp[order]
            ia, jb = _linked(open_x0, open_x1, t0, t1, touch)
            pairs = list(zip(open_g[ia].astype(np.int64).tolist(), tp[jb].tolist()))
        G = len(open_groups)
        uf = _UnionFind(G + n)
        linked = np.zeros(G + n, bool)
        for a, b in pairs:
            uf.union(a, G + b)
            linked[a] = linked[G + b] = True
        below = np.zeros(n, bool)
        b0 = b1 = bp = np.zeros(0)
        if n and bottom < height:
            b0, b1, bp = _seam_intervals(pieces, float(bottom))
            below[bp] = True
        # pieces touching neither seam are whole regions already: the common case, no union needed
        n_coords = shapely.get_num_coordinates(pieces) if n else np.zeros(0, np.int64)
        lone = np.nonzero(~linked[G:] & ~below)[0]
        for i in lone:
            yield pieces[i], sums[i + 1] / counts[i + 1] if counts[i + 1] else 0.0
        comps: dict[int, _Group] = {}
        comp_below: dict[int, bool] = {}
        for g in range(G):
            r = uf.find(g)
            grp = comps.setdefault(r, _Group())
            grp.pieces += open_groups[g].pieces
            grp.coords += open_groups[g].coords
            grp.sums += open_groups[g].sums
            grp.count += open_groups[g].count
            comp_below.setdefault(r, False)
        for i in np.nonzero(linked[G:] | below)[0].tolist():
            r = uf.find(G + i)
            grp = comps.setdefault(r, _Group())
            grp.pieces.append(pieces[i])
            grp.coords += int(n_coords[i])
            grp.sums += sums[i + 1]
            grp.count += counts[i + 1]
            comp_below[r] = comp_below.get(r, False) or bool(below[i])
        new_groups: list[_Group] = []
        root_to_new: dict[int, int] = {}
        for r, grp in comps.items():
            if len(grp.pieces) > 1 and grp.coords > max_region_coords:
                raise RegionTooComplex(f"a region of {grp.coords:,} vertices crosses strip seams")
            if comp_below[r]:
                root_to_new[r] = len(new_groups)
                new_groups.append(grp)
            else:
                yield _merge(grp.pieces), grp.sums / grp.count if grp.count else 0.0
        if len(b0):
            gid = np.array([root_to_new[uf.find(G + int(p))] for p in bp.tolist()], np.int64)
            order = np.argsort(b0, kind="stable")
            open_x0, open_x1, open_g = b0[order], b1[order], gid[order]
        else:
            open_x0 = open_x1 = open_g = np.zeros(0)
        open_groups = new_groups


def _merge(pieces: list):
    """One region from its pieces (they meet along seams only)."""
    return pieces[0] if len(pieces) == 1 else shapely.union_all(np.asarray(pieces, dtype=object))
