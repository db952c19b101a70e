"""Where the referent may be: presence per (tile, query) and a coarse-to-fine search over the extent.

Presence comes from the predictor (``predict(..., presence=True)``: the model family's own signal, e.g. RS2-SAM2's
pseudo-mask peak) or, for predictors without it, from the tile's highest probability.

The search looks at a small pyramid above the fine tiles: windows 2, 4, ... times the tile's side, each shrunk to the
model's input. From the coarsest level down, a window is looked at only where a window of the level above held the
referent (presence >= the search threshold), and in the end the fine grid runs only where a fine tile confirmed the
referent, so the cost follows the referent instead of the raster. A part of the extent named by the expression ("in
the top left") restricts every level to that part. Expressions that need every candidate of the extent (plurals,
counts, superlatives, extremes, relations) are searched exhaustively at the fine level: pruning could drop the one
that answers them.
"""
from __future__ import annotations

import heapq
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .batching import batched
from .errors import Cancelled
from .expression import ONE, ReferringPlan
from .second_look import SecondLook
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
    #: model text -> {fine tile start (row, col): presence of its closer look}, for the tiles under ``confirm`` that
    #: a closer look confirmed: the engine lets them contribute with that presence
    promoted: dict = field(default_factory=dict)
    windows_read: int = 0      # pyramid windows and fine tiles read and run by the search
    windows_valid: int = 0     # of those, windows holding any valid pixel
    forwards: int = 0          # the search's (window, text) forwards


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
           confirm: float = 0.5, mask_threshold: float = 0.5, min_pixels: int = 1,
           cancelled: Callable[[], bool] = lambda: False, predict_windows: Callable | None = None,
           second_look: SecondLook | None = None) -> SearchResult:
    """Decide which fine tiles each model text needs. ``texts``: model text -> (searched: bool, region or None).

    A searched text is one object: the pyramid is searched best first. Every window of the coarsest level is looked
    at and ranked (one read and one forward per window for all searched texts); then the window with the highest
    presence is opened (its windows one level down are looked at, and those at ``threshold`` or more join the
    ranking), and so on, until ``beam`` windows of the finest coarse level are open. Their fine tiles are then
    looked at, and the referent is found there when one of them confirms it (``_confirmed``); otherwise the search
    goes on with the next best windows. The coarsest level only ranks: shrunk 4 or 8 times, a small object or a roof
    colour may barely show, so its window is opened in its turn whatever its presence; ``threshold`` is kept low for
    the same reason (a lone tank seen whole scored 0.001-0.97 in the 2x shrunk view of the demo of d6181d3, 0.23-1.0 in
    its fine tile). So a look-alike here and there cannot open the whole raster, and a coarse view too small to tell
    the object apart cannot lose it either: the search stops at a confirmed fine tile, or when no window is left
    (the text is absent: no fine tile runs). ``predict_windows(windows [(row, col, side)], pixels, texts)``: how a
    batch of windows is predicted (the engine's feature cache); default: the predictor directly. ``second_look``
    (second_look.SecondLook): the closer look that confirms or rules out a fine tile's candidate."""
    res = SearchResult()
    areas = {t: region_window(aoi, region, tile) for t, (_, region) in texts.items()}
    searched = [t for t, (s, _) in texts.items() if s]
    sides = coarse_sides(tile, aoi, levels) if searched else []
    if sides:
        look = _Looker(src, ds, predictor, batch_size, cancelled, predict_windows, res, mask_threshold, min_pixels)
        coarsest = [w for w in _windows(aoi, sides[0], overlap)
                    if any(_overlaps(*w, sides[0], areas[t]) for t in searched)]
        first = look(coarsest, sides[0], searched)
        for t in searched:
            ranked = {w: first[t][w] for w in coarsest if _overlaps(*w, sides[0], areas[t])}
            res.fine[t], res.promoted[t] = _best_first(look, t, ranked, areas[t], aoi, sides, tile, fine_rows,
                                                       fine_cols, overlap, threshold, confirm, beam, second_look)
    for t, (_, region) in texts.items():
        if t not in res.fine:  # not searched: every tile, or those of its region
            res.fine[t] = None if region is None else {
                (r, c) for r in fine_rows for c in fine_cols if _overlaps(r, c, tile, areas[t])}
    return res


