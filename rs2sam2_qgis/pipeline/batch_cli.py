"""`rs2sam2 batch`: the CLI face of batch.run_batch.

    rs2sam2 batch INPUTS... -q "query" [-q ...] -o OUTDIR|out.gpkg [--model demo|PATH] [--workers N]
                  [--ray [ADDRESS]] [--resume] [--retries N] [--crs EPSG:xxxx] + every engine option of `segment`
                  (--mode analyst|authors included)

The engine options (--model, --tile, --overlap, --threshold, --bands, --device, ...) and the SegmentOptions they
make come from cli_options.py, shared with `segment`: one definition of each option.
"""
from __future__ import annotations

import argparse
import re
import sys

from .cli_options import add_engine_arguments, model_choice_from_args, options_from_args
from .errors import InputError


def add_batch_parser(sub) -> argparse.ArgumentParser:
    b = sub.add_parser("batch", help="segment many rasters (files, folders, globs, lists; locally or on Ray)",
                       description="Segment many rasters with one model: one GeoPackage per raster in OUTDIR, or "
                       "one merged GeoPackage with a 'source' column. Failed rasters go to failures.csv.")
    b.add_argument("inputs", nargs="*", help="rasters, folders, globs (quoted) or .txt lists of paths/URLs "
                   "(/vsicurl/, /vsis3/, http(s)://, s3:// pass to GDAL)")
    b.add_argument("-q", "--query", dest="queries", action="append", required=True,
                   help='what to find, e.g. -q "the white storage tanks" (repeat for more)')
    b.add_argument("-o", "--output", required=True, help="output folder (one .gpkg per raster) or a .gpkg (merged)")
    b.add_argument("--workers", type=int, default=None,
                   help="Ray: inference actors (default: one per GPU, else 1)")
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: a local cluster (no ADDRESS) or the cluster at ADDRESS (e.g. auto, "
                   "ray://head:10001)")
    b.add_argument("--in-flight", type=int, default=None, help="Ray: rasters submitted at once (default 2 per actor)")
    b.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per inference process (default: local, torch's; Ray, the actor's CPUs)")
    b.add_argument("--resume", action="store_true",
                   help="skip rasters whose outputs are complete and verified (manifest.jsonl, sha256)")
    b.add_argument("--retries", type=int, default=2, help="retries of a failing raster before failures.csv (2)")
    b.add_argument("--crs", help="merged output: target CRS (default: the first raster's)")
    add_engine_arguments(b)
    return b


def cmd_batch(a: argparse.Namespace) -> int:
    from .batch import run_batch

    options = options_from_args(a)
    address = None if a.ray in (None, "local") else a.ray
    if address and address != "auto" and not re.match(r"^(ray://)?[\w.-]+:\d+$", address):
        a.inputs.insert(0, address)  # "--ray in.tif ...": argparse gave the first input to --ray
        address = None
    if not a.inputs:
        raise InputError("no inputs given; name rasters, folders, globs or a .txt list of paths before -q/-o")
    try:
        s = run_batch(a.inputs, a.queries, a.output, model=model_choice_from_args(a), options=options,
                      workers=a.workers, ray=a.ray is not None, ray_address=address, resume=a.resume,
                      retries=a.retries, layer=a.layer, merged_crs=a.crs, max_in_flight=a.in_flight,
                      threads=a.threads, quiet=a.quiet)
    except KeyboardInterrupt:
        print("rs2sam2: interrupted; only complete outputs were kept (see manifest.jsonl); rerun with --resume to "
              "finish", file=sys.stderr)
        return 130
    where = s.merged or s.out_dir
    print(f"{s.rasters} raster(s): {s.done} done, {s.skipped} skipped (complete), {s.failed} failed; "
          f"{s.polygons} polygon(s) -> {where}")
    print(f"{s.seconds_total:.1f} s ({s.seconds_model_load:.1f} s model load) for {s.megapixels:.2f} Mpx "
          f"({s.seconds_per_megapixel:.3f} s/Mpx); {s.executor} on {s.device or 'n/a'}, {s.workers} worker(s)"
          + (f"; {s.actors_replaced} actor(s) replaced, {s.redone_after_worker_loss} raster(s) redone"
             if s.executor == "ray" else ""))
    if s.failed:
        print(f"failures: {s.failures_csv}", file=sys.stderr)
    return 3 if s.failed else 0  # 3: finished, but some rasters failed (failures.csv)
