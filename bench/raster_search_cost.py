"""What the coarse-to-fine search costs per query (not a test): singular queries over one-referent mosaics, the
referent present and absent, in extent scope, against the fine grid a per-tile pass runs.

    .venv/bin/python bench/raster_search_cost.py [--split val] [--side 4096] [--seeds 11,12,13,14] [--model demo]
        [--queries "the storage tank"]

Each mosaic is the raster_referring benchmark's big one (one storage tank in one 256 px cell, no tanks or water
elsewhere) drawn from the split's seeds. Per query: polygons, IoU with the tank (for the tank query), model forwards
(search windows and fine tiles, one per window and text) over the fine grid's tile count, and seconds. An absent
singular referent is where the search can cost the most: nothing confirms, so it opens windows until none is left.
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

from raster_referring import (  # noqa: E402
    _git_commit,
    cpu_predictor,
    one_referent_scene,
    rasterize,
    recorded_command,
    save_results,
    score,
    write_geotiff,
)

#: the lone tank, a class the generator never draws, a colour no car has (the benchmark's absent kinds)
QUERIES = ("the storage tank", "the airport runway", "the purple car")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--side", type=int, default=4096)
    ap.add_argument("--seeds", default="11,12,13,14", help="comma-separated, or FIRST-LAST")
    ap.add_argument("--queries", nargs="+", default=list(QUERIES), choices=QUERIES)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--name", default="raster_search_cost")
    a = ap.parse_args(argv)

    from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster
    commit = _git_commit()
    predictor = cpu_predictor(a.model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rs2sam2-bench-") as tmp:
        for seed in _seeds(a.seeds):
            mosaic = one_tank_mosaic(seed, a.split, a.side)
            path = os.path.join(tmp, f"mosaic_{seed}.tif")
            transform = write_geotiff(path, mosaic.image)
            tank = mosaic.mask([o.label for o in mosaic.objects if o.cls == "tank"])
            for q in a.queries:
                t0 = time.perf_counter()
                res = segment_raster(path, [q], predictor, SegmentOptions(batch_size=8))
                secs = time.perf_counter() - t0
                polys = res.polygons[q]
                s = score(rasterize(polys, tank.shape, transform), tank if q == QUERIES[0] else np.zeros_like(tank))
                rows.append(dict(seed=seed, query=q, polygons=len(polys), iou=s["iou"], forwards=res.stats.forwards,
                                 grid=res.stats.tiles_total, fine_run=res.stats.tiles_run,
                                 windows=res.stats.coarse_windows, seconds=secs))
                print(rows[-1], file=sys.stderr, flush=True)
    meta = dict(command=recorded_command("bench/raster_search_cost.py", argv), commit=commit, split=a.split,
                side=a.side, model=a.model, date=time.strftime("%Y-%m-%d"))
    lines = [f"# Search cost per singular query ({a.split} split, {a.side} px one-tank mosaics, model {a.model})", "",
             f"Command: `{meta['command']}` (commit {commit})", "",
             "| seed | query | polygons | IoU | forwards / grid tiles | fine tiles run | search looks | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    tank = [r for r in rows if r["query"] == QUERIES[0]]
    if len(tank) > 1:
        ratios = [r["forwards"] / r["grid"] for r in tank]
        lines[4:4] = [f"'{QUERIES[0]}': {sum(r['iou'] >= 0.5 for r in tank)} of {len(tank)} answered at IoU >= 0.5; "
                      f"forwards / grid tiles {min(ratios):.2f}-{max(ratios):.2f} (median {np.median(ratios):.2f}).",
                      ""]
    lines += [f"| {r['seed']} | {r['query']} | {r['polygons']} | {r['iou']:.3f} | {r['forwards']:,} / {r['grid']:,} "
              f"({r['forwards'] / r['grid']:.2f}) | {r['fine_run']:,} | {r['windows']:,} | {r['seconds']:.1f} |"
              for r in rows]
    save_results(a.out, a.name, {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")
    return 0


def one_tank_mosaic(seed: int, split: str, side: int):
    """The raster_referring benchmark's big mosaic at ``side`` px: one storage tank in one 256 px cell (drawn from
    ``seed``), no tanks or water elsewhere."""
    from training.datasets.mosaic import build_mosaic

    cells = side // 256
    where = int(np.random.default_rng(seed).integers(cells * cells))
    return build_mosaic(seed, split, 999, cells, exclude=("tank", "water"), only_cell=(where, one_referent_scene(seed)))


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        first, last = (int(x) for x in spec.split("-"))
        return list(range(first, last + 1))
    return [int(x) for x in spec.split(",")]


if __name__ == "__main__":
    raise SystemExit(main())