class _Looker:
    """Presence of windows for texts, each batch of windows read once (shrunk to the model's input) and run for
    all the texts asked."""

    def __init__(self, src, ds, predictor, batch_size, cancelled, predict_windows, res: SearchResult,
                 mask_threshold: float = 0.5, min_pixels: int = 1):
        self.src, self.ds, self.predictor, self.batch_size = src, ds, predictor, batch_size
        self.cancelled, self.predict_windows, self.res = cancelled, predict_windows, res
        self.mask_threshold, self.min_pixels = mask_threshold, max(1, int(min_pixels))
        self.peaks: dict = {}  # (text, window) -> (row, col) of its mask's peak, for windows looked at masked

    def __call__(self, windows: list[tuple[int, int]], side: int, texts: list[str], masked: bool = False) -> dict:
        """text -> {window: presence}; ``masked``: 0 for a window whose mask holds fewer than ``min_pixels`` pixels
        at ``mask_threshold`` (it cannot answer, whatever its presence)."""
        out: dict = {t: {} for t in texts}
        for batch in batched(sorted(windows), self.batch_size):
            if self.cancelled():
                raise Cancelled()
            reads = [self.src.read(self.ds, r, c, side, side, out_size=self.predictor.input_size) for r, c in batch]
            self.res.windows_valid += sum(bool(valid.any()) for _, valid in reads)
            px = np.stack([rgb for rgb, _ in reads])
            if self.predict_windows is not None:
                prob, p = self.predict_windows([(r, c, side) for r, c in batch], px, texts)
            else:
                prob, p = predict_presence(self.predictor, px, texts)
            if masked:
                prob = np.asarray(prob)
                drawn = (prob >= self.mask_threshold).reshape(*p.shape, -1).sum(-1)
                p = np.where(drawn >= self.min_pixels, p, 0.0)
                self._note_peaks(batch, side, texts, prob)
            self.res.windows_read += len(batch)
            self.res.forwards += len(batch) * len(texts)
            for j, t in enumerate(texts):
                out[t].update({w: float(p[k, j]) for k, w in enumerate(batch)})
        return out

    def _note_peaks(self, batch: list[tuple[int, int]], side: int, texts: list[str], prob: np.ndarray) -> None:
        """Where each window's mask is most sure (grid row, col): the point a second look is centred on."""
        h, w = prob.shape[-2:]
        flat = prob.reshape(*prob.shape[:2], -1).argmax(-1)
        for k, (r, c) in enumerate(batch):
            for j, t in enumerate(texts):
                iy, ix = divmod(int(flat[k, j]), w)
                self.peaks[(t, (r, c))] = (r + (iy + 0.5) * side / h, c + (ix + 0.5) * side / w)


def _best_first(look: _Looker, text: str, ranked: dict, area: Window2D, aoi: Window2D, sides: list[int],
                tile: int, fine_rows, fine_cols, overlap: float, threshold: float, confirm: float,
                beam: int, second_look: SecondLook | None = None) -> tuple[set, dict]:
    """The fine tiles to run for one searched text (``search``), from its presence in the coarsest windows of its
    area (``ranked``), and the tiles a closer look promoted (``SearchResult.promoted``). Once a fine tile confirms
    the referent, the tiles to run are those that confirmed it and the tiles at ``confirm`` (not ruled out) joined to
    them, which hold the rest of an object cut by a tile's edge (others would abstain: run.py gates a singular's
    tiles at ``confirm``; and a look-alike elsewhere, sure in its tile but never checked, must not answer); else
    none."""
    below = [[w for w in _windows(aoi, side, overlap) if _overlaps(*w, side, area)] for side in sides[1:]]
    heap = [(-p, 0, w) for w, p in ranked.items()]  # ranked, never dropped: see search
    heapq.heapify(heap)
    seen: set = set()
    fine: dict = {}     # fine tile -> its presence, as the search looked at it
    ruled: set = set()  # fine tiles whose candidate a closer look ruled out: they never answer
    while heap:
        ready: list = []
        while heap and len(ready) < beam:
            _, k, (r, c) = heapq.heappop(heap)
            if k == len(sides) - 1:
                ready.append((r, c))
                continue
            inside = Window2D(r, c, sides[k], sides[k])
            kids = [w for w in below[k] if _overlaps(*w, sides[k + 1], inside) and (k + 1, w) not in seen]
            got = look(kids, sides[k + 1], [text])[text]  # below[k]: the windows of level k + 1
            seen.update((k + 1, w) for w in got)
            for w, p in got.items():
                if p >= threshold:
                    heapq.heappush(heap, (-p, k + 1, w))
        side = sides[-1]
        tiles = {(r, c) for r in fine_rows for c in fine_cols if _overlaps(r, c, tile, area)
                 and (r, c) not in fine and (r, c) not in ruled
                 and any(_overlaps(r, c, tile, Window2D(wr, wc, side, side)) for wr, wc in ready)}
        if tiles:
            got = look(list(tiles), tile, [text], masked=True)[text]
            verdict = _confirmed(look, text, got, confirm, threshold, second_look)
            ruled |= verdict.ruled_out
            fine.update((w, p) for w, p in got.items() if w not in verdict.ruled_out)
            if verdict.held:
                return _grown(verdict.held, {w for w, p in fine.items() if p >= confirm}, tile), verdict.promoted
    return set(), {}


