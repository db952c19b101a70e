"""How steady the model's closer look is (not a test): for every fine tile of one-tank mosaics where the model
holds "the storage tank" at 0.2 or more, the presence of the closer views the engine can take around the tile's
mask peak (second_look.SecondLook: half the tile's side, enlarged), split by whether the peak is on the tank.

    .venv/bin/python bench/closer_views.py [--split val] [--side 1024] [--seeds 100-129] [--model demo]

Views: the centred one, four shifted by a tenth of its side, four by a fifth, the centred one mirrored
left-right and top-bottom. Per set of views, how many candidates reach a presence with the lowest of the set: a
set that the tank passes and look-alikes do not is what a confirmation can rest on (search.search).
Writes NAME.json and NAME.md into --out.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from raster_referring import _git_commit, cpu_predictor, recorded_command, save_results, write_geotiff  # noqa: E402
from raster_search_cost import _seeds, one_tank_mosaic  # noqa: E402

TEXT = "the storage tank"
#: view name -> (row shift, column shift) in steps of SHIFT of the view's side, mirror
VIEWS = {"centre": (0, 0, ""), "up": (-1, 0, ""), "down": (1, 0, ""), "left": (0, -1, ""), "right": (0, 1, ""),
         "up2": (-2, 0, ""), "down2": (2, 0, ""), "left2": (0, -2, ""), "right2": (0, 2, ""),
         "mirror lr": (0, 0, "lr"), "mirror tb": (0, 0, "tb")}
SETS = {"centre": ["centre"],
        "centre + 4 shifts": ["centre", "up", "down", "left", "right"],
        "centre + 8 shifts": ["centre", "up", "down", "left", "right", "up2", "down2", "left2", "right2"],
        "centre + 2 mirrors": ["centre", "mirror lr", "mirror tb"],
        "centre + 4 shifts + 2 mirrors (the engine's steady look)":
            ["centre", "up", "down", "left", "right", "mirror lr", "mirror tb"]}
LEVELS = (0.5, 0.85, 0.9)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--seeds", default="100-129", help="comma-separated, or FIRST-LAST")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--near", type=float, default=8.0, help="px from the tank within which a peak is on it")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--name", default="closer_views")
    a = ap.parse_args(argv)

    from rs2sam2_qgis.pipeline import SegmentOptions
    from rs2sam2_qgis.pipeline.search import _windows, predict_presence
    from rs2sam2_qgis.pipeline.second_look import MIRRORS, SHIFT, SecondLook
    from rs2sam2_qgis.pipeline.source import open_source
    from rs2sam2_qgis.pipeline.tiling import Window2D

    commit = _git_commit()
    predictor = cpu_predictor(a.model)
    tile = predictor.input_size
    rows = []
    with tempfile.TemporaryDirectory(prefix="rs2sam2-bench-") as tmp:
        for seed in _seeds(a.seeds):
            mosaic = one_tank_mosaic(seed, a.split, a.side)
            ty, tx = np.nonzero(mosaic.mask([o.label for o in mosaic.objects if o.cls == "tank"]))
            path = os.path.join(tmp, f"mosaic_{seed}.tif")
            write_geotiff(path, mosaic.image)
            src = open_source(path, SegmentOptions())
            look = SecondLook(src, tile, predict_windows=None)
            step = max(1, int(round(look.side * SHIFT)))
            with src.open() as ds:
                windows = _windows(Window2D(0, 0, a.side, a.side), tile, 0.25)
                peaks = []
                for i in range(0, len(windows), 16):
                    batch = windows[i:i + 16]
                    px = np.stack([src.read(ds, r, c, tile, tile)[0] for r, c in batch])
                    prob, pres = predict_presence(predictor, px, [TEXT])
                    for k, (r, c) in enumerate(batch):
                        iy, ix = divmod(int(prob[k, 0].argmax()), prob.shape[-1])
                        peaks.append((float(pres[k, 0]), r + iy + 0.5, c + ix + 0.5))
                for fine, pr, pc in (p for p in peaks if p[0] >= 0.2):
                    views = []
                    for dr, dc, mirror in VIEWS.values():
                        r, c = look.window(pr + dr * step, pc + dc * step)
                        views.append(MIRRORS[mirror](src.read(ds, r, c, look.side, look.side)[0]))
                    _, p = predict_presence(predictor, np.stack(views), [TEXT])
                    rows.append(dict(seed=seed, fine=round(fine, 4), on_tank=bool(np.hypot(ty - pr, tx - pc).min()
                                                                                  <= a.near),
                                     views={n: round(float(v), 4) for n, v in zip(VIEWS, p[:, 0])}))
            print(f"seed {seed}: {sum(r['seed'] == seed for r in rows)} candidates", file=sys.stderr, flush=True)
    table = []
    for name, views in SETS.items():
        for on in (True, False):
            sub = [min(r["views"][v] for v in views) for r in rows if r["on_tank"] == on]
            table.append(dict(views=name, on_tank=on, n=len(sub), **{f">={t}": sum(v >= t for v in sub)
                                                                    for t in LEVELS}))
    meta = dict(command=recorded_command("bench/closer_views.py", argv), commit=commit, split=a.split,
                side=a.side, model=a.model, date=time.strftime("%Y-%m-%d"))
    lines = [f"# Closer views of 'the storage tank' candidates ({a.split} split, {a.side} px one-tank mosaics, "
             f"model {a.model})", "", f"Command: `{meta['command']}` (commit {commit})", "",
             f"Candidates: fine tiles at presence >= 0.2, the view centred on their mask peak; on the tank: the peak "
             f"within {a.near:g} px of it. Each cell: candidates whose lowest presence over the views reaches it.", "",
             "| views | candidates | n | " + " | ".join(f">= {t}" for t in LEVELS) + " |",
             "|---|---|---|" + "---|" * len(LEVELS)]
    lines += [f"| {t['views']} | {'on the tank' if t['on_tank'] else 'look-alikes'} | {t['n']} | "
              + " | ".join(str(t[f'>={v}']) for v in LEVELS) + " |" for t in table]
    save_results(a.out, a.name, {"meta": meta, "table": table, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
