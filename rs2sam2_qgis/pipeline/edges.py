"""Outlines on the image's own edges: an edge-aware refinement of a tile's probabilities before they are stitched.

SAM-style decoders (SAM2's, and so RS2-SAM2's and RSRefSeg's) draw their masks on a grid four times coarser than the
model's input and enlarge them bilinearly, so an outline can lie a pixel or two off the object's edge in the image:
on the val mosaics 88% of the false-positive pixels of class answers lay within 2 px of a true object
(`bench/class_fp.py --no-refine-edges`; raster_referring_notes.md). A guided filter (He, Sun & Tang, "Guided Image
Filtering", TPAMI 2013) re-fits the probabilities in every small window as a linear function of the tile's colours,
which moves the outline onto the nearest colour edge within about half a mask cell and leaves flat areas as they
were.

The refinement draws outlines; it does not decide. The engine stitches both canvases, chooses its answer on the
model's own (which objects, how many, which is the largest), and then gives each chosen polygon the refined outline
drawn for it (``onto_refined``). So a refined outline that merges two fragments, or moves a point by a pixel, never
changes which objects answer: on the bundled sample a merged fragment changed which three candidates were looked at
closer for "the swimming pools", and a red roof held it (bench/results/raster_referring_notes.md).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import shapely

from .polygonize import DetectedPolygon, polygonal

#: SAM's mask decoder draws its masks at a quarter of the model's input size
MASK_CELL_OF_INPUT = 4
#: regularisation on 0-1 colour channels: colour steps much weaker than sqrt(EDGE_EPS) (~0.03) are smoothed over
EDGE_EPS = 1e-3


def edge_radius(tile_px: int, input_px: int) -> int:
    """The filter's window radius in tile pixels: half a mask cell of a tile ``tile_px`` wide that the model sees
    at ``input_px`` (2 px when the tile is the model's input size)."""
    return max(1, round(0.5 * MASK_CELL_OF_INPUT * tile_px / max(1, input_px)))


def _box_mean(x, r: int):
    """Mean over the (2r+1)^2 window around each pixel of a tensor's last two axes; the window is cut at the
    borders. Running sums (float64), so the cost does not grow with ``r`` (a tile larger than the model's input
    has a wider mask cell, and so a wider window)."""
    import torch

    out = x
    for dim in (-2, -1):
        n = out.shape[dim]
        c = torch.cumsum(out, dim=dim, dtype=torch.float64)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)
        idx = torch.arange(n, device=x.device)
        hi, lo = (idx + r + 1).clamp(max=n), (idx - r).clamp(min=0)
        shape = [1] * out.ndim
        shape[dim] = n
        out = (c.index_select(dim, hi) - c.index_select(dim, lo)) / (hi - lo).view(shape)
    return out.to(x.dtype)


#: the filter runs on the blocks of this side that hold outline pixels, each with the filter's reach around it
BLOCK = 64


def _guided(guide, q, radius: int, eps: float):
    """The guided filter of ``q`` [h, w] by ``guide`` [3, h, w]: the mean of the three channels' linear fits."""
    mean_i, mean_q = _box_mean(guide, radius), _box_mean(q, radius)
    var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
    a = (_box_mean(guide * q, radius) - mean_i * mean_q) / (var_i + eps)  # [3, h, w]
    b = mean_q - a * mean_i
    return (_box_mean(a, radius) * guide + _box_mean(b, radius)).mean(0).clamp_(0.0, 1.0)


