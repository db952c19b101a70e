"""Tiles propose, the scene decides: choose among the candidates of the whole extent what an expression asks for.

Candidates are the polygons of the expression's noun phrase found anywhere in the extent, each with its score
(mean probability inside) and presence (how strongly the model held that its tile holds the referent). A
ReferringPlan (expression.py) says how many to keep and by which rule: the largest / smallest, the one furthest in a
direction or nearest a corner, those in a part of the extent, those nearest an anchor object; otherwise the most
confident. Directions are those of the image as displayed (row 0 at the top), which on a north-up raster are the
compass's.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import shapely
from affine import Affine

from .expression import CENTRE_HALF_WIDTH, ReferringPlan
from .polygonize import DetectedPolygon


def confidence(p: DetectedPolygon) -> float:
    """Score x presence: a confident mask in a tile the model believes holds the referent."""
    return float(p.score) * float(1.0 if p.presence is None else p.presence)


def deduplicate(cands: Sequence[DetectedPolygon], overlap: float = 0.5) -> list[DetectedPolygon]:
    """One candidate per object when two wordings found it: the most confident first, a later one dropped when
    it shares more than ``overlap`` of the smaller one's area with a kept one (non-maximum suppression)."""
    order = sorted(cands, key=confidence, reverse=True)
    if len(order) < 2:
        return order
    geoms = np.asarray([c.geometry for c in order], dtype=object)
    tree = shapely.STRtree(geoms)
    areas = shapely.area(geoms)
    dropped = np.zeros(len(order), bool)
    for i in range(len(order)):
        if dropped[i]:
            continue
        for j in tree.query(geoms[i], predicate="intersects"):
            if j > i and not dropped[j]:
                shared = shapely.area(shapely.intersection(geoms[i], geoms[j]))
                dropped[j] = shared > overlap * min(areas[i], areas[j])
    return [c for c, d in zip(order, dropped) if not d]


def pixel_points(cands: Sequence[DetectedPolygon], transform: Affine) -> tuple[np.ndarray, np.ndarray]:
    """(columns, rows) of each candidate's representative point (inside it) in the pixels of ``transform``."""
    pts = shapely.point_on_surface(np.asarray([c.geometry for c in cands], dtype=object))
    inv = ~transform
    xs, ys = shapely.get_x(pts), shapely.get_y(pts)
    return inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f


def _positions(cands: Sequence[DetectedPolygon], extent_transform: Affine, height: int, width: int) -> np.ndarray:
    """Each candidate's representative point as (u, v) in [-0.5, 0.5]: u to the right, v to the top of the extent."""
    cols, rows = pixel_points(cands, extent_transform)
    return np.stack([cols / max(width, 1) - 0.5, 0.5 - rows / max(height, 1)], axis=1)


def _areas(cands: Sequence[DetectedPolygon]) -> np.ndarray:
    return np.array([c.area_m2 if c.area_m2 is not None else c.geometry.area for c in cands], dtype=np.float64)


def _metres_per_unit(cands: Sequence[DetectedPolygon]) -> float:
    """Ground metres per unit of the candidates' coordinates, from their ground areas (polygonize: exact or
    ellipsoidal m2) against their planar ones, so that a distance in degrees reads in metres too; 1 where there is no
    ground area (a raster without a CRS: its own units)."""
    ratios = [c.area_m2 / c.geometry.area for c in cands if c.area_m2 and c.geometry.area > 0]
    return math.sqrt(float(np.median(ratios))) if ratios else 1.0


def _object_size(geoms: np.ndarray) -> float:
    """The typical candidate's size in map units (median square root of the outlines' areas): how far "near" and
    "on the way between" reach."""
    return float(np.median(np.sqrt(np.maximum(shapely.area(geoms), 0.0))))


