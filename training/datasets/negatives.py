"""Negative referring sentences: a scene paired with a sentence about something not in it (empty target).

Referring sets are closed-world, so a model trained only on them answers in every tile. Negatives teach presence
(SAM3 and GRES train this way; ../shared/RASTER_REFERRING.md):
- absent class: a class with no object in the scene ("the storage tanks" over a scene without tanks);
- hard negative: a colour no object of a present class has ("the red-roofed building" over grey roofs);
- unseen colour: a colour word the generator never paints on that class (``OFF_PALETTE``, disjoint from the
  benchmark's absent colours), so that colour words the model never read as positives still count;
- vocabulary: objects the generator never draws (``TRAIN_ABSENT``, disjoint from the benchmark's ``NEVER_DRAWN``,
  which stays unseen).
Classes with only a faint sliver in the scene (``Scene.faint``) are neither present nor absent and never used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .scene import Scene
from .vocabulary import NAMES, NEVER_DRAWN, OFF_PALETTE, ROOF_COLOURS, VEHICLE_COLOURS

#: syllables of made-up nouns (``pseudo_noun``), and the words of the generator's names a made-up noun must not be
SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"]
NAME_WORDS = frozenset(w.lower() for names in NAMES.values() for group in names for n in group for w in n.split())

#: objects the synthetic generator never draws, used as negatives in training (none of NEVER_DRAWN)
TRAIN_ABSENT = ["the baseball diamond", "the helipad", "the stadium", "the golf course", "the dam", "the chimney",
                "the basketball courts", "the ground track field", "the overpass", "the train station",
                "the container ship", "the harbour cranes", "the airplane", "the railway tracks", "the roundabout",
                "the boats", "the beach", "the cemetery", "the church", "the power plant", "the oil rig",
                "the vineyard", "the quarry", "the pier", "the lighthouse", "the playground", "the bus station",
                "the water tower", "the hangar", "the sports field"]
#: more of them (``wide_vocabulary``): the demo's tokenizer spells a word it does not know letter by letter, and
#: whether such a spelling reads as absent depends on how many spellings presence was taught to refuse (a fine-tune
#: on colour sentences let "the swimming pools" fire on ponds); object names of the public remote-sensing sets
#: (DOTA, DIOR, xView, iSAID) and land covers the generator does not draw; no kinds of building or vehicle, which
#: an analyst may rightly ask of a generic house or car
TRAIN_ABSENT_WIDE = TRAIN_ABSENT + [
    "the windmill", "the expressway toll station", "the excavator", "the shipping containers",
    "the transmission tower", "the construction site", "the tents", "the barge", "the ferry", "the sailboats",
    "the fishing vessel", "the pylons", "the gas station", "the grain silos", "the orchard", "the rice paddies",
    "the sand dunes", "the glacier", "the river delta", "the landfill", "the wastewater treatment plant",
    "the cooling tower", "the radar dome", "the crosswalk", "the skate park", "the racetrack", "the ski slope",
    "the canal locks", "the campsite", "the zoo", "the ferris wheel", "the bell tower", "the snow field",
    "the burnt area", "the flooded field", "the salt pans"]
assert not set(TRAIN_ABSENT_WIDE) & set(NEVER_DRAWN), "training negatives must stay out of the benchmark's"

PALETTES = {"building": ROOF_COLOURS, "vehicle": VEHICLE_COLOURS}
#: how often each kind is drawn when the scene allows it
KIND_WEIGHTS = {"hard": 0.25, "unseen_colour": 0.15, "class": 0.35, "vocabulary": 0.25}


def colour_text(cls: str, colour: str, rng: np.random.Generator, plural: bool | None = None) -> str:
    """A sentence naming a building's roof colour or a vehicle's colour; ``plural``: its number (None: either,
    for a negative, which has no target to agree with)."""
    if cls == "building":
        words = {False: [f"the {colour}-roofed building", f"the house with a {colour} roof"],
                 True: [f"the {colour}-roofed buildings", f"the houses with {colour} roofs"]}
    else:
        words = {False: [f"the {colour} car", f"the {colour} vehicle"],
                 True: [f"the {colour} cars", f"the {colour} vehicles"]}
    if plural is None:  # the wordings negatives have always drawn from
        return str(rng.choice(words[False][:1] + words[True][:1] + words[False][1:]))
    return str(rng.choice(words[plural]))


def negative_options(scene: Scene) -> dict[str, list[tuple[str, str | None]]]:
    """Per kind, the (class, colour or None) a negative may name in this scene."""
    present = {o.cls for o in scene.objects} | set(scene.faint)
    colours = {cls: {o.colour for o in scene.objects if o.cls == cls} for cls in PALETTES}
    hard = [(cls, c) for cls, pal in PALETTES.items() if cls in present and cls not in scene.faint
            for c in pal if c not in colours[cls]]
    unseen = [(cls, c) for cls in PALETTES if cls in present and cls not in scene.faint for c in OFF_PALETTE[cls]]
    absent = [(cls, None) for cls in NAMES if cls not in present]
    return {"hard": hard, "unseen_colour": unseen, "class": absent, "vocabulary": [("vocabulary", None)]}


@dataclass(frozen=True)
class Negative:
    text: str
    kind: str              # a key of KIND_WEIGHTS
    cls: str | None        # the class named (None for vocabulary)
    colour: str | None     # the colour named, if any


def pseudo_noun(rng: np.random.Generator) -> str:
    """A made-up noun of two to four syllables, plural half the time, that is no word the generator's sentences use.
    A model whose tokenizer spells unknown words in pieces learns from these that a noun it cannot read names
    nothing in the scene, whatever pieces it shares with words it knows ("the swimming pools" is "s w i m m ing p
    o o l s" to the demo)."""
    while True:
        word = "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 5))))
        word += "s" if rng.random() < 0.5 else ""
        if word not in NAME_WORDS:
            return word


def _pick(hard: list[tuple[str, str]], scene: Scene, rng: np.random.Generator) -> int:
    """A hard negative, the nearer its colour to one the class shows the likelier: "the red-roofed building" over
    orange roofs teaches more than over gray ones (the demo confused red and orange roofs over whole rasters)."""
    shown = {cls: [PALETTES[cls][o.colour] for o in scene.objects if o.cls == cls and o.colour in PALETTES[cls]]
             for cls in PALETTES}
    near = np.array([min((float(np.abs(np.subtract(PALETTES[cls][c], rgb)).sum()) for rgb in shown[cls]),
                         default=255.0) for cls, c in hard])
    w = np.exp(-near / 120.0)
    return int(rng.choice(len(hard), p=w / w.sum()))


#: a mask on no object, in ``training.class_confusion``'s counts
GROUND = "ground"


def confused_classes(measured: str | Path | dict, min_rate: float = 0.001) -> dict[str, list[str]]:
    """absent class -> the classes a model finds it in, from ``training.class_confusion``'s result (or its
    ``--json`` file): where at least ``min_rate`` of the asked tiles that show the other class answer on it (one
    in a thousand tiles: a raster of 2,000 tiles then holds two sure look-alikes)."""
    if not isinstance(measured, dict):
        measured = json.loads(Path(measured).read_text())["classes"]
    out = {}
    for cls, rec in measured.items():
        taken = sorted(d for d, k in rec["on"].items()
                       if d != GROUND and rec["shown"].get(d) and k / rec["shown"][d] >= min_rate)
        if taken:
            out[cls] = taken
    return out


def lookalike_spec(spec: str | Path | dict | None) -> dict[str, list[str]] | None:
    """The look-alikes a data option names: a ``training.class_confusion --json`` file (``confused_classes``), the
    pairs themselves ({absent class: [classes it is found in]}), or None."""
    if not spec:
        return None
    return {cls: list(found) for cls, found in spec.items()} if isinstance(spec, dict) else confused_classes(spec)


#: how much likelier an absent class is as a negative when the scene shows a class it is taken for
LOOKALIKE_BOOST = 4.0


def _pick_lookalike(absent: list[tuple[str, None]], scene: Scene, confused: dict[str, list[str]],
                    rng: np.random.Generator) -> int:
    """An absent class, ``LOOKALIKE_BOOST`` + 1 times as likely when the scene shows a class the model finds it in
    (``confused``: ``training.class_confusion.confused_classes``): at raster scale one sure look-alike in a
    thousand tiles answers a singular query in place of the referent."""
    shown = {o.cls for o in scene.objects}
    w = np.array([1.0 + LOOKALIKE_BOOST * bool(shown & set(confused.get(cls, ()))) for cls, _ in absent])
    return int(rng.choice(len(absent), p=w / w.sum()))


def negative_sentence(scene: Scene, rng: np.random.Generator, near_colours: bool = False,
                      wide_vocabulary: bool = False, pseudo_words: float = 0.0,
                      confused_classes: dict[str, list[str]] | None = None) -> Negative:
    """A sentence about something the scene does not show. ``near_colours``: hard negatives favour colours near
    those the scene shows (``_pick``; stage 6c), else every absent palette colour is as likely;
    ``wide_vocabulary``: vocabulary negatives from ``TRAIN_ABSENT_WIDE``; ``pseudo_words``: the share of
    vocabulary negatives that name a made-up noun (``pseudo_noun``), bare or with a palette colour;
    ``confused_classes``: absent-class negatives favour classes the model finds in what the scene shows
    (``_pick_lookalike``)."""
    opts = {k: v for k, v in negative_options(scene).items() if v}
    kinds = sorted(opts)
    p = np.array([KIND_WEIGHTS[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    if near_colours and kind == "hard":
        pick = _pick(opts[kind], scene, rng)
    elif confused_classes and kind == "class":
        pick = _pick_lookalike(opts[kind], scene, confused_classes, rng)
    else:
        pick = int(rng.integers(len(opts[kind])))
    cls, colour = opts[kind][pick]
    if kind == "vocabulary" and pseudo_words > 0 and rng.random() < pseudo_words:
        noun = pseudo_noun(rng)
        palette = PALETTES[str(rng.choice(sorted(PALETTES)))]
        coloured = rng.random() < 0.3
        return Negative(f"the {rng.choice(list(palette))} {noun}" if coloured else f"the {noun}", kind, None, None)
    if kind == "vocabulary":
        return Negative(str(rng.choice(TRAIN_ABSENT_WIDE if wide_vocabulary else TRAIN_ABSENT)), kind, None, None)
    if kind in ("hard", "unseen_colour"):
        return Negative(colour_text(cls, colour, rng), kind, cls, colour)
    if cls in PALETTES and rng.random() < 0.3:  # an absent class named with a colour
        colour = str(rng.choice(list(PALETTES[cls])))
        return Negative(colour_text(cls, colour, rng), kind, cls, colour)
    sing, plur = NAMES[cls]
    return Negative(f"the {rng.choice(sing if rng.random() < 0.5 else plur)}", kind, cls, None)
