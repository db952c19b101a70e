"""Where the referent may be: presence per (tile, query) and a coarse-to-fine search over the extent.

Presence comes from the predictor (``predict(..., presence=True)``: the model family's own signal, e.g. RS2-SAM2's
pseudo-mask peak) or, for predictors without it, from the tile's highest probability.

The search looks at a small pyramid above the fine tiles: windows 2, 4, ... times the tile's side, each shrunk to the
model's input. From the coarsest level down, a window is looked at only where a window of the level above held the
referent (presence >= the search threshold), and in the end the fine grid runs only under windows that held it, so
the cost follows the referent instead of the raster. A part of the extent named by the expression ("in the top
left") restricts every level to that part. Expressions that need every candidate of the extent (plurals, counts,
superlatives, extremes, relations) are searched exhaustively at the fine level: pruning could drop the one that
answers them.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .batching import batched
from .errors import Cancelled
from .expression import ONE, ReferringPlan
from .tiling import Window2D, tile_starts


def supports_presence(predictor) -> bool:
    try:
        return "presence" in inspect.signature(predictor.predict).parameters
    except (TypeError, ValueError):
        return False


def predict_presence(predictor, tiles: np.ndarray, texts: Sequence[str], predict: Callable | None = None,
                     batch_size: int | None = None):
    """(probabilities [B,T,H,W], presence [B,T]) from any predictor: its own presence when it has one, else each
    tile's highest probability. ``predict``: the call to use instead of ``predictor.predict`` (the feature cache's)."""
    fn = predict or predictor.predict
    if supports_presence(predictor):
        return fn(tiles, list(texts), batch_size=batch_size, presence=True)
    prob = fn(tiles, list(texts), batch_size=batch_size)
    return prob, prob.reshape(*prob.shape[:2], -1).max(-1)


def region_window(aoi: Window2D, region: tuple | None, margin: int) -> Window2D:
    """The part of the extent a region ((dx, dy) with components in {-1, 0, 1}) names, widened by ``margin`` px."""
    if region is None:
        return aoi
    dx, dy = region
    r0, r1, c0, c1 = aoi.row, aoi.row_end, aoi.col, aoi.col_end
    mid_r, mid_c = aoi.row + aoi.height // 2, aoi.col + aoi.width // 2
    if dx < 0:
        c1 = min(c1, mid_c + margin)
    elif dx > 0:
        c0 = max(c0, mid_c - margin)
    if dy > 0:
        r1 = min(r1, mid_r + margin)
    elif dy < 0:
        r0 = max(r0, mid_r - margin)
    return Window2D(r0, c0, r1 - r0, c1 - c0)


def _overlaps(row: int, col: int, size: int, w: Window2D) -> bool:
    return row < w.row_end and row + size > w.row and col < w.col_end and col + size > w.col


def prunable(plan: ReferringPlan) -> bool:
    """A singular referent with no rule over all candidates: its search may stop where the pyramid finds nothing."""
    return plan.cardinality == ONE and not plan.ranks_all


@dataclass
class SearchResult:
    #: model text -> fine tile starts (row, col) to run, or None = every tile of the grid
    fine: dict = field(default_factory=dict)
    windows_read: int = 0      # coarse windows read and run
    windows_valid: int = 0     # of those, windows holding any valid pixel
    forwards: int = 0          # coarse (window, text) forwards


def coarse_sides(tile: int, aoi: Window2D, levels: int) -> list[int]:
    """Window sides of the pyramid above the fine tiles, coarsest first; none beyond the one covering the extent."""
    sides, k = [], 1
    while k <= levels and tile * 2 ** (k - 1) < max(aoi.height, aoi.width):
        sides.append(tile * 2 ** k)
        k += 1
    return sides[::-1]


def _windows(aoi: Window2D, side: int, overlap: float) -> list[tuple[int, int]]:
    stride = max(1, side - int(round(side * overlap)))
    rows = [aoi.row + s for s in tile_starts(aoi.height, side, stride)]
    cols = [aoi.col + s for s in tile_starts(aoi.width, side, stride)]
    return [(r, c) for r in rows for c in cols]


def search(src, ds, aoi: Window2D, fine_rows: Sequence[int], fine_cols: Sequence[int], tile: int, predictor,
           texts: dict, *, levels: int, threshold: float, overlap: float, batch_size: int, beam: int = 4,
           cancelled: Callable[[], bool] = lambda: False, predict_windows: Callable | None = None) -> SearchResult:
    """Decide which fine tiles each model text needs. ``texts``: model text -> (searched: bool, region or None).
    A singular referent is one object: at each level only the ``beam`` windows with the highest presence (at least
    ``threshold``) are looked into, best first, so a look-alike here and there cannot open the whole raster.
    ``predict_windows(windows [(row, col, side)], pixels, texts)``: how a batch of windows is predicted (the
    engine's feature cache); default: the predictor directly."""
    res = SearchResult()
    margin = tile
    areas = {t: region_window(aoi, region, margin) for t, (_, region) in texts.items()}
    searched = [t for t, (s, _) in texts.items() if s]
    # per searched text: the windows of the level above that held the referent (None: the whole allowed area)
    held: dict = {t: None for t in searched}
    for side in coarse_sides(tile, aoi, levels) if searched else []:
        wins = _windows(aoi, side, overlap)
        need = {}
        for t in searched:
            if held[t] is not None and not held[t]:
                continue  # nothing above: this text is absent from the extent
            need[t] = [w for w in wins if _overlaps(*w, side, areas[t]) and
                       (held[t] is None or any(_overlaps(*w, side, h) for h in held[t]))]
        run = sorted({w for ws in need.values() for w in ws})
        level_texts = [t for t in searched if t in need]
        pres: dict = {}
        for batch in batched(run, batch_size):
            if cancelled():
                raise Cancelled()
            reads = [src.read(ds, r, c, side, side, out_size=predictor.input_size) for r, c in batch]
            res.windows_valid += sum(bool(valid.any()) for _, valid in reads)
            px = np.stack([rgb for rgb, _ in reads])
            if predict_windows is not None:
                _, p = predict_windows([(r, c, side) for r, c in batch], px, level_texts)
            else:
                _, p = predict_presence(predictor, px, level_texts)
            res.windows_read += len(batch)
            res.forwards += len(batch) * len(level_texts)
            for k, w in enumerate(batch):
                for j, t in enumerate(level_texts):
                    pres[(w, t)] = float(p[k, j])
        for t in level_texts:
            best = sorted((w for w in need[t] if pres[(w, t)] >= threshold), key=lambda w: -pres[(w, t)])[:beam]
            held[t] = [Window2D(r, c, side, side) for r, c in best]
    for t, (_, region) in texts.items():
        area = areas[t]
        windows = held.get(t)
        tiles = set()
        for r in fine_rows:
            for c in fine_cols:
                if not _overlaps(r, c, tile, area):
                    continue
                if windows is None or any(_overlaps(r, c, tile, h) for h in windows):
                    tiles.add((r, c))
        res.fine[t] = None if (windows is None and region is None) else tiles
    return res
