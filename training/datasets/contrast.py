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
from .scene import Scene, SceneObject, paint


def nearest_colour(palette: dict, colour: str) -> str:
    """The palette colour closest to ``colour`` (L1 over RGB), ``colour`` itself excluded."""
    ref = np.asarray(palette[colour], np.float32)
    others = [c for c in palette if c != colour]
    return min(others, key=lambda c: float(np.abs(np.asarray(palette[c], np.float32) - ref).sum()))


def recolour(scene: Scene, obj: SceneObject, colour: str) -> np.ndarray | None:
    """``scene.image`` with ``obj`` in ``colour``, its shading kept (``scene.paint``). The generator's own look
    shows the palette's colour; a style family's look (white balance, gamma, stretch) shows it otherwise, so there
    the colour is read off the objects of its class that wear it in the scene, and without one there is no
    faithful repaint (None): the palette's colour painted "orange" roofs yellow and "red" ones purple there."""
    if scene.look is None:
        rgb = np.asarray(PALETTES[obj.cls][colour], np.float32)
    else:
        worn = [scene.labels == o.label for o in scene.objects if o.cls == obj.cls and o.colour == colour]
        if not worn:
            return None
        rgb = np.median(scene.image[np.logical_or.reduce(worn)].astype(np.float32), axis=0)
    image = scene.image.copy()
    paint(image, scene.labels == obj.label, rgb)
    return image


def contrast_pair(scene: Scene, rng: np.random.Generator) -> tuple[Scene, str, list[int]] | None:
    """(the scene with one object repainted, a colour sentence, its target labels) or None when no class with a
    palette has two objects in the scene, or the repaint cannot be faithful (``recolour``)."""
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
        image = recolour(scene, b, near)
        if image is None:
            return None
    objects = [dataclasses.replace(o, colour=near) if o.label == b.label else o for o in scene.objects]
    named = (a.colour, near)[int(rng.integers(2))]
    target = [o.label for o in objects if o.cls == cls and o.colour == named]
    text = colour_text(cls, named, rng, plural=len(target) > 1)
    return dataclasses.replace(scene, image=image, objects=objects), text, target
