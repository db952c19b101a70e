"""A synthetic scene as drawn: the image, its label map and the objects it lists."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .styles import Look


@dataclass
class SceneObject:
    cls: str
    label: int  # value in the scene's label map
    colour: str | None = None
    orient: str | None = None  # roads: "horizontal" / "vertical"
    area: int = 0
    cx: float = 0.0
    cy: float = 0.0
    bbox: tuple = (0, 0, 0, 0)  # x0, y0, x1, y1 (inclusive-exclusive)


@dataclass
class Scene:
    image: np.ndarray  # uint8 HxWx3
    labels: np.ndarray  # int32 HxW, 0 = ground
    objects: list[SceneObject] = field(default_factory=list)
    # classes with objects too small to list (a few pixels after a look's resampling): neither present nor absent
    faint: frozenset = frozenset()
    look: Look | None = None

    def mask(self, target: list[int]) -> np.ndarray:
        return np.isin(self.labels, np.asarray(target, dtype=np.int32))


def paint(image: np.ndarray, px: np.ndarray, rgb) -> None:
    """Paint the pixels ``px`` of ``image`` (in place) in ``rgb``, keeping their shading (ridge, lit half, noise) as
    a brightness factor relative to their median brightness. A per-channel gain would blow up the channels a
    colour barely has (a blue roof's red) into noise and clipping."""
    luma = image[px].astype(np.float32).mean(axis=1)
    factor = np.clip(luma / max(float(np.median(luma)), 1.0), 0.6, 1.3)[:, None]
    image[px] = np.clip(np.asarray(rgb, np.float32) * factor, 0, 255).astype(np.uint8)
