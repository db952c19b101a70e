"""Does the model answer names it was never taught? Tiles of some val scenes are asked for objects that neither the
generator draws nor any training negative names (``PROBE_NAMES``); an answer is a tile where presence reaches the
model's threshold and the mask holds pixels. Prints, per model, how many names get any answer and how many
(tile, name) pairs answer.

    .venv/bin/python -m training.unseen_names --model demo --model runs/X/best.pt [--scenes 16] [--family urban]

The demo's tokenizer spells a word it does not know in pieces; which spellings fire depends on training (a
fine-tune on colour sentences made "the swimming pools" fire on roofs), so a model is judged on many names, not
one. The benchmark's absent referents (``vocabulary.NEVER_DRAWN``) are not among them: they stay for the benchmark.
"""
from __future__ import annotations

import argparse

import numpy as np

from rs2sam2_qgis.pipeline.search import predict_presence

from .colour_confusion import probe_predictor, scenes_of
from .datasets.negatives import TRAIN_ABSENT_WIDE
from .datasets.styles import FAMILIES
from .datasets.synthetic import SPLIT_CODES
from .datasets.vocabulary import NEVER_DRAWN

PROBE_NAMES = ["the helicopters", "the oil platform", "the tram line", "the ice rink", "the baseball field",
               "the water park", "the cricket pitch", "the bus depot", "the car wash", "the fire station",
               "the bicycle lane", "the train yard", "the cable car", "the fish farm", "the tea plantation",
               "the olive grove", "the parking meters", "the traffic lights", "the power lines",
               "the satellite dish", "the rooftop garden", "the hot tub", "the sports hall", "the boat ramp",
               "the water slide", "the jetty", "the carousel", "the bowling green", "the rubble", "the pagoda"]
assert not set(PROBE_NAMES) & (set(TRAIN_ABSENT_WIDE) | set(NEVER_DRAWN)), "probe names must be unseen"


def answers(predictor, tiles: np.ndarray, names: list[str], threshold: float, min_pixels: int = 1) -> np.ndarray:
    """[tiles, names] bool: presence at ``threshold`` or more and at least ``min_pixels`` mask pixels at 0.5."""
    return answered(*predict_presence(predictor, tiles, names), threshold, min_pixels)


def answered(prob, presence, threshold: float, min_pixels: int = 1) -> np.ndarray:
    """``answers`` from a prediction already made (``search.predict_presence``'s probabilities and presence)."""
    drawn = (np.asarray(prob) >= 0.5).reshape(*np.shape(presence), -1).sum(-1) >= min_pixels
    return (np.asarray(presence) >= threshold) & drawn


def tile_windows(scene, side: int) -> list[tuple[slice, slice]]:
    """The (rows, cols) of every non-overlapping ``side`` px tile of a scene."""
    h, w = scene.labels.shape
    return [(slice(r, r + side), slice(c, c + side))
            for r in range(0, h - side + 1, side) for c in range(0, w - side + 1, side)]


def scene_tiles(scenes, side: int) -> np.ndarray:
    """Every non-overlapping ``side`` px tile of the scenes."""
    return np.stack([sc.image[win] for sc in scenes for win in tile_windows(sc, side)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="repeatable; default: demo")
    ap.add_argument("--split", default="val", choices=sorted(SPLIT_CODES))
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--family", choices=sorted(FAMILIES), help="draw the scenes in this style family's look")
    a = ap.parse_args(argv)

    for spec in a.model or ["demo"]:
        model, predictor = probe_predictor(spec)
        tiles = scene_tiles(list(scenes_of(a.split, a.scenes, a.family)), predictor.input_size)
        threshold = float(model.cfg.heads.presence_threshold)
        hit = answers(predictor, tiles, PROBE_NAMES, threshold)
        fired = {n: int(k) for n, k in zip(PROBE_NAMES, hit.sum(0)) if k}
        print(f"{spec}: {len(fired)} of {len(PROBE_NAMES)} unseen names answered, {int(hit.sum())} of {hit.size} "
              f"(tile, name) pairs (presence threshold {threshold}); {fired}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
