"""A second look: before the scene's answer rests on a candidate, the model judges it again in a window centred on it,
and the candidate is dropped when that view is sure it is not the referent.

A tile's presence is the model's view of one crop of the raster. An object cut by the tile's edge can look like the
referent in that crop and nothing like it once seen whole: on the val split's 4096 px one-tank mosaic (seed 12 of
``bench/raster_search_cost.py``) a small white roof at a tile's edge scores 0.993 for "the storage tank", and 0.006
in a window centred on it (0.003-0.009 shifted 16 or 32 px either way). The second look is a veto, not a second
gate: the demo model's presence moves with the crop for real objects too (the lone tanks of seeds 13 and 14: 0.98
and 0.90 in their grid tiles, 0.41 and 0.26 centred), so asking the centred view to pass the threshold again lost
two of three tanks the search had found. A candidate is dropped only when its centred view is as sure of absence
as the threshold asks a tile to be sure of presence (``sure_absent``). One more forward per candidate the answer
keeps (not per member of a plural).
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


class SecondLook:
    """Presence of a text in windows of ``tile`` px centred on points of the grid (row, col), clamped inside the
    raster so that the view is whole. ``predict_windows(windows [(row, col, side)], pixels, texts)`` -> (prob,
    presence), the engine's way to predict a batch of windows (feature cache, batch backoff). Each (text, window)
    is predicted once per run."""

    def __init__(self, src, tile: int, predict_windows: Callable, batch_size: int = 8,
                 cancelled: Callable[[], bool] = lambda: False):
        self.src, self.tile, self.predict_windows = src, int(tile), predict_windows
        self.batch_size, self.cancelled = max(1, int(batch_size)), cancelled
        self.seen: dict = {}
        self.forwards = 0

    def window(self, row: float, col: float) -> tuple[int, int]:
        """The top-left corner of the tile-sized window centred on (row, col), inside the raster where it fits."""
        half = self.tile / 2
        r = min(max(0, int(round(row - half))), max(0, self.src.grid_height - self.tile))
        c = min(max(0, int(round(col - half))), max(0, self.src.grid_width - self.tile))
        return r, c

    def __call__(self, points: Sequence[tuple[float, float]], text: str, ds=None) -> np.ndarray:
        """Presence [len(points)] of ``text`` in the windows centred on ``points``; ``ds``: an open dataset of the
        source to read through (else it is opened here)."""
        windows = [self.window(r, c) for r, c in points]
        todo = sorted({w for w in windows if (text, w) not in self.seen})
        if todo:
            if ds is None:
                with self.src.open() as opened:
                    self._predict(todo, text, opened)
            else:
                self._predict(todo, text, ds)
        return np.array([self.seen[(text, w)] for w in windows], np.float32)

    def _predict(self, windows: list[tuple[int, int]], text: str, ds) -> None:
        for batch in batched(windows, self.batch_size):
            if self.cancelled():
                raise Cancelled()
            px = np.stack([self.src.read(ds, r, c, self.tile, self.tile)[0] for r, c in batch])
            _, p = self.predict_windows([(r, c, self.tile) for r, c in batch], px, [text])
            self.forwards += len(batch)
            self.seen.update({(text, w): float(p[k, 0]) for k, w in enumerate(batch)})