def _grown(held: set, sure: set, tile: int) -> set:
    """``held`` and the ``sure`` tiles joined to it through sure tiles that touch or overlap: the rest of an object
    that spans tiles, not a look-alike elsewhere."""
    out, todo = set(held), list(held)
    while todo:
        r, c = todo.pop()
        for w in [w for w in sure - out if abs(w[0] - r) <= tile and abs(w[1] - c) <= tile]:
            out.add(w)
            todo.append(w)
    return out


#: fine tiles of each kind (sure, lukewarm) whose steady look is tried before the search moves on (up to seven
#: forwards each)
CONFIRM_TRIES = 3


@dataclass
class _Verdict:
    held: set = field(default_factory=set)          # the tiles that hold the referent (none: not found here)
    promoted: dict = field(default_factory=dict)    # those under ``confirm`` -> their steady closer look's presence
    ruled_out: set = field(default_factory=set)     # tiles at ``confirm`` whose steady closer look did not hold


def _confirmed(look: _Looker, text: str, got: dict, confirm: float, floor: float,
               second_look: SecondLook | None) -> _Verdict:
    """Whether a fine tile of ``got`` (presence per tile) holds the referent, which tiles under ``confirm`` a closer
    look confirmed, and which at ``confirm`` it ruled out (they are not run: a look-alike the search passed over
    must not answer in the end).

    Without ``second_look``: a tile at ``confirm``. With it, the model judges again, closer, around the tile's mask
    peak (second_look.SecondLook.steady: the lowest of seven views, centred, shifted and mirrored), and a tile
    holds the referent when that steady look reaches ``confirm``: a tile at ``confirm`` (the best
    ``CONFIRM_TRIES``), or a lukewarm one (``floor`` <= presence < ``confirm``, the best ``CONFIRM_TRIES``). The
    tile's own presence moves with the crop: a white roof cut by its edge, a white car, can be "the storage tank"
    at 0.99. On the val split's one-tank mosaics (30 seeds, bench/results/closer_views.md) the steady look of the
    lone tank's candidates reached 0.85 in 57 of 59, that of look-alikes in none of 38 (the centred view alone: 12);
    on 20 larger ones (bench/results/raster_search_cost_val20.md) the search answers 18 lone tanks (15 with the
    demo of d6181d3, whose 5 misses were white cars it held for tanks in every view; training/README.md, stage
    7v)."""
    best_first = sorted(got, key=lambda w: -got[w])
    sure = [w for w in best_first if got[w] >= confirm][:CONFIRM_TRIES]
    if second_look is None:
        return _Verdict(set(sure))
    warm = [w for w in best_first if 0 < got[w] < confirm and got[w] >= floor][:CONFIRM_TRIES]
    tried = sure + warm
    closer = second_look.steady([look.peaks[(text, w)] for w in tried], text, confirm, look.ds) if tried else []
    held = {w: float(p) for w, p in zip(tried, closer) if p >= confirm}
    return _Verdict(set(held), {w: p for w, p in held.items() if w in warm}, set(sure) - set(held))
