"""Raster-scale referring scenes: mosaics of synthetic scenes with sentences judged over the whole mosaic.

A mosaic pastes n x n scenes of the synthetic generator (each drawn from its own seed of the split's stream, so
test mosaics never share a scene with training) into one raster. Its sentences are chosen so that exactly their
target matches over the *whole* mosaic: "the largest building" is the largest of all, "in the top left" means the
mosaic's top-left quarter, and absent referents (classes left out of every scene, classes the generator never draws,
colours no object has) have an empty target. Each sentence carries its kind:

- class: "the buildings"; attribute: "the red-roofed building"; superlative: "the largest building";
- position: "the building in the top left", "the northernmost lake"; count: "the two blue-roofed buildings";
- relation: "the tank next to the lake"; absent: "the airport runway", "the house closest to the lake" (no lake);

and whether its wording is one of the generator's own templates (``template``) or a paraphrase it never uses.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .scene import Scene, SceneObject, paint
from .synthetic import SPLIT_CODES, generate_scene
from .vocabulary import ABSENT_ROOF, ABSENT_VEHICLE, NAMES, NEVER_DRAWN, ROOF_COLOURS, VEHICLE_COLOURS

KINDS = ("class", "attribute", "superlative", "position", "count", "relation", "absent")
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}


@dataclass
class Query:
    text: str
    kind: str
    target: list[int]          # labels in the mosaic's label map; [] = absent
    template: bool             # worded as the generator's own templates word it


@dataclass
class Mosaic:
    image: np.ndarray          # uint8 HxWx3
    labels: np.ndarray         # int32 HxW, 0 = ground
    objects: list[SceneObject] = field(default_factory=list)
    excluded: tuple = ()

    def by_class(self) -> dict[str, list[SceneObject]]:
        """The mosaic's objects grouped by class, in their order."""
        by: dict[str, list[SceneObject]] = {}
        for o in self.objects:
            by.setdefault(o.cls, []).append(o)
        return by

    def mask(self, target: list[int]) -> np.ndarray:
        return np.isin(self.labels, np.asarray(target, dtype=np.int32))


def build_mosaic(seed: int, split: str, index: int, cells: int, scene_size: int = 256, density: float = 1.0,
                 exclude=(), only_cell: tuple | None = None, unique_colours: bool = False) -> Mosaic:
    """cells x cells scenes pasted into one raster. ``exclude``: classes left out of every scene; ``only_cell``:
    (cell index, scene) pasted at that cell instead of a drawn one (used for a one-referent mosaic);
    ``unique_colours``: repaint so that one building and one vehicle each have a colour no other of its class has
    (``plant_unique_colour``)."""
    side = cells * scene_size
    image = np.zeros((side, side, 3), np.uint8)
    labels = np.zeros((side, side), np.int32)
    objects: list[SceneObject] = []
    for k in range(cells * cells):
        if only_cell is not None and only_cell[0] == k:
            sc: Scene = only_cell[1]
        else:
            ss = np.random.SeedSequence([seed, SPLIT_CODES[split], 7000 + index, k])
            sc = generate_scene(ss, scene_size, density, exclude=exclude)
        r0, c0 = (k // cells) * scene_size, (k % cells) * scene_size
        image[r0:r0 + scene_size, c0:c0 + scene_size] = sc.image
        offset = len(objects)
        lab = sc.labels.copy()
        lab[lab > 0] += offset
        labels[r0:r0 + scene_size, c0:c0 + scene_size] = lab
        for o in sc.objects:
            x0, y0, x1, y1 = o.bbox
            objects.append(SceneObject(o.cls, o.label + offset, o.colour, o.orient, o.area, o.cx + c0, o.cy + r0,
                                       (x0 + c0, y0 + r0, x1 + c0, y1 + r0)))
    # labels of objects dropped by the generator (too small) were never listed: keep the map consistent
    known = np.zeros(len(objects) + max((o.label for o in objects), default=0) + 2, bool)
    for o in objects:
        known[o.label] = True
    labels[~known[labels]] = 0
    mosaic = Mosaic(image, labels, objects, tuple(exclude))
    if unique_colours:
        rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], 7000 + index, 99]))
        for cls, palette in (("building", ROOF_COLOURS), ("vehicle", VEHICLE_COLOURS)):
            plant_unique_colour(mosaic, cls, palette, rng)
    return mosaic