def refine_edges(prob: np.ndarray, rgb: np.ndarray, radius: int, threshold: float = 0.5, eps: float = EDGE_EPS,
                 device: str = "cpu") -> np.ndarray:
    """``prob`` [T, h, w] (one map per text) re-fitted to the edges of ``rgb`` [h, w, 3] (uint8): the mean over the
    three colour channels of a guided filter of radius ``radius``, clipped to [0, 1]. Only pixels within ``radius``
    of the outline at ``threshold`` change, so an outline moves but no object appears or vanishes (a faint blob
    under the threshold stays under it). Computed on ``device`` (the model's), around the pixels inside, on the
    ``BLOCK`` px blocks that hold an outline, each with the filter's reach around it (the values the whole tile
    would give): a tile without an outline costs nothing, one with a few objects a few blocks."""
    import torch
    import torch.nn.functional as F

    def near(mask):  # pixels within ``radius`` (a square) of a True one: rows, then columns
        k = 2 * radius + 1
        rows = F.max_pool2d(mask[None, None].float(), (k, 1), stride=1, padding=(radius, 0))
        return F.max_pool2d(rows, (1, k), stride=1, padding=(0, radius))[0, 0] > 0

    out = np.array(prob, dtype=np.float32, copy=True)
    reach = 2 * radius  # an outline pixel's new value reads the colours and probabilities this far away
    with torch.no_grad():
        for t, p in enumerate(torch.from_numpy(np.asarray(prob, dtype=np.float32)).to(device)):
            inside = p >= threshold
            rows, cols = torch.nonzero(inside.any(1)), torch.nonzero(inside.any(0))
            if not len(rows):
                continue
            # the outline lies within ``radius`` of the pixels inside: the window past which nothing is read
            r0, r1 = max(0, int(rows[0]) - radius - reach), min(p.shape[0], int(rows[-1]) + radius + reach + 1)
            c0, c1 = max(0, int(cols[0]) - radius - reach), min(p.shape[1], int(cols[-1]) + radius + reach + 1)
            q, inside = p[r0:r1, c0:c1], inside[r0:r1, c0:c1]
            band = near(inside) & near(~inside)
            crop = np.ascontiguousarray(np.moveaxis(rgb[r0:r1, c0:c1], -1, 0), dtype=np.float32)
            guide = torch.from_numpy(crop).to(device) / 255.0  # [3, h, w]
            h, w = q.shape
            refined = q.clone()
            held = F.max_pool2d(band[None, None].float(), BLOCK, stride=BLOCK, ceil_mode=True)[0, 0] > 0
            for bi, bj in torch.nonzero(held).tolist():
                y0, x0 = bi * BLOCK, bj * BLOCK
                y1, x1 = min(y0 + BLOCK, h), min(x0 + BLOCK, w)
                wy0, wx0 = max(0, y0 - reach), max(0, x0 - reach)
                fitted = _guided(guide[:, wy0:y1 + reach, wx0:x1 + reach], q[wy0:y1 + reach, wx0:x1 + reach],
                                 radius, eps)[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
                refined[y0:y1, x0:x1] = torch.where(band[y0:y1, x0:x1], fitted, q[y0:y1, x0:x1])
            out[t, r0:r1, c0:c1] = refined.cpu().numpy()
    return out


#: a refined polygon is drawn for an answer polygon when their overlap is at least this share of the smaller one;
#: and the answer keeps its own outline where the refined ones cover less than this share of it (a speck thinned away)
OWN_SHARE = 0.5


def onto_refined(answer: Sequence[DetectedPolygon], refined: Sequence[DetectedPolygon],
                 reach: float) -> list[DetectedPolygon]:
    """Each polygon of ``answer`` (chosen on the model's own canvas) with the outline the refined canvas draws for
    it: the refined polygons that overlap it (``OWN_SHARE`` of the smaller), within ``reach`` map units of it, so
    that a neighbour merged with it by the refinement stays out. Ground area scaled from the polygon's own; every
    other attribute kept."""
    if not answer or not refined:
        return list(answer)
    geoms = np.asarray([r.geometry for r in refined], dtype=object)
    tree = shapely.STRtree(geoms)
    out = []
    for p in answer:
        own = p.geometry
        hits = tree.query(own, predicate="intersects")
        if len(hits):
            shared = shapely.area(shapely.intersection(geoms[hits], own))
            hits = hits[shared >= OWN_SHARE * np.minimum(shapely.area(geoms[hits]), own.area)]
        drawn = shapely.intersection(shapely.union_all(geoms[hits]), own.buffer(reach)) if len(hits) else None
        if drawn is None or drawn.is_empty or drawn.area < OWN_SHARE * own.area:
            out.append(p)
            continue
        drawn = polygonal(shapely.make_valid(drawn))  # as the polygonizer keeps them: lines and points dropped
        ground = p.area_m2 * drawn.area / own.area if p.area_m2 is not None and own.area > 0 else None
        out.append(dataclasses.replace(p, geometry=drawn, area_m2=ground))
    return out
