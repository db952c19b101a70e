"""A synthetic referring-segmentation set, generated on the fly from a fixed seed.

Aerial-like scenes (textured ground, roads with lane marks, a water body, buildings with coloured roofs and
shadows, storage tanks, vehicles on the roads, trees) and sentences that refer to objects by class, colour, size,
position and relation, e.g. "the largest red-roofed building in the top left" or "the tank next to the road".
Every sentence is checked against the scene: it must select exactly its target (a filter that would be ambiguous
for some object, such as a building straddling the middle line for "in the top left", disqualifies the sentence).

Ground truth is the *visible* pixels of the target objects (a car on a road is cut out of the road's mask).
Splits draw scenes from disjoint seed streams (`SeedSequence([seed, split_code, scene])`), so train, val and test
never share a scene. Nothing is stored on disk; the same (seed, split, index) always gives the same sample.

Curriculum levels (what sentences a sample may carry):
- 0: class-level only ("the storage tanks", "the buildings", "the water");
- 1: + colour and size ("the red-roofed building", "the smallest tank", "the blue cars");
- 2: + position, relation and combinations ("the largest building in the top left", "the tank next to the road").
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .common import RefDataset, resize_image, resize_mask
from .contrast import confused_spec, contrast_pair
from .negatives import lookalike_spec, negative_sentence
from .scene import Scene, SceneObject
from .styles import FAMILIES, HELD_OUT, NATIVE_GSD, Look, develop, sample_look
from .vocabulary import NAMES, ROOF_COLOURS, VEHICLE_COLOURS

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

GROUNDS = [(98, 122, 70), (132, 128, 96), (118, 108, 86), (110, 128, 84)]

# singular, plural and synonyms per class
REGIONS = ["top left", "top right", "bottom left", "bottom right", "top", "bottom", "left", "right"]


# ---------------------------------------------------------------------------------------------------- drawing


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    small = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def _blob_polygon(rng, cx, cy, r, n=18):
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.65, 1.2, n)
    return [(float(cx + rr * np.cos(a)), float(cy + rr * np.sin(a))) for a, rr in zip(angles, radii, strict=True)]


def _canvas(h, w) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    m = Image.new("L", (w, h), 0)
    return m, ImageDraw.Draw(m)


def _ellipse_mask(h, w, box) -> np.ndarray:
    m, d = _canvas(h, w)
    d.ellipse(box, fill=1)
    return np.asarray(m) > 0


def _polygon_mask(h, w, poly) -> np.ndarray:
    m, d = _canvas(h, w)
    d.polygon(poly, fill=1)
    return np.asarray(m) > 0


def _outline_mask(h, w, poly, width: int) -> np.ndarray:
    m, d = _canvas(h, w)
    d.line(poly + [poly[0]], fill=1, width=width)
    return np.asarray(m) > 0


EXCLUDABLE = ("water", "building", "tank", "vehicle", "tree", "road")  # no road: no vehicle either


def _shift(m: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The mask moved by (dx, dy) pixels, what leaves the frame dropped."""
    h, w = m.shape
    out = np.zeros_like(m)
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = m[max(0, -dy):h - max(0, dy),
                                                                  max(0, -dx):w - max(0, dx)]
    return out


