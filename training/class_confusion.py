"""Which absent class does a model find in objects of another? Every 128 px tile of some val scenes is asked for each
class it does not show ("the storage tank" over a tile without tanks); an answer (presence at the model's threshold
and a drawn mask, as ``unseen_names.answers``) is counted against the class whose pixels hold most of the mask.

    .venv/bin/python -m training.class_confusion --model demo [--scenes 24] [--family urban] [--json out.json]

The whole-raster search stops at the first fine tile that answers a singular query, so one look-alike the model
is sure of costs the whole answer: the demo found a 164 px white roof for "the storage tank" at presence 0.993 on a
val mosaic (`bench/results/raster_referring_notes.md`). ``negatives.confused_classes`` turns the measurement into the
pairs that ``negatives.negative_sentence`` favours: an absent class over a scene that shows the class it is taken for.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rs2sam2_qgis.pipeline.search import predict_presence

from .colour_confusion import probe_parser, probe_predictor, scenes_of
from .datasets.negatives import GROUND, confused_classes
from .datasets.vocabulary import NAMES
from .unseen_names import answered, tile_windows


def class_confusion(predictor, scenes, threshold: float) -> dict:
    """{absent class: {"asked": tiles asked, "answered": tiles answered, "on": {class or GROUND: answers},
    "shown": {class: asked tiles that show it}}} over every non-overlapping tile of ``scenes``."""
    tiles, tile_classes = [], []
    for sc in scenes:
        class_of = np.full(int(sc.labels.max()) + 1, GROUND, dtype=object)  # label -> its object's class
        for o in sc.objects:
            class_of[o.label] = o.cls
        for win in tile_windows(sc, predictor.input_size):
            tiles.append(sc.image[win])
            tile_classes.append(class_of[sc.labels[win]])
    classes = sorted(NAMES)
    texts = [f"the {NAMES[cls][0][0]}" for cls in classes]
    prob, presence = predict_presence(predictor, np.stack(tiles), texts)
    hit = answered(prob, presence, threshold)
    out = {cls: {"asked": 0, "answered": 0, "on": {}, "shown": {}} for cls in classes}
    for t, where in enumerate(tile_classes):
        shown = set(np.unique(where)) - {GROUND}
        for k, cls in enumerate(classes):
            if cls in shown:
                continue
            rec = out[cls]
            rec["asked"] += 1
            for d in shown:
                rec["shown"][d] = rec["shown"].get(d, 0) + 1
            if hit[t, k]:
                rec["answered"] += 1
                drawn = where[np.asarray(prob[t, k]) >= 0.5]
                names, counts = np.unique(drawn, return_counts=True)
                on = str(names[int(np.argmax(counts))])
                rec["on"][on] = rec["on"].get(on, 0) + 1
    return out


def report(result: dict) -> str:
    lines = ["| absent class | tiles asked | answered | found in |", "|---|---|---|---|"]
    for cls, rec in result.items():
        on = ", ".join(f"{d} {k} of {rec['shown'].get(d, '-')}" for d, k in sorted(rec["on"].items(), key=lambda x: -x[1]))
        lines.append(f"| {cls} | {rec['asked']} | {rec['answered']} | {on or '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    a = probe_parser(__doc__, "also write the result here").parse_args(argv)
    model, predictor = probe_predictor(a.model)
    threshold = float(model.cfg.heads.presence_threshold)
    result = class_confusion(predictor, list(scenes_of(a.split, a.scenes, a.family)), threshold)
    print(report(result))
    print("confused:", confused_classes(result))
    if a.json:
        Path(a.json).write_text(json.dumps({"model": a.model, "split": a.split, "scenes": a.scenes,
                                            "family": a.family, "threshold": threshold, "classes": result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
