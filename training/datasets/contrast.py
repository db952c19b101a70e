"""Contrast pairs: a scene where two objects of a class wear the two palette colours nearest each other, and a
sentence about one of them.

Small training scenes hold one or two buildings, so a sentence rarely has to tell apart two colours that look
alike: the demo learned "warm roof" for both "red" and "orange" (token embeddings 0.86 cosine; the same mask for
either word on every roof of the val and test mosaics). Here one object is repainted into the palette colour
nearest another's (by RGB distance: whatever pair is closest, not a fixed list), so both show in one image, and the
sentence names one colour; its target is every object of the class in that colour.

RGB distance is not what a model confuses: the demo reads red cars as yellow, while red's nearest car colour is
black. Given the pairs a model confuses (``confused_pairs``, from ``training.colour_confusion``'s measurement), a
pair shows one of those instead, whenever the scene has two objects of such a class.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .negatives import PALETTES, colour_text
from .scene import Scene, SceneObject, paint


def nearest_colour(palette: dict, colour: str) -> str:
    """The palette colour closest to ``colour`` (L1 over RGB), ``colour`` itself excluded."""
    ref = np.asarray(palette[colour], np.float32)
    others = [c for c in palette if c != colour]
    return min(others, key=lambda c: float(np.abs(np.asarray(palette[c], np.float32) - ref).sum()))


def confused_pairs(measured: str | Path, share: float = 0.5) -> dict[str, list[tuple[str, str]]]:
    """class -> colour pairs a model confuses, from ``training.colour_confusion --json``'s matrices: (a, b) where
    objects wearing ``a`` are read as ``b`` at least ``share`` times as often as they are read as ``a``."""
    classes = json.loads(Path(measured).read_text())["classes"]
    out: dict[str, list[tuple[str, str]]] = {}
    for cls, m in classes.items():
        colours, counts = m["colours"], np.asarray(m["counts"], np.float64)
        pairs = {tuple(sorted((colours[i], colours[j]))) for i in range(len(colours)) for j in range(len(colours))
                 if i != j and counts[i, i] > 0 and counts[i, j] >= share * counts[i, i]}
        if pairs:
            out[cls] = sorted(pairs)
    return out


def confused_spec(spec: str | Path | dict | None) -> dict[str, list[tuple[str, str]]] | None:
    """The confused pairs a data option names: a measurement file (``confused_pairs``), the pairs themselves
    ({class: [[a, b], ...]}, e.g. one class's only), or None."""
    if not spec:
        return None
    if isinstance(spec, dict):
        return {cls: [tuple(pair) for pair in pairs] for cls, pairs in spec.items()}
    return confused_pairs(spec)


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


def contrast_pair(scene: Scene, rng: np.random.Generator,
                  confused: dict[str, list[tuple[str, str]]] | None = None) -> tuple[Scene, str, list[int]] | None:
    """(the scene with objects repainted, a colour sentence, its target labels) or None when no class with a
    palette has two objects in the scene, or the repaint cannot be faithful (``recolour``). ``confused``
    (``confused_spec``): only classes with confused colours make pairs, two of their objects shown in one confused
    pair; without it one object is repainted into the colour nearest another's."""
    by_cls = {cls: [o for o in scene.objects if o.cls == cls and o.colour in pal]
              for cls, pal in PALETTES.items() if cls not in scene.faint}
    classes = sorted(cls for cls, objs in by_cls.items() if len(objs) >= 2)
    if not classes:
        return None
    if confused is not None:  # only the confused classes make pairs
        confused = {cls: pairs for cls, pairs in confused.items() if pairs and cls in classes}
        if not confused:
            return None
    pool = sorted(confused or classes)
    cls = pool[int(rng.integers(len(pool)))]
    objs = by_cls[cls]
    if confused:
        pair = confused[cls][int(rng.integers(len(confused[cls])))]
        colours = pair if rng.random() < 0.5 else pair[::-1]
        a = _wearing(objs, colours[0], rng, [])
        b = _wearing(objs, colours[1], rng, [a])
    else:
        a, b = (objs[i] for i in rng.choice(len(objs), size=2, replace=False))
        colours = (a.colour, nearest_colour(PALETTES[cls], a.colour))
    shown = scene
    for o, colour in zip((a, b), colours):
        if o.colour != colour:  # one at a time: the second repaint reads colours off the first's result
            image = recolour(shown, o, colour)
            if image is None:
                return None
            shown = dataclasses.replace(shown, image=image, objects=[
                dataclasses.replace(x, colour=colour) if x.label == o.label else x for x in shown.objects])
    named = colours[int(rng.integers(2))]
    target = [o.label for o in shown.objects if o.cls == cls and o.colour == named]
    text = colour_text(cls, named, rng, plural=len(target) > 1)
    return shown, text, target


def _wearing(objs: list[SceneObject], colour: str, rng: np.random.Generator, taken: list) -> SceneObject:
    """An object of ``objs`` not in ``taken``, one already wearing ``colour`` when there is one (fewer repaints)."""
    free = [o for o in objs if all(o.label != t.label for t in taken)]
    wearing = [o for o in free if o.colour == colour] or free
    return wearing[int(rng.integers(len(wearing)))]
