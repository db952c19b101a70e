"""A second, closer look: before the scene's answer rests on a candidate, the model judges it again in a window
centred on it and enlarged, as an analyst zooms in to check, and the candidate is dropped when that view is sure it
is not the referent.

A tile's presence is the model's view of one crop of the raster, and the demo model's moves with the crop. On the
val split's 4096 px one-tank mosaics of ``bench/raster_search_cost.py`` (probes, not committed), for "the storage
tank": a small white roof cut by a tile's edge (seed 12) scores 0.993 in its grid tile; in a window half the
tile's side centred on it and enlarged 2x (the scale of the zoomed crops the model trained on,
``training.datasets.synthetic.zoom_in``) it scores 0.02-0.06, while the four real lone tanks score 0.93-1.00 there.

The closer look is a veto, not a second gate. As a gate (at the threshold) it made the bundled sample's absent
"the swimming pools" present: the model is surer of everything seen closer, look-alikes of an unknown word
included. A same-size centred window as a gate lost real tanks (0.26-0.41 centred, against 0.90-0.98 in their
grid tiles). So a candidate is dropped only when its closer view is as sure of absence as the threshold asks a
tile to be sure of presence (``sure_absent``). One forward per candidate an answer keeps (a plural: one for its
class), not per tile.
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


class SecondLook:
    """Presence of a text in windows of ``tile / zoom`` px centred on points of the grid (row, col), clamped inside
    the raster so that the view is whole, and enlarged to the model's input by the predictor.
    ``predict_windows(windows [(row, col, side)], pixels, texts)`` -> (prob, presence), the engine's way to predict
    a batch of windows (feature cache, batch backoff). Each (text, window) is predicted once per run."""

    def __init__(self, src, tile: int, predict_windows: Callable, batch_size: int = 8,
                 cancelled: Callable[[], bool] = lambda: False, zoom: float = ZOOM):
        self.src, self.side, self.predict_windows = src, max(1, int(round(tile / zoom))), predict_windows
        self.batch_size, self.cancelled = max(1, int(batch_size)), cancelled
        self.seen: dict = {}
        self.forwards = 0

    def window(self, row: float, col: float) -> tuple[int, int]:
        """The top-left corner of the window centred on (row, col), inside the raster where it fits."""
        half = self.side / 2
        r = min(max(0, int(round(row - half))), max(0, self.src.grid_height - self.side))
        c = min(max(0, int(round(col - half))), max(0, self.src.grid_width - self.side))
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
            px = np.stack([self.src.read(ds, r, c, self.side, self.side)[0] for r, c in batch])
            _, p = self.predict_windows([(r, c, self.side) for r, c in batch], px, [text])
            self.forwards += len(batch)
            self.seen.update({(text, w): float(p[k, 0]) for k, w in enumerate(batch)})