def repaint(m: Mosaic, obj: SceneObject, colour: str, palette: dict) -> SceneObject:
    """``obj`` painted in another palette colour, keeping its shading (``scene.paint``)."""
    paint(m.image, m.labels == obj.label, palette[colour])
    return SceneObject(obj.cls, obj.label, colour, obj.orient, obj.area, obj.cx, obj.cy, obj.bbox)


def plant_unique_colour(m: Mosaic, cls: str, palette: dict, rng: np.random.Generator) -> None:
    """Make one object of ``cls`` the only one of its colour (when none is): the others of that colour are repainted
    in the palette's other colours. A mosaic of many scenes rarely has a colour only one object shows, which leaves
    singular attribute sentences ("the red-roofed building") almost unmeasured."""
    idx = [i for i, o in enumerate(m.objects) if o.cls == cls]
    if len(idx) < 3 or 1 in Counter(m.objects[i].colour for i in idx).values():
        return
    colour = list(palette)[int(rng.integers(len(palette)))]
    others = [c for c in palette if c != colour]
    same = [i for i in idx if m.objects[i].colour == colour]
    keep = same[int(rng.integers(len(same)))] if same else idx[int(rng.integers(len(idx)))]
    for i in idx:
        if i == keep and m.objects[i].colour != colour:
            m.objects[i] = repaint(m, m.objects[i], colour, palette)
        elif i != keep and m.objects[i].colour == colour:
            m.objects[i] = repaint(m, m.objects[i], others[int(rng.integers(len(others)))], palette)


def _gap(a: SceneObject, b: SceneObject) -> float:
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    return math.hypot(max(0, bx0 - ax1, ax0 - bx1), max(0, by0 - ay1, ay0 - by1))


def _quadrant(o: SceneObject, side: int, margin: float):
    """(dx, dy) of the object's quarter of the mosaic, None when it lies near a middle line."""
    dx, dy = o.cx - side / 2, side / 2 - o.cy
    if abs(dx) < margin or abs(dy) < margin:
        return None
    return (1 if dx > 0 else -1, 1 if dy > 0 else -1)


_QUADRANT_WORDS = {(-1, 1): ("top left", "north-west"), (1, 1): ("top right", "north-east"),
                   (-1, -1): ("bottom left", "south-west"), (1, -1): ("bottom right", "south-east")}
_EXTREMES = [("north", "top", "cy", 1), ("south", "bottom", "cy", -1), ("west", "left", "cx", 1),
             ("east", "right", "cx", -1)]


