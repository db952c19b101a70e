"""The `rs2sam2` command line: segment a raster by text, describe a raster, and hand train/eval to training/.

    rs2sam2 segment RASTER "query" [more queries] -o out.gpkg [--model demo|PATH] [--device auto|cpu|cuda] ...
    rs2sam2 info RASTER
    rs2sam2 train ...   /   rs2sam2 eval ...     (training.train.main / training.evaluate.main)

Exit codes: 0 done; 2 bad input: one line ("rs2sam2: error: what is wrong; what to do"), any output file untouched;
3 `batch` finished but some rasters failed (failures.csv); 130 cancelled by Ctrl-C (nothing written).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Optional

from .errors import Cancelled, InputError
from .options import SCOPES, SegmentOptions

_D = SegmentOptions()


def load_model(spec: str):
    """The model behind ``--model``: "demo" (bundled) or a checkpoint path; a bad file is one InputError line."""
    from .model_files import load_model_file

    return load_model_file(spec)


def make_predictor(model, device: str, precision: str, mode: str = "analyst"):
    from model_core.predictor import Predictor

    try:
        return Predictor(model, device=device, precision=precision, mode=mode)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def _floats(text: str, n: int, what: str, example: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) != n:
        raise InputError(f"{what} '{text}' is not {n} comma-separated numbers; e.g. {example}")
    return vals


def _ints(text: str, what: str, example: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise InputError(f"{what} '{text}' is not comma-separated band numbers; e.g. {example}") from None


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as the CLI's one line (argparse prints the whole usage first) and exit code 2."""

    def error(self, message: str):
        hint = f"run {self.prog} --help"
        if any(m in message for m in ("unrecognized arguments: -", "expected one argument", ": queries")):
            hint = 'a query that starts with "-" goes after "--", e.g. rs2sam2 segment in.tif -o out.gpkg -- "-x"; ' \
                   + hint
        print(f"rs2sam2: error: {message}; {hint}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rs2sam2", description="Find objects described in words in a georeferenced "
                                "raster and write them as polygons.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment", help="segment a raster by text queries into polygons")
    s.add_argument("raster", help="GeoTIFF or any GDAL raster")
    s.add_argument("queries", nargs="+", help='what to find, e.g. "the white storage tanks" (several allowed)')
    s.add_argument("-o", "--output", required=True, help="output .gpkg, .geojson or .shp")
    s.add_argument("--model", default="demo", help="'demo' (bundled, default) or a checkpoint path")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    s.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    s.add_argument("--mode", default="analyst", choices=("analyst", "authors"),
                   help="analyst (default): probabilities at each tile's size; authors: the RS2-SAM2 authors' "
                        "contract (PIL resize to 1024/224, fp32, their mask where logit > 0.5)")
    s.add_argument("--tile", type=int, default=_D.tile, help="tile size in pixels (default: the model's)")
    s.add_argument("--overlap", type=float, default=_D.overlap, help=f"tile overlap fraction ({_D.overlap})")
    s.add_argument("--threshold", type=float, default=_D.threshold, help=f"probability threshold ({_D.threshold})")
    s.add_argument("--min-area", type=float, default=_D.min_area_m2, help="drop polygons smaller than this (m2)")
    s.add_argument("--min-pixels", type=int, default=_D.min_pixels, help=f"drop specks ({_D.min_pixels} px)")
    s.add_argument("--simplify", type=float, default=_D.simplify,
                   help="simplify tolerance in map units (default: half a pixel; 0: none)")
    s.add_argument("--fill-holes", type=float, default=_D.fill_holes_m2, help="fill holes smaller than this (m2)")
    s.add_argument("--max-edges", type=int, default=_D.polygonize_max_edges,
                   help="masks with more pixel edges are polygonized on coarser cells, with a warning (bounds "
                        f"memory: ~100 MB per 2 million; default {_D.polygonize_max_edges})")
    s.add_argument("--extent", help="xmin,ymin,xmax,ymax in the raster's CRS")
    s.add_argument("--bands", help="band numbers for R,G,B, e.g. 3,2,1 (default: RGB / 1,2,3 / grey)")
    s.add_argument("--gsd", type=float, help="resample to this ground sample distance (map units per pixel)")
    s.add_argument("--batch-size", type=int, default=_D.batch_size, help=f"tiles per batch ({_D.batch_size})")
    s.add_argument("--layer", help="GeoPackage layer name (one layer for all queries)")
    s.add_argument("--append", action="store_true", help="append to an existing layer of the same schema")
    s.add_argument("--single-layer", action="store_true", help="one layer with a query column for all queries")
    s.add_argument("--allow-pixel-coords", action="store_true",
                   help="accept a raster without CRS and write pixel coordinates (column, row)")
    s.add_argument("--scope", default=_D.scope, choices=SCOPES,
                   help="extent (default): answer each query for the whole extent (nothing where the referent is "
                        "absent; 'the largest', 'in the top left', 'the two ...' judged over the extent); tile: "
                        "every tile answers on its own")
    s.add_argument("--presence-threshold", type=float, default=_D.presence_threshold,
                   help="extent scope: tiles whose presence is below this give nothing (default: the model's own "
                        "calibrated threshold)")
    s.add_argument("--search-levels", type=int, default=_D.search_levels,
                   help=f"extent scope: coarse levels searched before the fine tiles for a singular referent "
                        f"({_D.search_levels}; 0 = run every tile)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--feature-cache", metavar="DIR",
                   help="keep per-tile image features in DIR and reuse them on later runs (models whose image "
                        "features do not depend on the text, e.g. RSRefSeg); bounded, safe to share")
    s.add_argument("--feature-cache-mb", type=float, default=_D.feature_cache_max_mb,
                   help=f"bound of the disk feature cache in MB ({_D.feature_cache_max_mb:g})")
    from .batch_cli import add_batch_parser
    add_batch_parser(sub, s)  # rs2sam2 batch: shares the options above
    i = sub.add_parser("info", help="describe a raster (size, CRS, bands, nodata, default band mapping)")
    i.add_argument("raster")
    i.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("train", help="train a model (training.train; see rs2sam2 train --help)", add_help=False)
    sub.add_parser("eval", help="evaluate a model (training.evaluate; see rs2sam2 eval --help)", add_help=False)
    return p


