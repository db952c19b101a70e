"""Where the false positives of class sentences lie (not a test): for the class sentences of the raster_referring
benchmark's mosaics ("the buildings", "every house in the image"), the answer's pixels outside the truth split
into those within ``--edge`` px of a true member (a mask a little too wide), those on another object (by its class:
a blob drawn on the wrong thing) and those on bare ground, per scope.

    .venv/bin/python bench/class_fp.py [--split val] [--mosaics 6] [--per-kind 3] [--model demo]

The mosaics and sentences are the benchmark's own for the same --seed, --split, --mosaics and --per-kind (the same
draws in the same order). Writes NAME.json and NAME.md into --out.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from raster_referring import (  # noqa: E402
    _git_commit,
    bench_mosaics,
    cpu_predictor,
    rasterize,
    recorded_command,
    save_results,
    write_geotiff,
)

SCOPES = ("tile", "extent")


def where_fp(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, classes: dict, edge: int) -> dict:
    """Counts of the false-positive pixels of ``pred``: near a true member's edge, on each other class, on ground."""
    fp = pred & ~truth
    near = ndimage.binary_dilation(truth, iterations=edge) if edge > 0 else truth
    out = {"edge": int((fp & near).sum())}
    far = fp & ~near
    labs, counts = np.unique(labels[far], return_counts=True)
    for lab, n in zip(labs.tolist(), counts.tolist()):
        key = classes.get(lab, "ground")
        out[key] = out.get(key, 0) + int(n)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--mosaics", type=int, default=6)
    ap.add_argument("--per-kind", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2401)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--presence-threshold", type=float, default=0.85)
    ap.add_argument("--refine-edges", action=argparse.BooleanOptionalAction, default=None,
                    help="the engine's edge refinement on or off (default: SegmentOptions.refine_edges)")
    ap.add_argument("--edge", type=int, default=2, help="px around a true member counted as its edge")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--name", default="class_fp")
    a = ap.parse_args(argv)

    from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster

    commit = _git_commit()
    predictor = cpu_predictor(a.model)
    options = SegmentOptions(batch_size=8, presence_threshold=a.presence_threshold)
    if a.refine_edges is not None:
        options = options.replace(refine_edges=a.refine_edges)
    rng = np.random.default_rng(a.seed)  # as bench/raster_referring.py seeds its sentences
    rows = []
    with tempfile.TemporaryDirectory(prefix="rs2sam2-bench-") as tmp:
        for i, mosaic, queries in bench_mosaics(a.seed, a.split, a.mosaics, a.per_kind, rng):
            queries = [q for q in queries if q.kind == "class"]
            path = os.path.join(tmp, f"mosaic_{i}.tif")
            transform = write_geotiff(path, mosaic.image)
            classes = {o.label: o.cls for o in mosaic.objects}
            for q in queries:
                truth = mosaic.mask(q.target)
                for scope in SCOPES:
                    res = segment_raster(path, [q.text], predictor, options.replace(scope=scope))
                    pred = rasterize(res.polygons[q.text], truth.shape, transform)
                    rows.append(dict(mosaic=i, text=q.text, scope=scope, fp_px=int((pred & ~truth).sum()),
                                     where=where_fp(pred, truth, mosaic.labels, classes, a.edge)))
                    print(rows[-1], file=sys.stderr, flush=True)
    kinds = sorted({k for r in rows for k in r["where"]} - {"edge", "ground"})
    cols = ["edge", *kinds, "ground"]
    totals = {s: {k: sum(r["where"].get(k, 0) for r in rows if r["scope"] == s) for k in cols} for s in SCOPES}
    meta = dict(command=recorded_command("bench/class_fp.py", argv), commit=commit, split=a.split, model=a.model,
                edge=a.edge, date=time.strftime("%Y-%m-%d"))
    head = "| " + " | ".join(["mosaic", "sentence", "scope", "FP px", f"within {a.edge} px of a member",
                              *[f"on {k}" for k in kinds], "on ground"]) + " |"
    lines = [f"# Where class sentences' false positives lie ({a.split} split, model {a.model})", "",
             f"Command: `{meta['command']}` (commit {commit})", "",
             "FP pixels of each answer (pixels outside the truth), split by what lies under them.", "",
             "| scope | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {s} | " + " | ".join(f"{totals[s][k]:,}" for k in cols) + " |" for s in SCOPES]
    lines += ["", head, "|" + "---|" * (len(kinds) + 6)]
    lines += [f"| {r['mosaic']} | {r['text']} | {r['scope']} | {r['fp_px']:,} | {r['where'].get('edge', 0):,} | "
              + " | ".join(f"{r['where'].get(k, 0):,}" for k in kinds) + f" | {r['where'].get('ground', 0):,} |"
              for r in rows]
    save_results(a.out, a.name, {"meta": meta, "totals": totals, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