def describe_mosaic(m: Mosaic, rng: np.random.Generator) -> list[Query]:
    """Every sentence of each kind that holds over the whole mosaic (absent ones included)."""
    side = m.labels.shape[0]
    by = m.by_class()
    out: list[Query] = []

    def name(cls, plural=False):
        names = NAMES[cls][1 if plural else 0]
        return names[int(rng.integers(len(names)))]

    # class (plurals), template and paraphrase
    for cls in ("building", "tank", "tree", "water", "vehicle"):
        objs = by.get(cls, [])
        if not objs:
            continue
        labels = [o.label for o in objs]
        out.append(Query(f"the {name(cls, True)}", "class", labels, True))
        para = {"building": "every house in the image", "tank": "all oil storage tanks", "tree": "all trees",
                "water": "the water bodies", "vehicle": "every car"}[cls]
        out.append(Query(para, "class", labels, False))
    # attribute (singular, unique colour over the mosaic)
    for cls, palette in (("building", ROOF_COLOURS), ("vehicle", VEHICLE_COLOURS)):
        objs = by.get(cls, [])
        for c in palette:
            sel = [o for o in objs if o.colour == c]
            if len(sel) == 1:
                if cls == "building":
                    out.append(Query(f"the {c}-roofed {name(cls)}", "attribute", [sel[0].label], True))
                    out.append(Query(f"the only building with {'an' if c[0] in 'aeiou' else 'a'} {c} roof", "attribute", [sel[0].label], False))
                else:
                    out.append(Query(f"the {c} {name(cls)}", "attribute", [sel[0].label], True))
            elif len(sel) in NUMBER_WORDS and len(sel) < len(objs):
                word = NUMBER_WORDS[len(sel)]
                if cls == "building":
                    out.append(Query(f"the {word} {c}-roofed buildings", "count", [o.label for o in sel], False))
                else:
                    out.append(Query(f"the {len(sel)} {c} cars", "count", [o.label for o in sel], False))
    # superlatives with a clear margin
    for cls in ("building", "tank", "water", "tree"):
        objs = sorted(by.get(cls, []), key=lambda o: o.area)
        if len(objs) < 2:
            continue
        noun = {"water": "lake"}.get(cls, None)
        if objs[-1].area >= 1.3 * objs[-2].area:
            out.append(Query(f"the largest {noun or name(cls)}", "superlative", [objs[-1].label], noun is None))
            out.append(Query(f"the biggest {noun or 'one of the ' + name(cls, True)}", "superlative",
                             [objs[-1].label], False))
        if objs[1].area >= 1.3 * objs[0].area:
            out.append(Query(f"the smallest {noun or name(cls)}", "superlative", [objs[0].label], noun is None))
    # position: unique object in a quarter of the mosaic; extremes over the mosaic
    margin = side * 0.04
    for cls in ("building", "tank", "water", "tree"):
        objs = by.get(cls, [])
        if len(objs) < 2:
            continue
        quads = [_quadrant(o, side, margin) for o in objs]
        for q, (tmpl, compass) in _QUADRANT_WORDS.items():
            inside = [o for o, qq in zip(objs, quads) if qq == q]
            ambiguous = [o for o, qq in zip(objs, quads) if qq is None and _near_quadrant(o, q, side)]
            if len(inside) == 1 and not ambiguous:
                noun = "lake" if cls == "water" else name(cls)
                out.append(Query(f"the {noun} in the {tmpl}", "position", [inside[0].label], cls != "water"))
                out.append(Query(f"the {compass} {noun}", "position", [inside[0].label], False))
        for compass, image_word, key, sign in _EXTREMES:
            srt = sorted(objs, key=lambda o: sign * getattr(o, key))
            if sign * (getattr(srt[1], key) - getattr(srt[0], key)) >= 15:
                noun = "lake" if cls == "water" else name(cls)
                if rng.random() < 0.5:
                    out.append(Query(f"the {image_word}most {noun}", "position", [srt[0].label], cls != "water"))
                else:
                    out.append(Query(f"the {compass}ernmost {noun}", "position", [srt[0].label], False))
    # relations: the only object of a class next to water / a road (others clearly away)
    for anchor_cls, anchor_word in (("water", "the lake"), ("road", "the road")):
        anchors = by.get(anchor_cls, [])
        if not anchors:
            continue
        for cls in ("tank", "building", "tree"):
            objs = by.get(cls, [])
            if len(objs) < 2:
                continue
            gaps = [min(_gap(o, a) for a in anchors) for o in objs]
            near = [o for o, g in zip(objs, gaps) if g <= 8]
            if len(near) == 1 and all(g <= 8 or g >= 40 for g in gaps):
                out.append(Query(f"the {name(cls)} next to {anchor_word}", "relation", [near[0].label],
                                 anchor_cls == "road"))
                out.append(Query(f"the {name(cls)} right beside {anchor_word}", "relation", [near[0].label], False))
    # absent referents
    for cls in m.excluded:
        if cls == "water":
            out.append(Query("the lake", "absent", [], True))
        else:
            out.append(Query(f"the {name(cls, True)}", "absent", [], True))
    picks = rng.choice(len(NEVER_DRAWN), size=3, replace=False)
    out += [Query(NEVER_DRAWN[i], "absent", [], False) for i in picks]
    if by.get("building"):
        out.append(Query(f"the {ABSENT_ROOF[int(rng.integers(len(ABSENT_ROOF)))]}-roofed building", "absent", [],
                         True))
    if by.get("vehicle"):
        out.append(Query(f"the {ABSENT_VEHICLE[int(rng.integers(len(ABSENT_VEHICLE)))]} car", "absent", [], False))
    out += _relations_to_one(by, name)
    out += _relations_to_absent(m, by)
    return out


