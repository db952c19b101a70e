"""A second, closer look: before the scene's answer rests on a candidate, the model judges it again in a window
centred on it and enlarged, as an analyst zooms in to check, and the candidate is dropped when that view is sure it
is not the referent.

A tile's presence is the model's view of one crop of the raster, and the demo model's moves with the crop. On the
val split's 4096 px one-tank mosaics of ``bench/raster_search_cost.py`` (probes, not committed), for "the storage
tank": a small white roof cut by a tile's edge (seed 12) scores 0.993 in its grid tile; in a window half the
tile's side centred on it and enlarged 2x (the scale of the zoomed crops the model trained on,
``training.datasets.synthetic.zoom_in``) it scores 0.02-0.06, while the four real lone tanks score 0.93-1.00 there.

In the answer the closer look is a veto, not a second gate. As a gate (at the threshold) it made the bundled
sample's absent "the swimming pools" present: the model is surer of everything seen closer, look-alikes of an
unknown word included. A same-size centred window as a gate lost real tanks (0.26-0.41 centred, against 0.90-0.98
in their grid tiles). So a candidate is dropped only when its closer view is as sure of absence as the threshold
asks a tile to be sure of presence (``sure_absent``). One forward per candidate a singular or counted answer keeps,
not per tile.

The search for a singular referent (search.search) and the answer to a plural (run.answer) ask more of it: a
steady look, the lowest of seven closer views (centred, shifted, mirrored), must reach the threshold before a
candidate may end the search, or before a class counts as present in the extent. One view is not enough there: a
look-alike's closer view swings with a shift of a few pixels, and on 20 more val mosaics the search stopped at a
look-alike the single view passed in 10, the steady look in 5, with the demo of d6181d3
(bench/results/raster_referring_notes.md).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .batching import batched
from .errors import Cancelled


def sure_absent(presence, threshold: float):
    """True where a view's presence is under 1 - ``threshold``: the model is as sure the referent is not there as
    ``threshold`` asks it to be sure that it is. Never above the threshold itself, so that a low threshold (0: the
    presence gate off) turns the veto off too rather than making it stricter than the gate."""
    return np.asarray(presence) < min(float(threshold), 1.0 - float(threshold))


#: how much closer the second look is: a window of the tile's side / ZOOM, enlarged to the model's input
ZOOM = 2
#: a steady look's extra views: four shifted by this share of the view's side (up, down, left, right), and the
#: centred one mirrored left-right and top-bottom
SHIFT = 0.1
#: how a view's pixels are mirrored: none, left-right, top-bottom
MIRRORS = {"": lambda px: px, "lr": lambda px: px[:, ::-1], "tb": lambda px: px[::-1]}


class SecondLook:
    """Presence of a text in windows of ``tile / zoom`` px centred on points of the grid (row, col), clamped inside
    the raster so that the view is whole, and enlarged to the model's input by the predictor.
    ``predict_windows(windows [(row, col, side)], pixels, texts)`` -> (prob, presence), the engine's way to predict
    a batch of windows (feature cache, batch backoff). Each (text, window) is predicted once per run.

    A steady look (``steady``) is the lowest presence of seven views: the centred one, four shifted by ``SHIFT`` of
    its side, and the centred one mirrored both ways. The demo model's closer view of a look-alike can swing with a
    shift of a few pixels (a white roof: 0.008 in one view, 0.987 two pixels away) or a mirror, while that of a real
    referent holds: on the val split's one-tank mosaics (30 seeds, 97 candidates; bench/results/closer_views.md)
    the lowest of the seven views reached 0.85 for 57 of the tank's 59 candidates and for none of 38 look-alikes,
    against 59 and 12 for the centred view alone (58 and 1 without the mirrors). Up to seven forwards a candidate:
    the search's test of a candidate that would confirm a singular referent (search.search) and of a plural's
    most present candidates (run.answer); the veto of a singular or counted answer keeps the centred view."""

    def __init__(self, src, tile: int, predict_windows: Callable, batch_size: int = 8,
                 cancelled: Callable[[], bool] = lambda: False, zoom: float = ZOOM):
        self.src, self.side, self.predict_windows = src, max(1, int(round(tile / zoom))), predict_windows
        self.batch_size, self.cancelled = max(1, int(batch_size)), cancelled
        self.seen: dict = {}
        self.forwards = 0
        step = max(1, int(round(self.side * SHIFT)))
        #: (row shift, column shift, mirror) of each view of a steady look; the first is the plain centred view
        self.steady_views = [(0, 0, ""), (-step, 0, ""), (step, 0, ""), (0, -step, ""), (0, step, ""), (0, 0, "lr"),
                             (0, 0, "tb")]

    def window(self, row: float, col: float) -> tuple[int, int]:
        """The top-left corner of the window centred on (row, col), inside the raster where it fits."""
        half = self.side / 2
        r = min(max(0, int(round(row - half))), max(0, self.src.grid_height - self.side))
        c = min(max(0, int(round(col - half))), max(0, self.src.grid_width - self.side))
        return r, c

    def __call__(self, points: Sequence[tuple[float, float]], text: str, ds=None) -> np.ndarray:
        """Presence [len(points)] of ``text`` in the windows centred on ``points``; ``ds``: an open dataset of the
        source to read through (else it is opened here)."""
        return self._views(points, text, ds, self.steady_views[:1]).min(1)

    def steady(self, points: Sequence[tuple[float, float]], text: str, reach: float, ds=None) -> np.ndarray:
        """A steady look's presence [len(points)]: the lowest of its seven views where the centred view reaches
        ``reach``; elsewhere the centred view's (under ``reach`` already: the other six are not looked at)."""
        out = self(points, text, ds)
        high = np.nonzero(out >= reach)[0]
        if len(high):
            out[high] = self._views([points[i] for i in high], text, ds, self.steady_views).min(1)
        return out

    def _views(self, points, text: str, ds, kinds) -> np.ndarray:
        """Presence [len(points), len(kinds)] of ``text`` in each view (row shift, column shift, mirror) of the
        window centred on each point, each (text, window, mirror) predicted once per run."""
        views = [[(*self.window(r + dr, c + dc), m) for dr, dc, m in kinds] for r, c in points]
        todo = sorted({v for vs in views for v in vs if (text, v) not in self.seen})
        if todo:
            if ds is None:
                with self.src.open() as opened:
                    self._predict(todo, text, opened)
            else:
                self._predict(todo, text, ds)
        return np.array([[self.seen[(text, v)] for v in vs] for vs in views], np.float32).reshape(len(views),
                                                                                               len(kinds))

    def _predict(self, views: list[tuple[int, int, str]], text: str, ds) -> None:
        for batch in batched(views, self.batch_size):
            if self.cancelled():
                raise Cancelled()
            reads = {(r, c): self.src.read(ds, r, c, self.side, self.side)[0] for r, c in {v[:2] for v in batch}}
            px = np.stack([MIRRORS[m](reads[(r, c)]) for r, c, m in batch])  # a window read once for its mirrors
            _, p = self.predict_windows([(r, c, self.side) for r, c, _ in batch], px, [text])
            self.forwards += len(batch)
            self.seen.update({(text, v): float(p[k, 0]) for k, v in enumerate(batch)})