def _options(a) -> SegmentOptions:
    return SegmentOptions(
        tile=a.tile, overlap=a.overlap, threshold=a.threshold, min_area_m2=a.min_area, min_pixels=a.min_pixels,
        simplify=a.simplify, fill_holes_m2=a.fill_holes, polygonize_max_edges=a.max_edges,
        extent=_floats(a.extent, 4, "extent", "--extent 500000,4999000,501000,5000000") if a.extent else None,
        bands=_ints(a.bands, "bands", "--bands 3,2,1") if a.bands else None,
        gsd=a.gsd, batch_size=a.batch_size, allow_pixel_coords=a.allow_pixel_coords,
        single_layer=a.single_layer, feature_cache=getattr(a, "feature_cache", None),
        feature_cache_max_mb=getattr(a, "feature_cache_mb", _D.feature_cache_max_mb),
        scope=getattr(a, "scope", _D.scope),
        presence_threshold=getattr(a, "presence_threshold", _D.presence_threshold),
        search_levels=getattr(a, "search_levels", _D.search_levels),
    ).validate()


def _fmt_area(m2: float) -> str:
    return f"{m2 / 1e4:,.2f} ha" if m2 >= 1e4 else f"{m2:,.1f} m2"


def cmd_segment(a) -> int:
    from .export import check_output_path, write_vector
    from .run import clean_queries, segment_raster
    from .source import open_source
    from .tiling import area_of_interest

    # everything checkable is checked before the (slow) model load
    options = _options(a)
    queries = clean_queries(a.queries)
    check_output_path(a.output)
    src = open_source(a.raster, options)
    area_of_interest(src, options.extent)
    t0 = time.perf_counter()
    model = load_model(a.model)
    predictor = make_predictor(model, a.device, a.precision, getattr(a, "mode", "analyst"))
    t_load = time.perf_counter() - t0
    print(f"model {predictor.model_name} on {predictor.device} ({predictor.device_reason}), {predictor.precision} "
          f"({predictor.precision_reason}), loaded in {t_load:.1f} s", file=sys.stderr)

    bar = None
    if not a.quiet:
        from tqdm import tqdm
        bar = tqdm(total=1000, unit="‰", desc="segment", file=sys.stderr, leave=True,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def progress(frac, msg):
        if bar is not None:
            bar.n = int(round(frac * 1000))
            bar.set_postfix_str(msg, refresh=False)
            bar.refresh()

    try:
        result = segment_raster(a.raster, queries, predictor, options, progress=progress)
        t1 = time.perf_counter()
        layers = write_vector(result, a.output, layer=a.layer, append=a.append)
        t_write = time.perf_counter() - t1
    finally:
        if bar is not None:
            bar.close()
    st = result.stats
    for warning in st.warnings:
        print(f"rs2sam2: warning: {warning}", file=sys.stderr)
    print(f"wrote {result.count} polygon(s) to {a.output} (layer(s): {', '.join(layers)})")
    for q in result.queries:
        polys = result.polygons[q]
        area = sum(p.area_m2 or 0.0 for p in polys)
        unit = _fmt_area(area) if result.crs_wkt else f"{area:,.0f} px"
        how = f" [{st.plans[q]}]" if q in st.plans else ""
        print(f"  '{q}': {len(polys)} polygon(s), {unit}{how}")
    total = _fmt_area(result.total_area_m2) if result.crs_wkt else "n/a (pixel coordinates)"
    print(f"total area {total}; {st.seconds_total + t_write:.1f} s for {st.megapixels:.2f} Mpx "
          f"({st.seconds_per_megapixel:.3f} s/Mpx, {st.tiles_run}/{st.tiles_total} tiles of {st.tile} px); "
          f"device {st.device} ({st.device_reason}); precision {st.precision} ({st.precision_reason}); "
          f"model {st.model}; scope {st.scope}")
    if st.tiles_skipped or st.coarse_windows:
        print(f"search: {st.coarse_windows} coarse window(s) looked at, {st.tiles_skipped} of {st.tiles_total} "
              f"fine tiles skipped; {st.forwards} model forwards")
    if st.tiles_encoded or st.feature_cache_hits:
        print(f"features: {st.tiles_encoded} tile(s) encoded, {st.feature_cache_hits} from the feature cache")
    if st.cuda_oom_halvings:
        print(f"CUDA ran out of memory {st.cuda_oom_halvings} time(s): the batch was halved to {st.batch_size} "
              f"(image, query) pairs and the run continued")
    return 0


def cmd_info(a) -> int:
    from .source import raster_info

    info = raster_info(a.raster)
    if a.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info['path']}: {info['driver']} {info['width']} x {info['height']} px ({info['megapixels']:.2f} Mpx), "
          f"{info['count']} band(s) {', '.join(info['dtypes'])} [{', '.join(info['colorinterp'])}]")
    print(f"  CRS: {info['crs'] or 'none (use --allow-pixel-coords)'}"
          + ("  (geographic)" if info['crs_is_geographic'] else ""))
    print(f"  bounds: {', '.join(f'{v:.6g}' for v in info['bounds'])}; rotated: {info['rotated']}")
    print(f"  nodata: {info['nodata']}; mask: {info['mask_flags'][0] if info['mask_flags'] else []}; "
          f"overviews: {info['overviews'] or 'none'}; blocks: {info['block_shapes']}")
    print(f"  default bands (R,G,B): {info['default_bands'] or info.get('note')}")
    return 0


def main(argv: Optional[list] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "eval"):
        import importlib

        mod = importlib.import_module("training.train" if argv[0] == "train" else "training.evaluate")
        rc = mod.main(argv[1:])
        return int(rc or 0)
    parser = _parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed as one line (2)
        return int(exc.code or 0)
    try:
        if a.command == "segment":
            return cmd_segment(a)
        if a.command == "batch":
            from .batch_cli import cmd_batch
            return cmd_batch(a)
        if a.command == "info":
            return cmd_info(a)
    except InputError as exc:
        print(f"rs2sam2: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("rs2sam2: cancelled; nothing was written", file=sys.stderr)
        return 130
    parser.error(f"unknown command {a.command}")
    return 2


if __name__ == "__main__":  # python -m rs2sam2_qgis.pipeline.cli
    sys.exit(main())
