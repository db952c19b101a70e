"""Engine scaling benchmark (not a test): peak RSS and wall time of `segment_raster` + `write_vector` on CPU for
square tiled GeoTIFFs of 2k, 8k and 20k pixels made on the fly, each size in its own subprocess (clean RSS).

    .venv/bin/python bench/engine_scaling.py [--sizes 2000,8000,20000] [--models nano,colour] [--tile 1024]

Models: "nano" = model_core.build_model("nano") (a small real RS2-SAM2, random weights: its compute is real, its
masks are noise), "noise" = NoiseModel below (masks like nano's, ~65 % of pixels above threshold in blobs of a few
pixels, at near-zero inference: what polygonizing a noisy mask costs), "demo" = the trained demo checkpoint at its own 128 px tiles (real, sparse masks), "colour" =
tests/colour_model.py (near-zero inference: what the engine itself costs). Targets:
RSS at 20k <= 1.3x RSS at 2k, time linear in area (s/Mpx flat), polygonize + export <= 5 % of the time.
Writes engine_scaling.json and .md into --out (default bench/results).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

COLOURS = [(230, 40, 40), (245, 245, 245), (40, 60, 220), (250, 230, 40)]


def rss_mb() -> float:
    """Current resident set size (MB), from /proc."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_raster(path: str, size: int, seed: int = 0):
    """A tiled uint8 RGB GeoTIFF (UTM 33N, 0.5 m pixels): textured grey ground with coloured rectangles."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    cell = 256
    rects = []
    for cy in range(0, size, cell):
        for cx in range(0, size, cell):
            if rng.random() < 0.4:
                h, w = rng.integers(30, 140, size=2)
                y, x = cy + rng.integers(0, cell - h), cx + rng.integers(0, cell - w)
                rects.append((y, x, min(y + h, size), min(x + w, size), COLOURS[rng.integers(len(COLOURS))]))
    prof = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32633",
                transform=Affine(0.5, 0, 500000.0, 0, -0.5, 5000000.0), tiled=True, blockxsize=512,
                blockysize=512, photometric="RGB", BIGTIFF="IF_SAFER")
    rows = 1024
    xx = np.arange(size, dtype=np.int32)
    with rasterio.open(path, "w", **prof) as ds:
        for r0 in range(0, size, rows):
            r1 = min(size, r0 + rows)
            yy = np.arange(r0, r1, dtype=np.int32)[:, None]
            ground = (90 + (xx[None, :] * 7 + yy * 3) % 41).astype(np.uint8)
            block = np.repeat(ground[None], 3, axis=0)
            for y0, x0, y1, x1, c in rects:
                if y1 > r0 and y0 < r1:
                    block[:, max(y0, r0) - r0:min(y1, r1) - r0, x0:x1] = np.array(c, np.uint8)[:, None, None]
            ds.write(block, window=rasterio.windows.Window(0, r0, size, r1 - r0))


def noise_model(input_size: int = 256):
    """A model whose logits are a smooth random field (seeded by the tile's pixels: deterministic), like a random-
    weights model's noise but at near-zero inference cost."""
    import torch
    import torch.nn.functional as F

    class NoiseModel(torch.nn.Module):
        name = "noise-test"

        def __init__(self):
            super().__init__()
            self.input_size = input_size
            self.register_buffer("unused", torch.zeros(1))

        def predict_masks(self, pixels, texts):
            n, side = pixels.shape[0], self.input_size
            g = torch.Generator().manual_seed(int(pixels.double().sum().item() * 1e3) % 2**31)
            field = torch.randn(n, 1, side // 4, side // 4, generator=g) * 2.0 + 0.8
            return F.interpolate(field, size=(side, side), mode="bilinear", align_corners=False)

    return NoiseModel()


def child(args):
    """One measured run (its own process)."""
    import torch

    from model_core.predictor import Predictor
    from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster, write_vector

    torch.manual_seed(0)
    model_note = ""
    if args.model == "nano":
        import model_core

        if not hasattr(model_core, "build_model"):
            raise SystemExit("model_core.build_model is missing")
        model = model_core.build_model("nano")
        model_note = "model_core.build_model('nano'), random weights"
    elif args.model == "noise":
        model = noise_model()
        model_note = "bench/engine_scaling.py noise_model(): smooth random logits at 1/4 of its 256 px input"
    elif args.model == "demo":
        import model_core

        model = model_core.load_model("demo")
        model_note = "model_core.load_model('demo'): the trained demo model (nano, SAM2 side 128 px)"
    else:
        from tests.colour_model import ColourModel

        model = ColourModel(256)
        model_note = "tests/colour_model.py ColourModel(256)"
    pred = Predictor(model, device="cpu")
    query = args.query
    pred.predict(np.zeros((1, args.tile, args.tile, 3), np.uint8), [query])  # warm-up
    rss_base = rss_mb()
    opts = SegmentOptions(tile=args.tile, batch_size=args.batch, scope=args.scope)
    if args.refine_edges is not None:
        opts = opts.replace(refine_edges=args.refine_edges)
    t0 = time.perf_counter()
    res = segment_raster(args.raster, [query], pred, opts)
    t1 = time.perf_counter()
    out = os.path.join(args.workdir, f"out_{args.model}_{args.size}.gpkg")
    write_vector(res, out)
    t2 = time.perf_counter()
    st = res.stats
    total = t2 - t0
    print(json.dumps({
        "size": args.size, "model": args.model, "model_note": model_note, "tile": args.tile,
        "input_size": pred.input_size, "megapixels": st.megapixels, "tiles": st.tiles_run,
        "polygons": res.count, "canvas": st.canvas, "warnings": st.warnings, "device": st.device,
        "seconds_total": total, "s_per_mpx": total / st.megapixels,
        "seconds_inference": st.seconds_inference, "seconds_read_thread": st.seconds_read,
        "seconds_stitch": st.seconds_stitch, "seconds_polygonize": st.seconds_polygonize,
        "seconds_export": t2 - t1, "poly_export_share": (st.seconds_polygonize + (t2 - t1)) / total,
        "rss_after_model_mb": rss_base, "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads(),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,8000,20000")
    ap.add_argument("--models", default="nano,colour")
    ap.add_argument("--tile", type=int, default=2048, help="tile for the nano and noise models (8x their 256 px "
                    "input; 1024 gives the 2k raster a full batch of 4 tiles, so sizes compare like for like)")
    ap.add_argument("--colour-tile", type=int, default=1024,
                    help="tile for the colour model (small enough that even 2k has several batches)")
    ap.add_argument("--demo-tile", type=int, default=128, help="tile for the trained demo model (its input size)")
    ap.add_argument("--query", default="red roofs", help="the query every model is asked")
    ap.add_argument("--scope", default="tile", choices=["tile", "extent"],
                    help="tile (default): every tile runs, the engine's full cost; extent: the search decides")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--refine-edges", action=argparse.BooleanOptionalAction, default=None,
                    help="the engine's edge refinement on or off (default: SegmentOptions.refine_edges)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--raster")
    ap.add_argument("--size", type=int)
    ap.add_argument("--model")
    args = ap.parse_args()
    if args.child:
        return child(args)

    import model_core

    models = [m for m in args.models.split(",") if m]
    notes = []
    if "nano" in models and not hasattr(model_core, "build_model"):
        models = [m for m in models if m != "nano"] or ["colour"]
        notes.append("model_core.build_model('nano') missing: fell back to the colour model")
    work = args.workdir or tempfile.mkdtemp(prefix="rs2sam2-bench-")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            path = os.path.join(work, f"r{size}.tif")
            t0 = time.perf_counter()
            if not os.path.exists(path):
                make_raster(path, size)
            print(f"[bench] raster {size}^2 ready ({time.perf_counter() - t0:.1f} s)", flush=True)
            for m in models:
                tile = {"colour": args.colour_tile, "demo": args.demo_tile}.get(m, args.tile)  # noise: as nano
                cmd = [sys.executable, __file__, "--child", "--raster", path, "--size", str(size), "--model", m,
                       "--tile", str(tile), "--batch", str(args.batch), "--workdir", work, "--query", args.query,
                       "--scope", args.scope] + ([] if args.refine_edges is None else
                                                 ["--refine-edges" if args.refine_edges else "--no-refine-edges"])
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if p.returncode != 0:
                    print(p.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"child failed for {m} {size}")
                row = json.loads(p.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"[bench] {m:6s} {size:6d}: {row['seconds_total']:.1f} s, {row['s_per_mpx']:.3f} s/Mpx, "
                      f"peak RSS {row['peak_rss_mb']:.0f} MB, polygons {row['polygons']}, "
                      f"poly+export {100 * row['poly_export_share']:.1f} %", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if "nano" in models or "noise" in models:
        notes.append("nano (random weights) and noise give noisy masks: a few giant regions with hundreds of "
                     "thousands of holes. They are polygonized in strips with the seams merged, and a mask with "
                     "more than SegmentOptions.polygonize_max_edges boundary edges is polygonized on coarser cells "
                     "(the warnings column says how coarse), so peak RSS does not grow with the area. A trained "
                     "model's sparse masks behave like the colour rows.")
    if "colour" in models:
        notes.append("colour = tests/colour_model.py: near-zero inference, crisp sparse masks (the synthetic "
                     "raster's coloured rectangles): what the engine itself costs (read, resize, stitch, "
                     "polygonize, export).")
    summary = {}
    for m in models:
        r = sorted([x for x in rows if x["model"] == m], key=lambda x: x["size"])
        if len(r) >= 2:
            summary[m] = {
                "rss_ratio_largest_vs_smallest": r[-1]["peak_rss_mb"] / r[0]["peak_rss_mb"],
                "s_per_mpx_ratio_largest_vs_smallest": r[-1]["s_per_mpx"] / r[0]["s_per_mpx"],
                "max_poly_export_share": max(x["poly_export_share"] for x in r),
                "rss_ratio_largest_vs_second_largest": r[-1]["peak_rss_mb"] / r[-2]["peak_rss_mb"],
            }
    cmdline = "cd " + ROOT + " && " + shlex.join([".venv/bin/python", "bench/engine_scaling.py"] + sys.argv[1:])
    doc = {"command": cmdline, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared with other "
                      f"jobs while measured), CPU only", "scope": args.scope, "notes": notes, "rows": rows,
           "summary": summary}
    lines = ["# Engine scaling (CPU)", "", f"Command: `{cmdline}`", "", f"Date: {doc['date_utc']}; {doc['machine']}.",
             "", f"Query {args.query!r}, scope {args.scope!r}"
             + (" (every tile runs: the engine's full cost)." if args.scope == "tile" else "."), ""]
    lines += [f"- {n}" for n in notes]
    lines += ["| model | size (px) | tile | tiles | polygons | canvas | wall (s) | s/Mpx | inference (s) | polygonize (s) | "
              "export (s) | poly+export % | RSS after model (MB) | peak RSS (MB) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in rows:
        lines.append(f"| {x['model']} | {x['size']} | {x['tile']} | {x['tiles']} | {x['polygons']} | {x['canvas']} | "
                     f"{x['seconds_total']:.1f} | {x['s_per_mpx']:.3f} | {x['seconds_inference']:.1f} | "
                     f"{x['seconds_polygonize']:.2f} | {x['seconds_export']:.2f} | "
                     f"{100 * x['poly_export_share']:.1f} | {x['rss_after_model_mb']:.0f} | {x['peak_rss_mb']:.0f} |")
    for x in rows:
        for w in x.get("warnings", []):
            lines.append(f"- warning ({x['model']}, {x['size']} px): {w}")
    lines.append("")
    for m, s in summary.items():
        lines.append(f"- {m}: peak RSS largest/smallest = {s['rss_ratio_largest_vs_smallest']:.2f} (target <= 1.3); "
                     f"s/Mpx largest/smallest = {s['s_per_mpx_ratio_largest_vs_smallest']:.2f} (linear time: ~1); "
                     f"max polygonize+export share = {100 * s['max_poly_export_share']:.1f} % (target <= 5 %); "
                     f"peak RSS largest/second largest = {s['rss_ratio_largest_vs_second_largest']:.2f}")
    by = {(x["model"], x["size"]): x for x in rows}
    for size in sorted({x["size"] for x in rows}):
        if ("nano", size) in by and ("colour", size) in by:
            c, n = by[("colour", size)], by[("nano", size)]
            share = (c["seconds_polygonize"] + c["seconds_export"]) / (
                n["seconds_total"] - n["seconds_polygonize"] - n["seconds_export"]
                + c["seconds_polygonize"] + c["seconds_export"])
            summary.setdefault("estimate_sparse_masks_with_nano_inference", {})[str(size)] = share
            lines.append(f"- {size} px: polygonize+export of sparse masks (colour row) against nano's read+inference"
                         f"+stitch time: {100 * share:.1f} % (target <= 5 %)")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "engine_scaling.json"), "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(args.out, "engine_scaling.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