def generate_scene(seed, size: int | tuple[int, int] = 256, density: float = 1.0, exclude=(),
                   look: Look | None = None) -> Scene:
    """One aerial-like scene. `seed`: int or SeedSequence; `size`: side or (h, w); `density` scales object counts
    (counts are given for 256x256 and grow with the area); `exclude`: classes left out of the scene (of
    EXCLUDABLE; the rest is drawn as without it): scenes where a referent is absent. `look`: a style family's draw
    (styles.py): the scene is drawn at the native scale over the ground the look's gsd covers, developed with its
    radiometry and resampled to `size`; None draws the generator's own look (the same bytes as before looks)."""
    exclude = frozenset(exclude)
    if not exclude <= set(EXCLUDABLE):
        raise ValueError(f"cannot exclude {sorted(exclude - set(EXCLUDABLE))}; excludable: {EXCLUDABLE}")
    rng = np.random.default_rng(seed)
    out_hw = (size, size) if isinstance(size, int) else tuple(size)
    h, w = out_hw
    if look is not None:  # the native canvas that covers the look's ground extent
        h, w = (max(32, int(round(n * look.gsd / NATIVE_GSD))) for n in out_hw)
    scale = density * (h * w) / (256 * 256)

    def count(lo, hi):
        return int(round(rng.integers(lo, hi + 1) * scale))

    # ground: base colour + coarse and fine texture
    grounds = GROUNDS if look is None else look.grounds
    base = np.array(grounds[rng.integers(len(grounds))], np.float32) + rng.normal(0, 6, 3)
    tex = 14 * _smooth_noise(rng, h, w, max(4, w // 32)) + 6 * _smooth_noise(rng, h, w, max(8, w // 8))
    if look is not None:
        tex *= look.texture
    img = base[None, None, :] + tex[..., None] * np.array([1.0, 1.1, 0.8], np.float32)
    labels = np.zeros((h, w), np.int32)
    occupied = np.zeros((h, w), bool)
    objects: list[SceneObject] = []

    def add(cls, m, colour=None, orient=None):
        obj = SceneObject(cls=cls, label=len(objects) + 1, colour=colour, orient=orient)
        labels[m] = obj.label
        objects.append(obj)
        return obj

    def free(m, margin=3):
        if margin:
            ys, xs = np.nonzero(m)
            if len(ys) == 0:
                return False
            y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + margin + 1)
            x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + margin + 1)
            return not occupied[y0:y1, x0:x1].any()
        return not (occupied & m).any()

    def shade(m, factor):
        img[m] *= factor

    # water body (0-1 per 256^2)
    if "water" not in exclude and (rng.random() < 0.55 * min(1.0, scale) or (scale > 1 and rng.random() < 0.8)):
        for _ in range(max(1, int(round(scale * 0.2)))):
            for _try in range(20):
                r = rng.uniform(0.09, 0.17) * min(h, w) / max(1.0, math.sqrt(scale) * 0.8)
                r = max(r, 18)
                cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
                poly = _blob_polygon(rng, cx, cy, r)
                m = _polygon_mask(h, w, poly)
                if free(m, 0):
                    col = np.array(look.water if look else (34, 62, 92), np.float32) + rng.normal(0, 5, 3)
                    wave = 5 * _smooth_noise(rng, h, w, max(6, w // 16))
                    img[m] = col + wave[m][:, None]
                    # shore: slightly darker, wet ring
                    ring = _outline_mask(h, w, poly, 3) & ~m
                    shade(ring, 0.8)
                    occupied[m] = True
                    add("water", m)
                    break

    # roads: 1-2 per 256 (straight, axis-aligned), dashed centre line
    n_roads = 0 if "road" in exclude else max(1, int(round(rng.integers(1, 3) * math.sqrt(scale))))
    road_objs = []
    for _ in range(n_roads):
        for _try in range(20):
            orient = "horizontal" if rng.random() < 0.5 else "vertical"
            rw = int(rng.integers(11, 17))
            span = h if orient == "horizontal" else w
            pos = int(rng.integers(rw + 8, span - rw - 8))
            if orient == "horizontal":
                m = np.zeros((h, w), bool)
                m[pos - rw // 2: pos - rw // 2 + rw, :] = True
            else:
                m = np.zeros((h, w), bool)
                m[:, pos - rw // 2: pos - rw // 2 + rw] = True
            # roads may cross each other but not the water; keep parallel roads apart
            blocked = (labels > 0) & np.isin(labels, [o.label for o in objects if o.cls == "water"])
            if (m & blocked).any():
                continue
            near = False
            for ro in road_objs:
                if ro.orient == orient:
                    p0 = ro.cy if orient == "horizontal" else ro.cx
                    near = near or abs(p0 - pos) < 50
            if near:
                continue
            grey = (look.road_grey if look else 112) + rng.normal(0, 6)
            img[m] = grey + 4 * _smooth_noise(rng, h, w, 32)[m][:, None]
            # dashed centre line
            line = np.zeros((h, w), bool)
            dash = np.arange(span if orient == "vertical" else w)
            on = (dash // 8) % 2 == 0
            if orient == "horizontal":
                line[pos, :] = on[:w]
            else:
                line[:, pos] = on[:h]
            img[line] = (205, 200, 170)
            occupied[m] = True
            obj = add("road", m, orient=orient)
            obj.cx, obj.cy = (w / 2, pos) if orient == "horizontal" else (pos, h / 2)
            road_objs.append(obj)
            break

    def place_rect(bw, bh, margin):
        for _try in range(30):
            x0 = int(rng.integers(2, max(3, w - bw - 2)))
            y0 = int(rng.integers(2, max(3, h - bh - 2)))
            m = np.zeros((h, w), bool)
            m[y0:y0 + bh, x0:x0 + bw] = True
            if free(m, margin):
                return m, (x0, y0, x0 + bw, y0 + bh)
        return None, None

    sdx, sdy = int(rng.integers(3, 6)), int(rng.integers(3, 6))  # sun: shadows fall to the bottom right
    dark = 1.0
    if look is not None:
        sdx, sdy = look.shadow
        dark = look.shadow_dark
    reach = sdx if look is None else max(abs(sdx), abs(sdy))  # the generator's own margin reads sdx alone

    # buildings
    for _ in range(0 if "building" in exclude else count(2, 6)):
        bw, bh = int(rng.integers(14, 44)), int(rng.integers(14, 44))
        m, box = place_rect(bw, bh, margin=reach + 3)
        if m is None:
            continue
        colour = list(ROOF_COLOURS)[rng.integers(len(ROOF_COLOURS))]
        x0, y0, x1, y1 = box
        if look is not None and rng.random() < look.l_shaped:  # an L: one corner quarter cut away
            cut = np.zeros((h, w), bool)
            cy0, cx0 = (y0, y0 + bh // 2)[rng.integers(2)], (x0, x0 + bw // 2)[rng.integers(2)]
            cut[cy0:cy0 + bh // 2, cx0:cx0 + bw // 2] = True
            m = m & ~cut
        shadow = _shift(m, sdx, sdy)
        shade(shadow & ~m & ~occupied, 0.55 * dark)
        col = np.array(ROOF_COLOURS[colour], np.float32) + rng.normal(0, 8, 3)
        img[m] = col
        # ridge along the long side, lit/shaded halves
        ridge = np.zeros((h, w), bool)
        half = np.zeros((h, w), bool)
        if bw >= bh:
            half[y0:(y0 + y1) // 2, x0:x1] = True
            ridge[y0 + bh // 2, x0:x1] = True
        else:
            half[y0:y1, x0:(x0 + x1) // 2] = True
            ridge[y0:y1, x0 + bw // 2] = True
        img[ridge & m] *= 0.75
        img[half & m] *= 1.08
        occupied[m | shadow] = True
        add("building", m, colour=colour)

    # storage tanks: in a cluster
    n_tanks = count(0, 4) if rng.random() < 0.8 and "tank" not in exclude else 0
    if n_tanks:
        ccx, ccy = rng.uniform(30, w - 30), rng.uniform(30, h - 30)
        n_clusters = max(1, int(round(scale / 4)))  # large scenes: several tank farms
        centres = [(ccx, ccy)] + [(rng.uniform(30, w - 30), rng.uniform(30, h - 30)) for _ in range(n_clusters - 1)]
        for _ in range(n_tanks):
            if n_clusters > 1:
                ccx, ccy = centres[int(rng.integers(n_clusters))]
            for _try in range(30):
                r = float(rng.uniform(6, 14))
                cx = float(np.clip(ccx + rng.normal(0, 22 * math.sqrt(max(1.0, scale / 4))), r + 2, w - r - 2))
                cy = float(np.clip(ccy + rng.normal(0, 22 * math.sqrt(max(1.0, scale / 4))), r + 2, h - r - 2))
                m = _ellipse_mask(h, w, [cx - r, cy - r, cx + r, cy + r])
                if free(m, 5):
                    sh = _ellipse_mask(h, w, [cx - r + sdx, cy - r + sdy, cx + r + sdx,
                                                               cy + r + sdy])
                    shade(sh & ~m & ~occupied, 0.5 * dark)
                    tone = rng.uniform(200, 232)
                    img[m] = tone
                    rim = m & ~_ellipse_mask(h, w, [cx - r + 2, cy - r + 2, cx + r - 2,
                                                                     cy + r - 2])
                    img[rim] = tone * 0.72
                    # floating roof: a slightly darker inner disc
                    inner = _ellipse_mask(h, w, [cx - r * 0.5, cy - r * 0.5, cx + r * 0.5,
                                                                  cy + r * 0.5])
                    img[inner] = tone * 0.9
                    occupied[m | sh] = True
                    add("tank", m)
                    break

    # vehicles on the roads
    for _ in range(count(0, 6) if road_objs and "vehicle" not in exclude else 0):
        road = road_objs[rng.integers(len(road_objs))]
        ys, xs = np.nonzero(labels == road.label)
        for _try in range(10 if len(ys) else 0):
            k = int(rng.integers(len(ys)))
            if road.orient == "horizontal":
                vw, vh = 9, 5
            else:
                vw, vh = 5, 9
            x0, y0 = int(xs[k]) - vw // 2, int(ys[k]) - vh // 2
            if x0 < 1 or y0 < 1 or x0 + vw >= w - 1 or y0 + vh >= h - 1:
                continue
            m = np.zeros((h, w), bool)
            m[y0:y0 + vh, x0:x0 + vw] = True
            if not (labels[m] == road.label).all():
                continue
            ring = np.zeros((h, w), bool)
            ring[y0 - 1:y0 + vh + 1, x0 - 1:x0 + vw + 1] = True
            if not (labels[ring] == road.label).all():
                continue
            colour = list(VEHICLE_COLOURS)[rng.integers(len(VEHICLE_COLOURS))]
            sh = _shift(m, int(np.sign(sdx)) * 2, int(np.sign(sdy)) * 2) if look else np.zeros((h, w), bool)
            if look is None:
                sh[y0 + 2:y0 + vh + 2, x0 + 2:x0 + vw + 2] = True
            shade(sh & ~m, 0.6 * dark)
            img[m] = np.array(VEHICLE_COLOURS[colour], np.float32) + rng.normal(0, 6, 3)
            # windscreen
            if road.orient == "horizontal":
                img[y0 + 1:y0 + vh - 1, x0 + 5] *= 0.5
            else:
                img[y0 + 5, x0 + 1:x0 + vw - 1] *= 0.5
            add("vehicle", m, colour=colour)
            break

    # trees on free ground
    leaf_tex = _smooth_noise(rng, h, w, max(16, w // 4))
    for _ in range(0 if "tree" in exclude else count(0, 10)):
        for _try in range(20):
            r = float(rng.uniform(4, 9))
            cx, cy = float(rng.uniform(r + 2, w - r - 2)), float(rng.uniform(r + 2, h - r - 2))
            if look is not None and rng.random() < look.blob_trees:
                crown = _blob_polygon(rng, cx, cy, r, n=10)
                m = _polygon_mask(h, w, crown)
            else:
                m = _ellipse_mask(h, w, [cx - r, cy - r, cx + r, cy + r])
            if free(m, 2):
                sh = _ellipse_mask(h, w, [cx - r + sdx, cy - r + sdy, cx + r + sdx,
                                                           cy + r + sdy])
                shade(sh & ~m & ~occupied, 0.55 * dark)
                leaf = np.array([38, 78, 36], np.float32) + rng.normal(0, 5, 3)
                img[m] = leaf + 14 * leaf_tex[m][:, None]
                occupied[m | sh] = True
                add("tree", m)
                break

    # global radiometry: brightness/contrast jitter, sensor noise, slight blur
    img = img * rng.uniform(0.88, 1.12) + rng.normal(0, 6)
    if look is None:
        img += rng.normal(0, 3.0, img.shape).astype(np.float32)
        img8 = np.clip(img, 0, 255).astype(np.uint8)
        img8 = np.asarray(Image.fromarray(img8).filter(ImageFilter.GaussianBlur(0.6)))
    else:
        img8 = develop(img, look, rng)
        if (h, w) != out_hw:  # to the look's gsd: image antialiased, labels nearest
            img8 = np.asarray(Image.fromarray(img8).resize(out_hw[::-1], Image.BILINEAR))
            labels = np.asarray(Image.fromarray(labels).resize(out_hw[::-1], Image.NEAREST))
        img8 = np.asarray(Image.fromarray(img8).filter(ImageFilter.GaussianBlur(look.blur)))

    # geometry of the visible parts
    keep = []
    faint = set()
    for obj in objects:
        ys, xs = np.nonzero(labels == obj.label)
        if len(ys) < 6:
            if len(ys):
                faint.add(obj.cls)
            continue
        obj.area = int(len(ys))
        if obj.cls != "road":
            obj.cx, obj.cy = float(xs.mean()), float(ys.mean())
        obj.bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        keep.append(obj)
    return Scene(image=img8, labels=labels, objects=keep, faint=frozenset(faint), look=look)


# ---------------------------------------------------------------------------------------------------- sentences


@dataclass
class Expression:
    text: str
    target: list[int]  # labels of the target objects
    kind: str  # "class", "colour", "size", "position", "relation", "combo"
    level: int


def _bbox_gap(a: SceneObject, b: SceneObject) -> float:
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    dx = max(0, bx0 - ax1, ax0 - bx1)
    dy = max(0, by0 - ay1, ay0 - by1)
    return math.hypot(dx, dy)


def _in_region(obj: SceneObject, region: str, h: int, w: int, margin: float) -> bool | None:
    """True/False when clear, None when the object lies in the ambiguous band around a middle line."""
    res = True
    for word in region.split():
        if word in ("top", "bottom"):
            d = obj.cy - h / 2
            if abs(d) < margin:
                return None
            res = res and ((d < 0) == (word == "top"))
        elif word in ("left", "right"):
            d = obj.cx - w / 2
            if abs(d) < margin:
                return None
            res = res and ((d < 0) == (word == "left"))
    return res


def describe(scene: Scene, rng: np.random.Generator, max_level: int = 2,
             plural_single: float = 0.0) -> list[Expression]:
    """All valid (unambiguous) referring expressions of the scene up to `max_level`. `plural_single`: the share of
    one-object classes named in the plural ("the roads" for the one road): an analyst's query runs tile by tile, so
    a tile often holds one of the many objects a plural query means (0 keeps the sentences as they were)."""
    h, w = scene.labels.shape
    by_cls: dict[str, list[SceneObject]] = {}
    for o in scene.objects:
        by_cls.setdefault(o.cls, []).append(o)
    roads = by_cls.get("road", [])
    waters = by_cls.get("water", [])
    out: list[Expression] = []

    def name(cls, plural=False):
        return NAMES[cls][1 if plural else 0][rng.integers(len(NAMES[cls][1 if plural else 0]))]

    for cls, objs in by_cls.items():
        labels = [o.label for o in objs]
        # level 0: the class
        if cls == "water":
            out.append(Expression(f"the {name(cls)}", labels, "class", 0))
        elif len(objs) == 1:
            text = str(rng.choice([f"the {name(cls)}", f"the {name(cls)}"]))
            if plural_single > 0 and rng.random() < plural_single:
                text = str(rng.choice([f"the {name(cls, True)}", f"all {name(cls, True)}"]))
            out.append(Expression(text, labels, "class", 0))
        else:
            n = name(cls, True)
            out.append(Expression(str(rng.choice([f"the {n}", f"all {n}", f"all the {n}"])), labels, "class", 0))
        if max_level < 1:
            continue
        # level 1: colour
        if cls in ("building", "vehicle"):
            colours = sorted({o.colour for o in objs})
            for c in colours:
                sel = [o.label for o in objs if o.colour == c]
                if len(sel) == len(objs) and len(objs) == 1:
                    pass
                if cls == "building":
                    text = (f"the {c}-roofed {name(cls, len(sel) > 1)}" if rng.random() < 0.5 else
                            f"the {name(cls, len(sel) > 1)} with {'a ' if len(sel) == 1 else ''}{c} "
                            f"roof{'s' if len(sel) > 1 else ''}")
                else:
                    text = f"the {c} {name(cls, len(sel) > 1)}"
                out.append(Expression(text, sel, "colour", 1))
        # level 1: size superlatives (needs a clear margin)
        if len(objs) >= 2 and cls not in ("road", "water"):
            srt = sorted(objs, key=lambda o: o.area)
            if srt[-1].area >= 1.3 * srt[-2].area:
                word = rng.choice(["largest", "biggest"])
                out.append(Expression(f"the {word} {name(cls)}", [srt[-1].label], "size", 1))
            if srt[1].area >= 1.3 * srt[0].area:
                out.append(Expression(f"the smallest {name(cls)}", [srt[0].label], "size", 1))
        if max_level < 2:
            continue
        # level 2: roads by orientation
        if cls == "road" and len(objs) >= 2:
            for orient in ("horizontal", "vertical"):
                sel = [o.label for o in objs if o.orient == orient]
                if 0 < len(sel) < len(objs):
                    out.append(Expression(f"the {orient} {name(cls, len(sel) > 1)}", sel, "position", 2))
        if cls in ("road", "water"):
            continue
        # level 2: position (region), alone and with colour / superlative
        margin = 10.0
        for region in REGIONS:
            flags = [_in_region(o, region, h, w, margin) for o in objs]
            if any(f is None for f in flags):
                continue
            sel = [o for o, f in zip(objs, flags, strict=True) if f]
            if not sel:
                continue
            if len(sel) == 1 and len(objs) > 1:
                out.append(Expression(f"the {name(cls)} in the {region}" if len(region.split()) == 2 or
                                      region in ("top", "bottom") else f"the {name(cls)} on the {region}",
                                      [sel[0].label], "position", 2))
            elif len(sel) >= 2:
                srt = sorted(sel, key=lambda o: o.area)
                if srt[-1].area >= 1.3 * srt[-2].area:
                    prep = "in the" if len(region.split()) == 2 or region in ("top", "bottom") else "on the"
                    cw = ""
                    if cls == "building" and rng.random() < 0.5:
                        # "the largest red-roofed building in the top left": colour must not change the answer
                        c = srt[-1].colour
                        same = [o for o in sel if o.colour == c]
                        if max(same, key=lambda o: o.area) is srt[-1]:
                            cw = f"{c}-roofed "
                    out.append(Expression(f"the largest {cw}{name(cls)} {prep} {region}", [srt[-1].label],
                                          "combo", 2))
        # level 2: extremes
        if len(objs) >= 2:
            for word, key, sign in (("leftmost", "cx", 1), ("rightmost", "cx", -1), ("topmost", "cy", 1),
                                    ("bottommost", "cy", -1)):
                srt = sorted(objs, key=lambda o: sign * getattr(o, key))
                if sign * (getattr(srt[1], key) - getattr(srt[0], key)) >= 15:
                    out.append(Expression(f"the {word} {name(cls)}", [srt[0].label], "position", 2))
        # level 2: relations
        if roads and cls in ("building", "tank", "tree"):
            gaps = [min(_bbox_gap(o, r) for r in roads) for o in objs]
            near = [o for o, g in zip(objs, gaps, strict=True) if g <= 8]
            far_ok = all(g <= 8 or g >= 20 for g in gaps)
            if len(near) == 1 and far_ok:
                road_word = "the road" if len(roads) == 1 else "a road"
                out.append(Expression(str(rng.choice([f"the {name(cls)} next to {road_word}",
                                                      f"the {name(cls)} beside {road_word}"])),
                                      [near[0].label], "relation", 2))
        if waters and len(objs) >= 2 and cls in ("building", "tank", "tree"):
            water = waters[0]
            d = sorted(((math.hypot(o.cx - water.cx, o.cy - water.cy), o) for o in objs), key=lambda t: t[0])
            if d[1][0] - d[0][0] >= 20:
                out.append(Expression(f"the {name(cls)} closest to the {name('water')}", [d[0][1].label],
                                      "relation", 2))
        if cls == "vehicle" and len(roads) >= 2:
            for r in roads:
                sel = [o.label for o in objs if scene.labels[int(o.cy), int(o.cx)] == o.label and
                       _bbox_gap(o, r) == 0]
                if 0 < len(sel) < len(objs):
                    out.append(Expression(f"the {name(cls, len(sel) > 1)} on the {r.orient} road", sel,
                                          "relation", 2))
    return out


# ---------------------------------------------------------------------------------------------------- dataset


DEFAULT_SIZES = {"train": 20000, "val": 500, "test": 500}


#: sentence kinds that stay true on a crop holding part of their target: a class, a colour, and absent referents
#: (position, size and relation words are judged over the whole scene and may not hold on a part of it)
ZOOMABLE = ("class", "colour", "absent")


def zoom_in(image: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator,
            side: tuple[float, float] = (0.35, 0.7), near: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A square crop (``side`` of the scene's width) enlarged to the scene's size, holding a random target pixel.

    A tiled raster shows the model windows where one object fills most of the view, or all of it (a tile inside a
    lake); whole synthetic scenes never do, and a model trained only on them leaves such tiles empty and breaks a
    large object into pieces. Kinds outside ``ZOOMABLE``, and crops that would miss the target, are returned whole.
    An absent sentence's crop holds a random pixel of ``near`` (a mask: ``object_pixels``) when given, else any.
    """
    if kind not in ZOOMABLE:
        return image, mask
    h, w = mask.shape
    c = int(round(w * rng.uniform(*side)))
    if kind == "absent":
        ys, xs = np.nonzero(near) if near is not None else ((), ())
        k = int(rng.integers(len(ys))) if len(ys) else None
        cy, cx = (int(ys[k]), int(xs[k])) if k is not None else (int(rng.integers(h)), int(rng.integers(w)))
    else:
        ys, xs = np.nonzero(mask)
        if not len(ys):
            return image, mask
        k = int(rng.integers(len(ys)))
        cy, cx = int(ys[k]), int(xs[k])
    y0 = int(np.clip(cy - rng.integers(c), 0, h - c))
    x0 = int(np.clip(cx - rng.integers(c), 0, w - c))
    crop = (slice(y0, y0 + c), slice(x0, x0 + c))
    return resize_image(np.ascontiguousarray(image[crop]), w), resize_mask(mask[crop], (h, w))


def object_pixels(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The mask of one object of the scene, drawn with every object as likely (not every pixel: a road would
    outweigh the cars on it). The engine looks closer at what a tile's mask found (second_look.SecondLook: centred
    on the mask's peak), so an absent sentence seen closer is seen on an object: a white car seen twice as large
    was "the storage tank" at 0.9-1.0 in every view to the demo of d6181d3, at 5 of 20 val lone-tank rasters
    (bench/results/raster_search_cost_val20.md at f9dfff0)."""
    objs = [o for o in scene.objects if o.cls not in scene.faint]
    if not objs:
        return np.zeros(scene.labels.shape, bool)
    return scene.mask([objs[int(rng.integers(len(objs)))].label])


def tile_view(image: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """The scene as a tile of a raster grid shows the ground: at its own scale, but cut anywhere, so that objects
    lie across the view's edges. The scene is shifted by a random offset with wrap-around (an object cut on one edge
    shows its rest on the opposite one, as a tile shows the next scene of a mosaic). Whole synthetic scenes keep
    every object inside, and a model trained only on them takes a small white roof cut by a tile's edge for "the
    storage tank" (presence 0.993, and 0.006 in a same-size window centred on it;
    bench/results/raster_referring_notes.md). Kinds outside ``ZOOMABLE`` are returned whole."""
    if kind not in ZOOMABLE:
        return image, mask
    h, w = mask.shape
    shift = (int(rng.integers(h)), int(rng.integers(w)))
    return np.roll(image, shift, axis=(0, 1)), np.roll(mask, shift, axis=(0, 1))


class SyntheticRefer(RefDataset):
    """Synthetic referring set. `length` samples per split (default train 20000, val/test 500), scenes of
    `scene_size` pixels (objects keep their pixel sizes, about 0.5 m ground sampling; counts scale with the area
    times `density`), `refs_per_scene` sentences per scene, sentences up to curriculum `level` (0-2; `level_weights`
    weighs the levels of the chosen sentence, e.g. [0.5, 0.3, 0.2]). `distinct_refs`: the sentences of one scene are
    drawn without repeats while the scene has enough of them (training with `train.group` = refs_per_scene then
    shows one image with several different sentences and masks in one batch); `plural_single`: see `describe`.
    `families`: style families (styles.py) the scenes are drawn in, `native_share` of them in the generator's own
    look (the held-out family may not train); `negatives`: the share of samples whose sentence names something the
    scene does not show (negatives.py), with an empty mask. Samples carry `present` (0 for negatives, else 1).
    `zoom`: the share of samples shown as a crop of the scene enlarged to its size (``zoom_in``); `near_colours`:
    hard negatives favour colours near those the scene shows (negatives.py); `contrast`: the share of positive
    samples drawn as a contrast pair (contrast.py: two objects of a class in the two nearest palette colours, a
    sentence naming one); `confused_colours`: the colour pairs the contrast pairs show instead
    (``contrast.confused_spec``: a ``training.colour_confusion --json`` file, or {class: [[a, b], ...]});
    `wide_vocabulary`: vocabulary negatives from the wider list (``negatives.TRAIN_ABSENT_WIDE``); `pseudo_words`:
    the share of vocabulary negatives naming a made-up noun (``negatives.pseudo_noun``); `confused_classes`:
    absent-class negatives favour the classes a model finds in what the scene shows (``negatives.lookalike_spec``:
    a ``training.class_confusion --json`` file, or {absent class: [classes]}); `roadless`: the share of scenes
    drawn without roads (and so without vehicles), where "the road" is an absent class; `tile_view`: the share of
    samples shown shifted as a raster tile cuts the ground (``tile_view``; not with `zoom` on the same sample);
    `zoom_on_objects`: the share of zoomed absent sentences whose crop is centred on an object of the scene
    (``object_pixels``), as the engine's closer look is, instead of anywhere. All are off by default, so val/test
    stay as they were."""

    name = "synthetic"

    def __init__(self, split: str = "train", size: int | None = 256, *, seed: int = 2401, length: int | None = None,
                 scene_size: int = 256, density: float = 1.0, refs_per_scene: int = 4, level: int = 2,
                 level_weights: list[float] | None = None, distinct_refs: bool = False, plural_single: float = 0.0,
                 families: list[str] | None = None, native_share: float = 0.0, negatives: float = 0.0,
                 zoom: float = 0.0, near_colours: bool = False, contrast: float = 0.0,
                 confused_colours: str | dict | None = None, wide_vocabulary: bool = False,
                 pseudo_words: float = 0.0, confused_classes: str | dict | None = None, roadless: float = 0.0,
                 tile_view: float = 0.0, zoom_on_objects: float = 0.0, transform=None, root=None):
        if split not in SPLIT_CODES:
            raise ValueError(f"synthetic split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
        super().__init__(split=split, size=size, transform=transform)
        self.seed, self.scene_size, self.refs_per_scene = seed, scene_size, refs_per_scene
        self.density = density
        self.level = level
        self.level_weights = list(level_weights) if level_weights else [1.0] * (level + 1)
        self.distinct_refs = bool(distinct_refs)
        self.plural_single = float(plural_single)
        self.length = length if length is not None else DEFAULT_SIZES[split]
        self.families = list(families or [])
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown style families {sorted(unknown)}; known: {sorted(FAMILIES)}")
        if split == "train" and HELD_OUT in self.families:
            raise ValueError(f"style family {HELD_OUT!r} is held out for validation; it may not train")
        self.native_share = float(native_share) if self.families else 1.0
        self.negatives = float(negatives)
        self.zoom = float(zoom)
        self.tile_view = float(tile_view)
        self.zoom_on_objects = float(zoom_on_objects)
        if not 0.0 <= self.zoom + self.tile_view <= 1.0:
            raise ValueError(f"zoom ({zoom}) and tile_view ({tile_view}) are shares of one draw: each >= 0, sum <= 1")
        self.near_colours = bool(near_colours)
        self.roadless = float(roadless)
        self.wide_vocabulary = bool(wide_vocabulary)
        self.pseudo_words = float(pseudo_words)
        self.contrast = float(contrast)
        self.confused = confused_spec(confused_colours)
        self.lookalikes = lookalike_spec(confused_classes)

    def __len__(self) -> int:
        return self.length

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one set per process: holding it is intended
    def scene(self, scene_idx: int) -> Scene:
        ss = np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx])
        look, exclude = self.look(scene_idx), self.excluded(scene_idx)
        scene = generate_scene(ss, self.scene_size, self.density, exclude=exclude, look=look)
        if exclude and all(o.cls in scene.faint for o in scene.objects):  # nothing left to refer to: with roads
            scene = generate_scene(ss, self.scene_size, self.density, look=look)
        return scene

    def excluded(self, scene_idx: int) -> tuple[str, ...]:
        """Classes the scene leaves out: roads in `roadless` of scenes. The generator draws roads in every other
        scene, and the demo, never shown a tile without one, answered "the road" on 7 of 10 road-free val tiles
        (``training.class_confusion``)."""
        if self.roadless <= 0:
            return ()
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx, 5100]))
        return ("road",) if rng.random() < self.roadless else ()

    def look(self, scene_idx: int) -> Look | None:
        """The scene's look: None (the generator's own) for `native_share` of scenes, else a family's draw."""
        if self.native_share >= 1.0:
            return None
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx, 5000]))
        if rng.random() < self.native_share:
            return None
        return sample_look(self.families[int(rng.integers(len(self.families)))], rng)

    def _level_probs(self, exprs: list[Expression]) -> tuple[list[int], np.ndarray]:
        levels = sorted({e.level for e in exprs})
        wts = np.array([self.level_weights[lv] if lv < len(self.level_weights) else 0.0 for lv in levels])
        if wts.sum() <= 0:
            wts = np.ones(len(levels))
        return levels, wts / wts.sum()

    def expression(self, index: int) -> tuple[Scene, Expression]:
        scene, expr, _ = self.drawn(index)
        return scene, expr

    @functools.lru_cache(maxsize=16)  # noqa: B019 - as scene(); __getitem__ asks twice (raw, then the flags)
    def drawn(self, index: int) -> tuple[Scene, Expression, str]:
        """(scene, sentence, where it came from: "negative", "contrast" (a pair) or "scene")."""
        scene_idx, ref_idx = divmod(index, self.refs_per_scene)
        scene = self.scene(scene_idx)
        if self.negatives > 0:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx,
                                                                3000 + ref_idx]))
            if rng.random() < self.negatives:
                neg = negative_sentence(scene, rng, self.near_colours, self.wide_vocabulary, self.pseudo_words,
                                        self.lookalikes)
                return scene, Expression(neg.text, [], "absent", -1), "negative"
        if self.contrast > 0:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx,
                                                                6000 + ref_idx]))
            pair = contrast_pair(scene, rng, self.confused) if rng.random() < self.contrast else None
            if pair is not None:
                shown, text, target = pair
                return shown, Expression(text, target, "colour", 1), "contrast"
        if self.distinct_refs:
            return scene, self._scene_expressions(scene_idx)[ref_idx], "scene"
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx,
                                                            1000 + ref_idx]))
        exprs = describe(scene, rng, self.level, self.plural_single)
        levels, probs = self._level_probs(exprs)
        lv = levels[int(rng.choice(len(levels), p=probs))]
        pool = [e for e in exprs if e.level == lv]
        return scene, pool[int(rng.integers(len(pool)))], "scene"

    @functools.lru_cache(maxsize=8)  # noqa: B019 - as scene()
    def _scene_expressions(self, scene_idx: int) -> list[Expression]:
        """`refs_per_scene` sentences of one scene, each level drawn by `level_weights`, no sentence twice while the
        scene has unused ones (of that level, else of any level)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], scene_idx, 999]))
        exprs = describe(self.scene(scene_idx), rng, self.level, self.plural_single)
        levels, probs = self._level_probs(exprs)
        unused = list(range(len(exprs)))
        picked = []
        for _ in range(self.refs_per_scene):
            lv = levels[int(rng.choice(len(levels), p=probs))]
            pool = [k for k in unused if exprs[k].level == lv] or unused or list(range(len(exprs)))
            k = pool[int(rng.integers(len(pool)))]
            if k in unused:
                unused.remove(k)
            picked.append(exprs[k])
        return picked

    def raw(self, index: int):
        if index < 0 or index >= len(self):
            raise IndexError(index)
        scene, expr = self.expression(index)
        image, mask = scene.image, scene.mask(expr.target)
        if self.zoom > 0 or self.tile_view > 0:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], index, 4000]))
            u = rng.random()
            if u < self.zoom:
                on_object = (self.zoom_on_objects > 0 and expr.kind == "absent"  # old configs draw as they did
                             and rng.random() < self.zoom_on_objects)
                image, mask = zoom_in(image, mask, expr.kind, rng, near=object_pixels(scene, rng) if on_object
                                      else None)
            elif u < self.zoom + self.tile_view:
                image, mask = tile_view(image, mask, expr.kind, rng)
        return image, mask, expr.text, f"{self.split}-{index}"

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        source = self.drawn(index)[2] if self.negatives > 0 or self.contrast > 0 else "scene"
        if self.negatives > 0:
            sample["present"] = float(source != "negative")
        if self.contrast > 0:  # a contrast pair teaches a new skill (training/distill.py keeps the rest)
            sample["contrast"] = float(source == "contrast")
        return sample
