"""Where the referent may be: presence per (tile, query) and a search of the extent for a singular referent.

Presence comes from the predictor (``predict(..., presence=True)``: the model family's own signal, e.g. RS2-SAM2's
pseudo-mask peak) or, for predictors without it, from the tile's highest probability.

The search looks at the extent once, in overview windows laid side by side, each ``2 ** levels`` times the tile's side
and shrunk to the model's input. Each window offers its candidates: the point its mask is most sure of, and up to two
more peaks where the mask draws (``mask_peaks``). The candidates are checked best first (by that certainty) with a
steady closer look (second_look.SecondLook.steady), and the first that holds ends the search: the fine grid runs only
on the tiles around it, so the cost follows the referent instead of the raster. Where no overview candidate holds,
a fine round offers the peaks of the fine tiles' masks, checked the same way (a car shrunk 2x offers no peak in the
overview); an absent referent costs the grid. A part of the extent named by the expression ("in the top left")
restricts the candidates to that part. Expressions that need every candidate of the extent (plurals, counts,
superlatives, extremes, relations) run the whole fine grid: pruning could drop the one that answers them.

Why the mask's peak and not the window's presence: shrunk 2x, a small referent barely shows. The lone tank of val
seed 16 (148 px) scores presence 0.000 in its 2x window, and the pyramid this search replaced (4x windows ranking,
2x windows at presence 0.02 or more opened, fine tiles under them) ended without it
(bench/results/raster_search_cost_val20.md at 9463462). Yet the peak of a small referent's 2x window lies on it: on
20 val one-tank mosaics (4096 px, seeds 15-34; probe of the design, not committed) a window's peak lay on the tank
in all 20, and ranked by the peak's certainty the tank came 1st to 12th of 256 in 19 (90th in one). The search built
on it answers all 20 (the pyramid: 18) at 0.15-0.20x the fine grid's forwards (the pyramid:
median 0.38x; bench/results/raster_search_cost_val20.md).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .batching import batched
from .errors import Cancelled
from .expression import CENTRE_HALF_WIDTH, ONE, ReferringPlan
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
    """The part of the extent a region ((dx, dy) with components in {-1, 0, 1}; (0, 0) its middle,
    selection.in_region) names, widened by ``margin`` px."""
    if region is None:
        return aoi
    dx, dy = region
    r0, r1, c0, c1 = aoi.row, aoi.row_end, aoi.col, aoi.col_end
    mid_r, mid_c = aoi.row + aoi.height // 2, aoi.col + aoi.width // 2
    if not (dx or dy):
        hr = int(np.ceil(aoi.height * CENTRE_HALF_WIDTH)) + margin
        hc = int(np.ceil(aoi.width * CENTRE_HALF_WIDTH)) + margin
        r0, r1, c0, c1 = max(r0, mid_r - hr), min(r1, mid_r + hr), max(c0, mid_c - hc), min(c1, mid_c + hc)
        return Window2D(r0, c0, r1 - r0, c1 - c0)
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
    """A singular referent with no rule over all candidates: its search may stop at the first candidate that holds."""
    return plan.cardinality == ONE and not plan.ranks_all


@dataclass
class SearchResult:
    #: model text -> fine tile starts (row, col) to run, or None = every tile of the grid
    fine: dict = field(default_factory=dict)
    #: model text -> {fine tile start (row, col): presence of the closer look that confirmed the referent in it}: the
    #: engine lets those tiles contribute with that presence
    promoted: dict = field(default_factory=dict)
    windows_read: int = 0      # overview windows and fine tiles read and run by the search
    windows_valid: int = 0     # of those, windows holding any valid pixel
    forwards: int = 0          # the search's (window, text) forwards, closer looks aside (SecondLook.forwards)


def overview_side(tile: int, aoi: Window2D, levels: int) -> int | None:
    """The side of the search's overview windows: ``tile * 2 ** levels``, less where fewer halvings already cover
    the extent; None where the extent fits in one tile (or ``levels`` is 0): nothing to search."""
    k = 0
    while k < levels and tile * 2 ** k < max(aoi.height, aoi.width):
        k += 1
    return tile * 2 ** k if k else None


def _windows(aoi: Window2D, side: int, overlap: float) -> list[tuple[int, int]]:
    stride = max(1, side - int(round(side * overlap)))
    rows = [aoi.row + s for s in tile_starts(aoi.height, side, stride)]
    cols = [aoi.col + s for s in tile_starts(aoi.width, side, stride)]
    return [(r, c) for r in rows for c in cols]


def search(src, ds, aoi: Window2D, fine_rows: Sequence[int], fine_cols: Sequence[int], tile: int, predictor,
           texts: dict, *, levels: int, batch_size: int, second_look: SecondLook, beam: int = 4,
           confirm: float = 0.5, mask_threshold: float = 0.5, min_pixels: int = 1,
           cancelled: Callable[[], bool] = lambda: False, predict_windows: Callable | None = None,
           analysed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
           progress: Callable[[int, int], None] | None = None, likely: float = 0.5) -> SearchResult:
    """Decide which fine tiles each model text needs. ``texts``: model text -> (searched: bool, region or None). A
    searched text is one object. The overview windows (``overview_side``, side by side) are read and run once for
    all searched texts; each window's candidates for a text are its mask's peaks on valid pixels (``mask_peaks``).
    The candidates in the text's area are checked ``beam`` at a time, the most certain first, by a steady closer
    look at ``confirm`` (``second_look``: the lowest presence of seven views centred on the point, one view where
    the centred one falls short) and by the fine tile around the point, whose mask must draw near it
    (``_Looker.draws_at``: a closer look can be sure where the tile's mask draws another object or nothing, and the
    answer would then be empty). The first batch where some hold ends the search: the fine tiles that contain a held
    point run, with that look's presence, and so do the tiles at ``confirm`` joined to them, which hold the rest of
    an object larger than a tile (``_around``). Where none holds, the fine round looks at the fine tiles of the area
    and checks the mask peaks of those at presence ``likely`` or more, where the mask draws (one per object, none at
    a point checked already): a car shrunk 2x offers no peak in the overview. Where none holds there either, the
    text is absent: no fine tile runs. A window's own presence does not prune: a small referent shrunk 2x may score
    0.000 there while its mask's peak still lies on it (the module's docstring). ``predict_windows(windows [(row,
    col, side)], pixels, texts)``: how a batch of windows is predicted (the engine's feature cache); default: the
    predictor directly. ``analysed(rows, cols)``: which grid points the analysis covers (a mask polygon's inside;
    default: all), the only candidates offered.
    ``progress(looked, planned)``: called after each batch of windows, with the windows looked at and planned so far
    (the fine round plans the grid: an absent referent's search is the run's longest part)."""
    res = SearchResult()
    areas = {t: region_window(aoi, region, tile) for t, (_, region) in texts.items()}
    searched = [t for t, (s, _) in texts.items() if s]
    side = overview_side(tile, aoi, levels) if searched else None
    if side:
        look = _Looker(src, ds, predictor, batch_size, cancelled, predict_windows, res, mask_threshold, min_pixels,
                       progress)
        fine = {t: _tiles_in(areas[t], fine_rows, fine_cols, tile) for t in searched}

        def check(t: str, windows: list, w_side: int, floor: float, spacing: float, checked: list) -> dict:
            points = _candidates(look, t, windows, w_side, areas[t], region_window(aoi, texts[t][1], 0), analysed,
                                 floor, spacing, checked)
            checked += points
            return _first_held(second_look, t, points, confirm, beam, ds,
                               lambda pt: look.draws_at(pt, t, fine[t], tile))

        overview = [w for w in _windows(aoi, side, 0.0) if any(_overlaps(*w, side, areas[t]) for t in searched)]
        look(overview, side, searched, peaks=True)
        checked: dict = {t: [] for t in searched}
        held = {t: check(t, overview, side, -np.inf, 0.0, checked[t]) for t in searched}
        missing = [t for t in searched if not held[t]]
        if missing:  # the fine round: a referent too small to show in the overview
            tiles = sorted(set().union(*(fine[t] for t in missing)))
            got = look(tiles, tile, missing, masked=True, peaks=True)
            held.update({t: check(t, [w for w in tiles if got[t][w] >= likely], tile, mask_threshold, tile / 8,
                                  checked[t]) for t in missing})
        for t in searched:
            res.fine[t], res.promoted[t] = _around(look, t, held[t], fine[t], tile, confirm)
    for t, (_, region) in texts.items():
        if t not in res.fine:  # not searched: every tile, or those of its region
            res.fine[t] = None if region is None else set(_tiles_in(areas[t], fine_rows, fine_cols, tile))
    return res


def _tiles_in(area: Window2D, fine_rows, fine_cols, tile: int) -> list[tuple[int, int]]:
    """The fine tiles (row, col) that overlap ``area``."""
    return [(r, c) for r in fine_rows for c in fine_cols if _overlaps(r, c, tile, area)]


def _candidates(look: _Looker, text: str, windows: list, side: int, area: Window2D, inside: Window2D,
                analysed: Callable | None, floor: float, spacing: float, checked: list) -> list[tuple[float, float]]:
    """The points to check for ``text``, the most certain first: the mask peaks of the ``windows`` (of ``side``)
    over ``area`` that lie ``inside`` (the part of the extent the answer keeps), at ``floor`` or above, on the
    analysed part (``analysed``). With ``spacing`` > 0, one point per object: none within ``spacing`` px of a point
    offered before it or of one ``checked`` already (overlapping fine tiles each offer the same object)."""
    peaks = [pk for w in windows if _overlaps(*w, side, area) for pk in look.peaks[(text, w, side)]
             if pk[2] >= floor and inside.row <= pk[0] < inside.row_end and inside.col <= pk[1] < inside.col_end]
    points = [(r, c) for r, c, _ in sorted(peaks, key=lambda pk: -pk[2])]
    if analysed is not None and points:
        rows, cols = np.array(points, np.float64).T
        points = [pt for pt, ok in zip(points, analysed(rows, cols)) if ok]
    return points if spacing <= 0 else _spaced(points, checked, spacing)


def _spaced(points: list, checked: list, spacing: float) -> list:
    """``points`` in order, less each within ``spacing`` px (both axes) of one kept before it or of one of
    ``checked``. Points are binned in cells of ``spacing`` px, so a point is compared with the nine cells around it
    only: a large raster's fine round offers thousands."""
    cells: dict = {}

    def cell(pt):
        return int(pt[0] // spacing), int(pt[1] // spacing)

    def keep(pt):
        cells.setdefault(cell(pt), []).append(pt)

    for q in checked:
        keep(q)
    out: list = []
    for pt in points:
        cr, cc = cell(pt)
        near = (q for dr in (-1, 0, 1) for dc in (-1, 0, 1) for q in cells.get((cr + dr, cc + dc), ()))
        if all(max(abs(pt[0] - q[0]), abs(pt[1] - q[1])) > spacing for q in near):
            out.append(pt)
            keep(pt)
    return out


class _Looker:
    """Presence of windows for texts, each batch of windows read once (shrunk to the model's input) and run for
    all the texts asked; notes where each window's mask peaks, and how sure it is there."""

    def __init__(self, src, ds, predictor, batch_size, cancelled, predict_windows, res: SearchResult,
                 mask_threshold: float = 0.5, min_pixels: int = 1, progress: Callable[[int, int], None] | None = None):
        self.src, self.ds, self.predictor, self.batch_size = src, ds, predictor, batch_size
        self.cancelled, self.predict_windows, self.res = cancelled, predict_windows, res
        self.mask_threshold, self.min_pixels = mask_threshold, max(1, int(min_pixels))
        self.peaks: dict = {}  # (text, window, side) -> [(row, col, probability)] of its mask's peaks (mask_peaks)
        self.masks: dict = {}  # (text, window) -> its mask (bool), for the windows looked at ``masked``
        self.known: dict = {}  # (text, window, side) -> presence of the windows looked at ``masked``
        self.progress, self.planned = progress, 0  # windows planned: those of every call so far

    def __call__(self, windows: list[tuple[int, int]], side: int, texts: list[str], masked: bool = False,
                 peaks: bool = False) -> dict:
        """text -> {window: presence}; ``masked``: 0 for a window whose mask holds fewer than ``min_pixels`` pixels
        at ``mask_threshold`` (it cannot answer, whatever its presence), and its mask kept for ``draws_at``;
        ``peaks``: each window's mask peaks noted (the candidates of the overview and of the fine round)."""
        out: dict = {t: {} for t in texts}
        if masked:  # a fine tile the fine round looked at is not run again for the rings (``_around``)
            known = {w for w in windows if all((t, w, side) in self.known and (not peaks or (t, w, side) in self.peaks)
                                               for t in texts)}
            for t in texts:
                out[t].update({w: self.known[(t, w, side)] for w in known})
            windows = [w for w in windows if w not in known]
        self.planned += len(windows)
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
            prob = np.asarray(prob)
            if masked:
                mask = prob >= self.mask_threshold
                p = np.where(mask.reshape(*p.shape, -1).sum(-1) >= self.min_pixels, p, 0.0)
                self.masks.update({(t, w): mask[k, j] for k, w in enumerate(batch) for j, t in enumerate(texts)})
            if peaks:
                self._note_peaks(batch, side, texts, prob, [valid for _, valid in reads])
            self.res.windows_read += len(batch)
            self.res.forwards += len(batch) * len(texts)
            if self.progress is not None:
                self.progress(self.res.windows_read, self.planned)
            for j, t in enumerate(texts):
                out[t].update({w: float(p[k, j]) for k, w in enumerate(batch)})
                if masked:
                    self.known.update({(t, w, side): float(p[k, j]) for k, w in enumerate(batch)})
        return out

    def draws_at(self, point: tuple[float, float], text: str, fine: list[tuple[int, int]], tile: int) -> bool:
        """Whether the fine tile of ``fine`` that holds ``point`` most centrally draws a mask of at least
        ``min_pixels`` within an eighth of the tile's side of it (the tile is looked at once)."""
        r, c = point
        holding = [w for w in fine if w[0] <= r < w[0] + tile and w[1] <= c < w[1] + tile]
        if not holding:
            return False
        w = min(holding, key=lambda w: abs(w[0] + tile / 2 - r) + abs(w[1] + tile / 2 - c))
        self([w], tile, [text], masked=True)  # looked at once: a masked look is remembered
        mask = self.masks[(text, w)]
        h, wd = mask.shape
        fy, fx = h / tile, wd / tile
        near = max(1, int(round(tile / 8 * fy)))
        iy, ix = int((r - w[0]) * fy), int((c - w[1]) * fx)
        return int(mask[max(0, iy - near):iy + near + 1, max(0, ix - near):ix + near + 1].sum()) >= self.min_pixels

    def _note_peaks(self, batch: list[tuple[int, int]], side: int, texts: list[str], prob: np.ndarray,
                    valids: list[np.ndarray]) -> None:
        """Each window's peaks on its valid pixels (none off the raster or on nodata: no candidate there)."""
        h, w = prob.shape[-2:]
        for k, (r, c) in enumerate(batch):
            off = ~valids[k] if valids[k].shape == (h, w) else np.zeros((h, w), bool)
            for j, t in enumerate(texts):
                on_data = np.where(off, -1.0, prob[k, j])
                self.peaks[(t, (r, c), side)] = [(r + (iy + 0.5) * side / h, c + (ix + 0.5) * side / w, v)
                                                 for iy, ix, v in mask_peaks(on_data, self.mask_threshold)]


#: the most candidates one overview window offers: its mask's highest point, and other peaks where the mask draws
PEAKS_PER_WINDOW = 3


def mask_peaks(prob: np.ndarray, floor: float, most: int = PEAKS_PER_WINDOW) -> list[tuple[int, int, float]]:
    """(row, col, probability) of a probability map's peaks, highest first: its highest point, then up to
    ``most - 1`` more at ``floor`` or above, each the highest left once an eighth of the map's side around the
    peaks before it is set aside. One object per peak: a window of several look-alikes (gray roofs, one of them "the
    gray-roofed house") offers each of them, not only the one the mask is surest of. A negative value marks a pixel
    not to offer (off the raster's data)."""
    h, w = prob.shape
    rest = np.array(prob, np.float32, copy=True)  # negative: not a pixel to offer (off the data)
    radius = max(1, min(h, w) // 8)
    out: list = []
    while len(out) < most:
        iy, ix = divmod(int(rest.argmax()), w)
        v = float(rest[iy, ix])
        if v < 0 or (out and v < floor):
            break
        out.append((iy, ix, float(prob[iy, ix])))
        rest[max(0, iy - radius):iy + radius + 1, max(0, ix - radius):ix + radius + 1] = -np.inf
    return out


def _first_held(second_look: SecondLook, text: str, points: list, confirm: float, beam: int, ds,
                draws: Callable[[tuple], bool]) -> dict:
    """{point: presence} of the first ``beam`` candidates (in order) of which some hold a steady closer look at
    ``confirm`` and ``draws`` (the fine tile's mask draws there); empty where none of ``points`` does."""
    for i in range(0, len(points), max(1, beam)):
        batch = points[i:i + max(1, beam)]
        got = second_look.steady(batch, text, confirm, ds)
        held = {pt: float(p) for pt, p in zip(batch, got) if p >= confirm and draws(pt)}
        if held:
            return held
    return {}


def _around(look: _Looker, text: str, held: dict, fine: list[tuple[int, int]], tile: int,
            confirm: float) -> tuple[set, dict]:
    """The fine tiles to run for a referent found at the ``held`` points, and those promoted
    (``SearchResult.promoted``): the tiles of ``fine`` (those of the text's area) that contain a held point, with
    its closer look's presence, then, looked at in rings, the tiles at ``confirm`` that touch or overlap one already
    kept: the rest of an object larger than a tile. A tile sure of a look-alike elsewhere, never checked closer,
    does not join (run.py gates a singular's tiles at ``confirm`` and runs only these)."""
    promoted: dict = {}
    for (pr, pc), p in held.items():
        for r, c in fine:
            if r <= pr < r + tile and c <= pc < c + tile:
                promoted[(r, c)] = max(p, promoted.get((r, c), 0.0))
    kept, ring, seen = set(promoted), set(promoted), set(promoted)
    while ring:
        nearby = [w for w in fine if w not in seen and any(abs(w[0] - r) <= tile and abs(w[1] - c) <= tile
                                                          for r, c in ring)]
        seen.update(nearby)
        got = look(nearby, tile, [text], masked=True)[text] if nearby else {}
        ring = {w for w, p in got.items() if p >= confirm}
        kept |= ring
    return kept, promoted