def _relations_to_absent(m: Mosaic, by: dict[str, list[SceneObject]]) -> list[Query]:
    """Absent referents described by a relation to something the mosaic lacks: a class left out everywhere (water,
    tanks) or a roof colour no building has. Nothing is next to it, whatever else the mosaic holds."""
    subjects = [c for c in ("building", "tree", "vehicle") if by.get(c)]
    if not subjects:
        return []
    first, last = NAMES[subjects[0]][0][0], NAMES[subjects[-1]][0][0]
    out = []
    if "water" in m.excluded:
        out.append(Query(f"the {first} closest to the lake", "absent", [], True))
    if "tank" in m.excluded:
        out.append(Query(f"the {last} nearest the storage tank", "absent", [], False))
    if by.get("building"):
        out.append(Query(f"the {last} next to the {ABSENT_ROOF[0]}-roofed building", "absent", [], False))
    return out


def _closest_clear(objs: list[SceneObject], anchors: list[SceneObject]) -> SceneObject | None:
    """The object of ``objs`` nearest any of ``anchors`` (bounding-box gap) when the runner-up is clearly further
    (twice the gap and 8 px more, so that outline and box distances agree on the order), else None."""
    gaps = sorted((min(_gap(o, a) for a in anchors), k) for k, o in enumerate(objs))
    if len(gaps) >= 2 and gaps[1][0] >= 2 * gaps[0][0] + 16:
        return objs[gaps[0][1]]
    return None


def _relations_to_one(by: dict[str, list[SceneObject]], name) -> list[Query]:
    """Relations whose anchor is itself singled out: the object nearest the lakes or the roads of the mosaic,
    nearest its only red-roofed building or nearest its largest lake (an anchor that is itself a referring
    expression). Each holds only with a clear margin (``_closest_clear``)."""
    out: list[Query] = []
    anchors = [("the lake", by.get("water", []), True), ("the road", by.get("road", []), False)]
    for c in ROOF_COLOURS:
        sel = [o for o in by.get("building", []) if o.colour == c]
        if len(sel) == 1:
            anchors.append((f"the {c}-roofed building", sel, False))
    lakes = sorted(by.get("water", []), key=lambda o: -o.area)
    if len(lakes) >= 2 and lakes[0].area >= 1.3 * lakes[1].area:
        anchors.append(("the largest lake", lakes[:1], False))
    for anchor_words, anchor, template in anchors:
        if not anchor:
            continue
        for cls in ("tank", "building", "tree", "vehicle"):
            objs = [o for o in by.get(cls, []) if o not in anchor]
            target = _closest_clear(objs, anchor) if len(objs) >= 2 else None
            if target is not None:
                word = "closest to" if template else "nearest"
                out.append(Query(f"the {name(cls)} {word} {anchor_words}", "relation", [target.label], template))
    return out


def _near_quadrant(o: SceneObject, q: tuple, side: int) -> bool:
    """An object on a middle line that borders quarter q (it could be read as lying in it)."""
    dx, dy = o.cx - side / 2, side / 2 - o.cy
    return (dx == 0 or np.sign(dx) == q[0] or abs(dx) < side * 0.04) and \
        (dy == 0 or np.sign(dy) == q[1] or abs(dy) < side * 0.04)