def _objects_only(idx: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """Drop fragments and specks (under a quarter of the typical candidate's area) from a rule that could pick
    one for where it lies or how small it is rather than for what it is; fewer than three candidates: all kept."""
    if len(idx) <= 2:
        return idx
    return idx[areas[idx] >= 0.25 * float(np.median(areas[idx]))]


def select(plan: ReferringPlan, candidates: Sequence[DetectedPolygon], extent_transform: Affine, height: int,
           width: int, anchors: Sequence[DetectedPolygon] | None = None,
           accept: Callable[[DetectedPolygon], bool] | None = None,
           other_anchors: Sequence[DetectedPolygon] | None = None,
           excluded: Sequence[DetectedPolygon] | None = None) -> list[DetectedPolygon]:
    """The candidates the expression asks for, best first, each a copy with ``query`` = the analyst's sentence and
    ``rank`` = 1, 2, ... . ``extent_transform``/``height``/``width`` describe the analysis extent in grid pixels;
    ``anchors`` are the polygons found for ``plan.anchor_text``: None leaves the relation unjudged (the most
    confident candidates first); an empty list means the anchor is not in the extent, and so neither is what the
    sentence describes by it ("the tank next to the harbour" where there is no harbour): no answer, unless the
    relation is denied ("the tank not next to the harbour": every tank is). ``other_anchors``: those of
    ``plan.anchor2_text``, the second end of "between the lake and the road"; ``excluded``: the answer to what
    "except ..." leaves out, whose objects are not candidates (none found: nothing left out). ``accept``: for an
    answer of a number of objects, a candidate ``accept`` refuses is passed over for the next one."""
    cands = list(candidates)
    anchor_missing = any(t and a is not None and not len(a)
                         for t, a in ((plan.anchor_text, anchors), (plan.anchor2_text, other_anchors)))
    if not cands or (anchor_missing and not plan.negated):
        return []
    pos = _positions(cands, extent_transform, height, width)
    areas = _areas(cands)
    geoms = np.asarray([c.geometry for c in cands], dtype=object)
    idx = np.arange(len(cands))
    if plan.region is not None:
        idx = idx[in_region(pos[idx], plan.region)]
    if plan.area_m2 is not None:  # m2 where the raster has a CRS in metres, else its own units (pixels)
        least, most = plan.area_m2
        keep = np.ones(len(cands), bool)
        if least is not None:
            keep &= areas >= least
        if most is not None:
            keep &= areas <= most
        idx = idx[keep[idx]]
    if excluded:  # "every building except the largest one"
        idx = idx[~same_as_anchor(geoms[idx], [e.geometry for e in excluded])]
    conf = np.array([confidence(c) for c in cands])
    if plan.among is not None:  # "the smaller of the two grey-roofed buildings": of the two the model is surest of
        surest = [cands[i] for i in idx[np.argsort(-conf[idx], kind="stable")]]
        kept = {id(c) for c in (surest[:plan.among] if accept is None else first_accepted(surest, plan.among, accept))}
        idx = np.asarray([i for i in idx.tolist() if id(cands[i]) in kept], dtype=int)
    order_key = -conf  # default: most confident first
    if plan.anchor_text and anchors:  # an object is not its own neighbour ("the house nearest the red house")
        ends = [a.geometry for a in list(anchors) + list(other_anchors or [])]
        idx = idx[~same_as_anchor(geoms[idx], ends)]
    related = bool(plan.anchor_text and anchors) and len(idx) > 0
    if related and plan.between:
        detour = between_anchors(geoms[idx], [a.geometry for a in anchors],
                                 [a.geometry for a in other_anchors] if other_anchors else None)
        paired = np.isfinite(detour)  # a lone lake has no "between"
        if plan.count is None and paired.any():
            # "the houses between the lake and the road": off the way by at most half an object's size
            paired &= detour <= max(0.5 * _object_size(geoms[idx]), float(detour[paired].min()))
        idx, order_key = idx[paired], np.full(len(cands), np.inf)
        order_key[idx] = detour[paired] if plan.count is not None else 0.0
    elif related and plan.side is not None:
        dist = beyond_anchors(cands, idx, anchors, plan.side, extent_transform)
        idx, order_key = idx[np.isfinite(dist)], np.full(len(cands), np.inf)
        order_key[idx] = dist[np.isfinite(dist)]
        if plan.count is None:  # "the houses north of the road": every one beyond it, the most confident first
            order_key[idx] = 0.0
    elif related:
        dist = shapely.distance(geoms[idx], shapely.union_all([a.geometry for a in anchors]))
        if plan.distance_m is not None:  # "within 50 m of the river": metres, or the raster's units without a CRS
            least, most = plan.distance_m
            metres = dist * _metres_per_unit(cands)
            idx = idx[(metres >= (least or 0.0)) & (metres <= (np.inf if most is None else most))]
        elif plan.furthest:  # "the house furthest from the lake": every candidate, the furthest first
            order_key = np.full(len(cands), np.inf)
            order_key[idx] = -dist
        elif plan.negated or plan.size or plan.extreme or plan.count is None:
            # "near" means within about one object's size of the anchor (or as close as the closest one); "not near"
            # the others, the most confident first
            near = dist <= max(_object_size(geoms[idx]), float(dist.min()) * 1.5)
            idx = idx[~near if plan.negated else near]
        else:
            order_key = np.full(len(cands), np.inf)
            order_key[idx] = dist
    if plan.size is not None:
        order_key = -areas if plan.size == "max" else areas
        if plan.size == "min":
            idx = _objects_only(idx, areas)
    elif plan.extreme is not None:
        dx, dy = plan.extreme
        order_key = -(pos[:, 0] * dx + pos[:, 1] * dy)
        idx = _objects_only(idx, areas)  # a sliver at the edge is no "southernmost house"
    elif plan.point is not None:  # "closest to the top right corner": in the extent's pixels, whatever its shape
        (px, py), sign = plan.point, (-1.0 if plan.far_from_point else 1.0)
        order_key = sign * np.hypot((pos[:, 0] - px) * width, (pos[:, 1] - py) * height)
        idx = _objects_only(idx, areas)
    chosen = [cands[i] for i in sorted(idx.tolist(), key=lambda i: (order_key[i], -conf[i]))]
    if plan.count is not None:  # the first ``count`` from the ``ordinal``-th on ("the second largest": from the 2nd)
        n = plan.count + plan.ordinal - 1
        chosen = (chosen[:n] if accept is None else first_accepted(chosen, n, accept))[plan.ordinal - 1:]
    return [dataclasses.replace(c, query=plan.query, rank=r) for r, c in enumerate(chosen, start=1)]


#: pairs of anchors x candidates weighed at once by ``between_anchors`` (memory: 8 bytes each)
BETWEEN_BLOCK = 2_000_000


def between_anchors(geoms: Sequence, ends: Sequence, other_ends: Sequence | None = None) -> np.ndarray:
    """Per geometry: how far it lies off the way between two anchors, d(c, a) + d(c, b) - d(a, b) over the best
    pair, a among ``ends`` and b among ``other_ends`` ("between the lake and the road"), or two different ones of
    ``ends`` without them ("between the two lakes"); 0 or less on the way, inf where there is no pair."""
    g, a = np.asarray(geoms, dtype=object), np.asarray(ends, dtype=object)
    b = a if other_ends is None else np.asarray(other_ends, dtype=object)
    ga, gb = shapely.distance(g[:, None], a[None]), shapely.distance(g[:, None], b[None])  # [n, A], [n, B]
    ab = shapely.distance(a[:, None], b[None])  # [A, B]
    if other_ends is None:  # two different anchors of one set
        np.fill_diagonal(ab, -np.inf)
    out = np.full(len(g), np.inf)
    if not ab.size:
        return out
    step = max(1, BETWEEN_BLOCK // ab.size)  # candidates at a time: [step, A, B] stays small for many anchors
    for k in range(0, len(g), step):
        detour = ga[k:k + step, :, None] + gb[k:k + step, None, :] - ab[None]
        detour[np.isnan(detour)] = np.inf  # an empty outline is nowhere
        out[k:k + step] = detour.reshape(len(detour), -1).min(1)
    return out


#: a candidate that holds at least this share of an anchor's outline is that anchor itself
SAME_OBJECT_SHARE = 0.5


def same_as_anchor(geoms: Sequence, anchor_geoms: Sequence) -> np.ndarray:
    """Per geometry of ``geoms``: True when it is one of the anchors, holding most of its outline
    (``SAME_OBJECT_SHARE``; a piece of a roof found for "the red-roofed building" is that building), so that "the
    building next to the red-roofed building" is another building. A car inside a road's outline holds little of
    the road: it stays a car next to the road."""
    out = np.zeros(len(geoms), bool)
    if not len(geoms):
        return out
    g, a = np.asarray(geoms, dtype=object), np.asarray(anchor_geoms, dtype=object)
    gi, ai = shapely.STRtree(a).query(g, predicate="intersects")
    if len(gi):
        inter = shapely.area(shapely.intersection(g[gi], a[ai]))
        out[gi[inter >= SAME_OBJECT_SHARE * shapely.area(a[ai])]] = True
    return out


def in_region(pos: np.ndarray, region: tuple) -> np.ndarray:
    """Which positions ((u, v) as in ``_positions``) lie in a region: the half or quarter of the extent its signs
    name, or for (0, 0) its middle."""
    dx, dy = region
    if not (dx or dy):
        return np.all(np.abs(pos) <= CENTRE_HALF_WIDTH, axis=1)
    keep = np.ones(len(pos), bool)
    if dx:
        keep &= np.sign(pos[:, 0]) == dx
    if dy:
        keep &= np.sign(pos[:, 1]) == dy
    return keep


def beyond_anchors(cands: Sequence[DetectedPolygon], idx: np.ndarray, anchors: Sequence[DetectedPolygon],
                   side: tuple, extent_transform: Affine) -> np.ndarray:
    """Per candidate of ``cands`` (inf outside ``idx``): the distance to the nearest anchor that its representative
    point lies wholly beyond on ``side`` ((dx, dy), y to the top), inf where it lies beyond none. "North of the
    lake" is past the lake's northern edge, whatever its east-west offset; anchors in pixel rows and columns of the
    extent, so that a raster in pixel coordinates reads the same."""
    cols, rows = pixel_points([cands[i] for i in idx], extent_transform)
    inv = ~extent_transform
    bounds = shapely.bounds(np.asarray([a.geometry for a in anchors], dtype=object))  # minx, miny, maxx, maxy
    ac = np.stack([inv * (x, y) for x, y in ((bounds[:, 0], bounds[:, 1]), (bounds[:, 2], bounds[:, 3]))])
    c0, c1 = ac[:, 0].min(0), ac[:, 0].max(0)  # [anchors]
    r0, r1 = ac[:, 1].min(0), ac[:, 1].max(0)
    dx, dy = side
    ok = np.ones((len(idx), len(anchors)), bool)
    if dx:
        ok &= cols[:, None] > c1[None] if dx > 0 else cols[:, None] < c0[None]
    if dy:
        ok &= rows[:, None] < r0[None] if dy > 0 else rows[:, None] > r1[None]
    geoms = np.asarray([cands[i].geometry for i in idx], dtype=object)
    d = shapely.distance(geoms[:, None], np.asarray([a.geometry for a in anchors], dtype=object)[None])
    out = np.full(len(cands), np.inf)
    out[idx] = np.where(ok, d, np.inf).min(1)
    return out


#: candidates a counted answer may look at beyond its count before it settles for fewer
SPARE_TRIES = 4


def first_accepted(ranked: Sequence[DetectedPolygon], count: int,
                   accept: Callable[[DetectedPolygon], bool]) -> list[DetectedPolygon]:
    """The first ``count`` candidates, in rank order, that ``accept`` takes; at most ``count + SPARE_TRIES`` are
    tried, so that a sentence the model doubts everywhere costs a few forwards, not one per candidate of the extent."""
    out = []
    for c in ranked[:count + SPARE_TRIES]:
        if accept(c):
            out.append(c)
            if len(out) == count:
                break
    return out
