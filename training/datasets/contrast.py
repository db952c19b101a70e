"""Contrast pairs: a scene where two objects of a class wear the two palette colours nearest each other, and a
sentence about one of them.

Small training scenes hold one or two buildings, so a sentence rarely has to tell apart two colours that look
alike: the demo learned "warm roof" for both "red" and "orange" (token embeddings 0.86 cosine; the same mask for
either word on every roof of the val and test mosaics). Here one object is repainted into the palette colour
nearest another's (by RGB distance: whatever pair is closest, not a fixed list), so both show in one image, and the
sentence names one colour; its target is every object of the class in that colour.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .negatives import PALETTES, colour_text
from .scene import Scene, SceneObject
from .synthetic import Expression


def nearest_colour(palette: dict, colour: str) -> str:
    """The palette colour closest to ``colour`` (L1 over RGB), ``colour`` itself excluded."""
    ref = np.asarray(palette[colour], np.float32)
    others = [c for c in palette if c != colour]
    return min(others, key=lambda c: float(np.abs(np.asarray(palette[c], np.float32) - ref).sum()))


def recolour(scene: Scene, obj: SceneObject, colour: str, palette: dict) -> np.ndarray:
    """``scene.image`` with ``obj`` in ``colour``: each channel scaled by the ratio of the two palette colours, so
    the object keeps its shading, noise and the look's white balance (an approximation under a look's gamma)."""
    gain = (np.asarray(palette[colour], np.float32) + 1.0) / (np.asarray(palette[obj.colour], np.float32) + 1.0)
    image = scene.image.copy()
    px = scene.labels == obj.label
    image[px] = np.clip(image[px].astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
    return image


def contrast_pair(scene: Scene, rng: np.random.Generator) -> tuple[Scene, Expression] | None:
    """(the scene with one object repainted, a colour sentence) or None when no class with a palette has two
    objects in the scene."""
    by_cls = {cls: [o for o in scene.objects if o.cls == cls and o.colour in pal]
              for cls, pal in PALETTES.items() if cls not in scene.faint}
    classes = sorted(cls for cls, objs in by_cls.items() if len(objs) >= 2)
    if not classes:
        return None
    cls = classes[int(rng.integers(len(classes)))]
    palette = PALETTES[cls]
    objs = by_cls[cls]
    a, b = (objs[i] for i in rng.choice(len(objs), size=2, replace=False))
    near = nearest_colour(palette, a.colour)
    image = scene.image
    if b.colour != near:
        image = recolour(scene, b, near, palette)
    objects = [dataclasses.replace(o, colour=near) if o.label == b.label else o for o in scene.objects]
    named = (a.colour, near)[int(rng.integers(2))]
    target = [o.label for o in objects if o.cls == cls and o.colour == named]
    text = colour_text(cls, named, rng, plural=len(target) > 1)
    return dataclasses.replace(scene, image=image, objects=objects), Expression(text, target, "colour", 1)