def _nth_clear(objs: list[SceneObject], key, gap: float) -> SceneObject | None:
    """The second of ``objs`` ranked by ``key`` (ascending) when it is clearly apart from the first and the third
    (by ``gap`` in key units), else None."""
    srt = sorted(objs, key=key)
    if len(srt) < 2 or key(srt[1]) - key(srt[0]) < gap or (len(srt) > 2 and key(srt[2]) - key(srt[1]) < gap):
        return None
    return srt[1]


def _ranked_margin(values: list[float]) -> tuple[int, float]:
    """The index of the lowest value and how far the next lowest lies behind it (0 with fewer than two)."""
    if len(values) < 2:
        return 0, 0.0
    order = np.argsort(values)
    return int(order[0]), float(values[order[1]] - values[order[0]])


def _points_of_the_picture(by: dict[str, list[SceneObject]], side: int, gap: float = 16) -> list[Query]:
    """One sentence of each form where an object is clearly (``gap`` px, the clearest class and corner) ahead of the
    next: "the building closest to the top right corner of the image", "the tank nearest the centre of the image",
    "the tree furthest from the middle of the image"."""
    corners = {"top left": (0, 0), "top right": (side, 0), "bottom left": (0, side), "bottom right": (side, side)}
    forms = {"the {n} closest to the {w} corner of the image": [(w, x, y, 1) for w, (x, y) in corners.items()],
             "the {n} nearest the centre of the image": [("", side / 2, side / 2, 1)],
             "the {n} furthest from the middle of the image": [("", side / 2, side / 2, -1)]}
    out = []
    for ask, points in forms.items():
        best = None
        for cls in ("building", "tank", "tree"):
            objs = by.get(cls, [])
            for w, x, y, sign in points:
                k, margin = _ranked_margin([sign * math.hypot(o.cx - x, o.cy - y) for o in objs])
                if margin >= gap and (best is None or margin > best[0]):
                    best = (margin, ask.format(n=NAMES[cls][0][0], w=w), objs[k].label)
        if best is not None:
            out.append(Query(best[1], "position", [best[2]], False))
    return out


def _beyond(o: SceneObject, a: SceneObject, side: tuple, margin: float) -> bool:
    """``o`` lies wholly past ``a``'s bounding box on ``side`` ((dx, dy), y to the top), by ``margin`` px."""
    ox0, oy0, ox1, oy1 = o.bbox
    ax0, ay0, ax1, ay1 = a.bbox
    dx, dy = side
    return ((dx == 0 or (ox0 > ax1 + margin if dx > 0 else ox1 < ax0 - margin)) and
            (dy == 0 or (oy1 < ay0 - margin if dy > 0 else oy0 > ay1 + margin)))


def _edges(labels: np.ndarray, objs: list[SceneObject]) -> dict[int, np.ndarray]:
    """Per object's label, its edge pixels (row, col): the pixels of its mask with a 4-neighbour outside it."""
    out = {}
    for o in objs:
        mask = labels == o.label
        inner = mask.copy()
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        out[o.label] = np.argwhere(mask & ~inner).astype(np.float32)
    return out


def _pixel_gaps(edges: dict[int, np.ndarray], objs: list[SceneObject], anchors: list[SceneObject]) -> np.ndarray:
    """Per object, the least distance in pixels between its edge pixels and those of any anchor (``edges``:
    ``_edges`` of both): an outline's distance, as the engine measures polygons, to within a pixel."""
    anchor_px = np.concatenate([edges[a.label] for a in anchors])
    out = []
    for o in objs:
        px = edges[o.label]
        out.append(min(float(np.sqrt(((px[k:k + 256, None] - anchor_px[None]) ** 2).sum(-1).min()))
                       for k in range(0, len(px), 256)))
    return np.asarray(out)


