"""Does the model tell its colour words apart? For every building and vehicle of some scenes, one tile centred on
it is asked "the <colour>-roofed building" / "the <colour> car" for every palette colour; a colour is read on the
object when its answer covers it (mean probability inside at least 0.5). Prints, per class, how often each colour
is read on objects of each colour (rows: the object's colour; a row may count more than its objects) and the share
of objects on which only their own colour is read. A model that says "warm roof" for both "red" and "orange" reads
both on either, which an argmax over the words would hide in a coin toss.

    .venv/bin/python -m training.colour_confusion --model demo [--split val] [--scenes 24] [--family dusk]

Scenes come from the split's own seeds (``--split test`` is for reporting, never for choosing a model); 256 px in
the generator's own look, or a style family's (``--family``).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .datasets.negatives import PALETTES
from .datasets.styles import FAMILIES, sample_look
from .datasets.synthetic import SPLIT_CODES, generate_scene

#: a colour is read on an object when its answer's mean probability inside the object reaches this
READ = 0.5
TEXTS = {"building": "the {}-roofed building", "vehicle": "the {} car"}


def centred_tile(image: np.ndarray, cx: float, cy: float, side: int) -> tuple[int, int]:
    """(row, col) of the ``side`` px window centred on (cx, cy), kept inside the image."""
    h, w = image.shape[:2]
    return int(np.clip(round(cy - side / 2), 0, h - side)), int(np.clip(round(cx - side / 2), 0, w - side))


def confusion(predictor, scenes, side: int) -> dict:
    """class -> (colours, counts [true, read], objects read right, objects) over every palette-coloured object."""
    out = {cls: np.zeros((len(pal), len(pal)), np.int64) for cls, pal in PALETTES.items()}
    right, seen = dict.fromkeys(PALETTES, 0), dict.fromkeys(PALETTES, 0)
    for sc in scenes:
        for o in sc.objects:
            if o.cls not in PALETTES or o.colour not in PALETTES[o.cls]:
                continue
            colours = list(PALETTES[o.cls])
            r, c = centred_tile(sc.image, o.cx, o.cy, side)
            tile = sc.image[r:r + side, c:c + side]
            inside = sc.labels[r:r + side, c:c + side] == o.label
            if not inside.any():
                continue
            prob = predictor.predict(tile[None], [TEXTS[o.cls].format(k) for k in colours])
            read = np.array([prob[0, j][inside].mean() for j in range(len(colours))]) >= READ
            true = colours.index(o.colour)
            out[o.cls][true] += read
            right[o.cls] += int(read[true] and read.sum() == 1)
            seen[o.cls] += 1
    return {cls: (list(PALETTES[cls]), m, right[cls], seen[cls]) for cls, m in out.items()}


def scenes_of(split: str, n: int, family: str | None, seed: int = 2401):
    for k in range(n):
        ss = np.random.SeedSequence([seed, SPLIT_CODES[split], 8000 + k])
        look = sample_look(family, np.random.default_rng(ss.spawn(1)[0])) if family else None
        yield generate_scene(ss, 256, look=look)


def report(result: dict) -> str:
    lines = []
    for cls, (colours, m, right, total) in result.items():
        lines.append(f"{cls}: {total} objects, only their own colour read on {right / max(total, 1):.3f}")
        lines.append("| true \\ read | " + " | ".join(colours) + " |")
        lines.append("|---" * (len(colours) + 1) + "|")
        lines += [f"| {colours[i]} | " + " | ".join(str(int(v)) for v in m[i]) + " |" for i in range(len(colours))]
        lines.append("")
    return "\n".join(lines)


def probe_parser(doc: str, json_help: str) -> argparse.ArgumentParser:
    """The options of a probe that asks one model about ``scenes_of``: --model, --split, --scenes, --family, --json."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--split", default="val", choices=sorted(SPLIT_CODES))
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--family", choices=sorted(FAMILIES), help="draw the scenes in this style family's look")
    ap.add_argument("--json", help=json_help)
    return ap


def probe_predictor(spec: str):
    """(model, CPU predictor) for a --model spec (a path, "demo", ...)."""
    from model_core import Predictor
    from rs2sam2_qgis.pipeline.model_spec import resolve_model

    model = resolve_model(spec, allow_code=True)
    return model, Predictor(model, device="cpu")


def main(argv=None) -> int:
    a = probe_parser(__doc__, "also write the matrices here").parse_args(argv)
    _, predictor = probe_predictor(a.model)
    result = confusion(predictor, scenes_of(a.split, a.scenes, a.family), predictor.input_size)
    print(report(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"argv": sys.argv[1:] if argv is None else argv,
                       "classes": {cls: {"colours": c, "counts": m.tolist(), "right": r, "objects": n}
                                   for cls, (c, m, r, n) in result.items()}},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