def _between_clear(edges: dict[int, np.ndarray], objs: list[SceneObject],
                   lakes: list[SceneObject]) -> SceneObject | None:
    """The object on the way between the mosaic's two lakes (or its two largest, clearly larger than the third):
    its outline distances to them add up to at most a fifth of theirs to each other (4 px at least) more than that,
    and every other object's to twice as much and 16 px more; None when there is no such pair or object."""
    big = sorted(lakes, key=lambda o: -o.area)
    if len(objs) < 2 or len(big) < 2 or (len(big) > 2 and big[1].area < 1.3 * big[2].area):
        return None
    a, b = big[:2]
    gap_ab = float(_pixel_gaps(edges, [a], [b])[0])
    detour = _pixel_gaps(edges, objs, [a]) + _pixel_gaps(edges, objs, [b]) - gap_ab
    best, runner_up = np.sort(detour)[:2]
    if best <= max(4.0, 0.2 * gap_ab) and runner_up >= max(2 * best, best + 16):
        return objs[int(np.argmin(detour))]
    return None


def _round_cut(values: list[float], ratio: float = 1.5, above: int = 2, step: float = 0.0) -> float | None:
    """A round value (two significant digits) in the widest gap of ``values`` (sorted neighbours at least ``ratio``
    and ``step`` apart), with at least ``above`` values above it and one below; None when there is none."""
    srt = sorted(values)
    gaps = [(srt[k + 1] / srt[k], k) for k in range(len(srt) - above)
            if srt[k] > 0 and srt[k + 1] / srt[k] >= ratio and srt[k + 1] - srt[k] >= step]
    if not gaps:
        return None
    _, k = max(gaps)
    cut = float(f"{math.sqrt(srt[k] * srt[k + 1]):.2g}")
    return cut if srt[k] < cut < srt[k + 1] else None


def describe_beyond(m: Mosaic, m2_per_px: float = 0.25) -> list[Query]:
    """Sentences in wordings the generator's templates never use and the engine's grammar reads since e0f088f:
    requests around the description ("where is the red car?"), ordinals ("the second largest building", "the
    second tree from the left"), the middle of the mosaic ("the tank in the centre"), comparatives ("the larger of
    the two lakes", "the smaller of the two buildings with red roofs"), corners and the centre as points ("the
    building closest to the top right corner of the image"), relations by side and distance ("the building north
    of the lake", "the tree closest to / furthest from the lake"), lists ("the storage tanks and the trees") and
    areas ("the buildings larger than 120 m2", at ``m2_per_px``), each of a kind of ``describe_mosaic`` and none
    drawn at random."""
    side = m.labels.shape[0]
    by = m.by_class()
    out: list[Query] = []
    for cls in ("building", "tank", "tree", "vehicle"):
        if by.get(cls):
            out.append(Query(f"show me all the {NAMES[cls][1][0]}", "class", [o.label for o in by[cls]], False))
    if by.get("tank") and by.get("tree"):
        out.append(Query("the storage tanks and the trees", "class", [o.label for o in by["tank"] + by["tree"]],
                         False))
    for cls in ("building", "water"):
        objs = by.get(cls, [])
        cut = _round_cut([o.area * m2_per_px for o in objs]) if len(objs) >= 3 else None
        if cut is not None:
            noun = "lakes" if cls == "water" else "buildings"
            out.append(Query(f"the {noun} larger than {cut:g} m2", "class",
                             [o.label for o in objs if o.area * m2_per_px > cut], False))
    for cls, palette, ask in (("building", ROOF_COLOURS, "find the building with the {c} roof"),
                              ("vehicle", VEHICLE_COLOURS, "where is the {c} car?")):
        objs = by.get(cls, [])
        for c in palette:
            sel = [o for o in objs if o.colour == c]
            if len(sel) == 1:
                out.append(Query(ask.format(c=c), "attribute", [sel[0].label], False))
            elif len(sel) in NUMBER_WORDS and len(sel) < len(objs) and cls == "building":
                out.append(Query(f"could you outline the {NUMBER_WORDS[len(sel)]} buildings with {c} roofs?",
                                 "count", [o.label for o in sel], False))
                if len(sel) == 2 and max(o.area for o in sel) >= 1.2 * min(o.area for o in sel):
                    out.append(Query(f"the smaller of the two buildings with {c} roofs", "superlative",
                                     [min(sel, key=lambda o: o.area).label], False))
    for cls in ("building", "tank", "tree", "water"):
        objs = by.get(cls, [])
        noun = "lake" if cls == "water" else NAMES[cls][0][0]
        big = sorted(objs, key=lambda o: -o.area)  # the second largest, 1.2x apart from the first and the third
        if len(big) >= 2 and big[0].area >= 1.2 * big[1].area and (len(big) < 3 or big[1].area >= 1.2 * big[2].area):
            out.append(Query(f"the second largest {noun}", "superlative", [big[1].label], False))
        if len(objs) >= 2:
            for word, key in (("left", lambda o: o.cx), ("top", lambda o: o.cy)):
                second = _nth_clear(objs, key, 15)
                if second is not None:
                    out.append(Query(f"the second {noun} from the {word}", "position", [second.label], False))
            centre = [o for o in objs if max(abs(o.cx - side / 2), abs(o.cy - side / 2)) <= side / 4]
            near = [o for o in objs if abs(max(abs(o.cx - side / 2), abs(o.cy - side / 2)) - side / 4) < side * 0.04]
            if len(centre) == 1 and not near:
                out.append(Query(f"the {noun} in the centre", "position", [centre[0].label], False))
        if len(objs) == 2 and max(o.area for o in objs) >= 1.2 * min(o.area for o in objs):
            out.append(Query(f"the larger of the two {'lakes' if cls == 'water' else NAMES[cls][1][0]}",
                             "superlative", [max(objs, key=lambda o: o.area).label], False))
    out += _points_of_the_picture(by, side)
    for cls in ("building", "tank", "tree"):
        objs = by.get(cls, [])
        lakes = by.get("water", [])
        if len(objs) < 2 or not lakes:
            continue
        for word, way in (("north", (0, 1)), ("south", (0, -1)), ("east", (1, 0)), ("west", (-1, 0))):
            past = [o for o in objs if any(_beyond(o, a, way, 4) for a in lakes)]
            doubt = [o for o in objs if o not in past and any(_beyond(o, a, way, -8) for a in lakes)]
            if len(past) == 1 and not doubt:
                out.append(Query(f"the {NAMES[cls][0][0]} {word} of the lake", "relation", [past[0].label], False))
        closest = _closest_clear(objs, lakes)
        if closest is not None:
            out.append(Query(f"the {NAMES[cls][0][0]} closest to the lake", "relation", [closest.label], False))
        gaps = sorted((min(_gap(o, a) for a in lakes), k) for k, o in enumerate(objs))
        if gaps[-1][0] >= gaps[-2][0] + 40:
            out.append(Query(f"the {NAMES[cls][0][0]} furthest from the lake", "relation",
                             [objs[gaps[-1][1]].label], False))
        edges = _edges(m.labels, objs + lakes)
        on_way = _between_clear(edges, objs, lakes)
        if on_way is not None:
            out.append(Query(f"the {NAMES[cls][0][0]} between the two {'largest ' if len(lakes) > 2 else ''}lakes",
                             "relation", [on_way.label], False))
        metres = _pixel_gaps(edges, objs, lakes) * math.sqrt(m2_per_px)  # 8 px apart: outlines drawn a pixel
        cut = _round_cut(list(metres), above=1, step=8 * math.sqrt(m2_per_px))  # off do not cross the cut
        if cut is not None:
            out.append(Query(f"the {NAMES[cls][1][0]} within {cut:g} m of the lake", "relation",
                             [o.label for o, d in zip(objs, metres) if d < cut], False))
    for cls in m.excluded:
        out.append(Query("where is the lake?" if cls == "water" else f"where are the {NAMES[cls][1][-1]}?",
                         "absent", [], False))
    out += [Query(ask.format(t=t), "absent", [], False)
            for ask, t in zip(("show me {t}, please", "can you find {t}?") * 2, NEVER_DRAWN[:4])]
    return out
