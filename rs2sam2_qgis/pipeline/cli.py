"""The `rs2sam2` command line: segment a raster by text, many rasters in a batch, describe a raster; parses
arguments and calls the library (SegmentRequest, load_predictor, run_request), nothing more.

    rs2sam2 segment RASTER "query" [more queries] -o out.gpkg [--model demo|PRESET|PATH|py:module:callable]
                    [--device auto|cpu|cuda] ...
    rs2sam2 batch INPUTS... -q "query" -o OUTDIR|out.gpkg ...   (batch_cli.py)
    rs2sam2 info RASTER
    rs2sam2 NAME ...   a command another installed package registers in the entry-point group "rs2sam2.commands"
                       (this repository's pyproject.toml registers train and eval); it gets the remaining arguments

Exit codes: 0 done; 2 bad input: one line ("rs2sam2: error: what is wrong; what to do"), any output file untouched;
3 `batch` finished but some rasters failed (failures.csv); 130 cancelled by Ctrl-C (nothing written).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import EntryPoint, entry_points

from .batch_cli import add_batch_parser, cmd_batch
from .cli_options import add_engine_arguments, model_choice_from_args, options_from_args
from .errors import Cancelled, InputError

#: entry-point group of the commands other packages add to `rs2sam2` (name -> "module:main", main(argv) -> int)
COMMANDS_GROUP = "rs2sam2.commands"


def registered_commands() -> dict[str, EntryPoint]:
    """Commands registered by installed packages, by name."""
    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


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
    s.add_argument("--append", action="store_true", help="append to an existing layer of the same schema")
    add_engine_arguments(s)
    add_batch_parser(sub)
    i = sub.add_parser("info", help="describe a raster (size, CRS, bands, nodata, default band mapping)")
    i.add_argument("raster")
    i.add_argument("--json", action="store_true", help="print JSON")
    for name, ep in sorted(registered_commands().items()):
        sub.add_parser(name, help=f"{ep.value} (see rs2sam2 {name} --help)", add_help=False)
    return p


def _fmt_area(m2: float) -> str:
    return f"{m2 / 1e4:,.2f} ha" if m2 >= 1e4 else f"{m2:,.1f} m2"


def cmd_segment(a) -> int:
    from .export import check_output_path
    from .predictors import load_predictor
    from .request import SegmentRequest
    from .request_run import run_request
    from .run import clean_queries
    from .source import open_source
    from .tiling import area_of_interest

    # everything checkable is checked before the (slow) model load
    options = options_from_args(a)
    request = SegmentRequest(raster=a.raster, queries=clean_queries(a.queries), output=a.output,
                             model=model_choice_from_args(a), options=options, layer=a.layer, append=a.append)
    check_output_path(request.output)
    area_of_interest(open_source(request.raster, request.options), request.options.extent)
    t0 = time.perf_counter()
    predictor = load_predictor(request.model)
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

    t_run = time.perf_counter()
    try:
        result, layers = run_request(request, predictor, progress=progress)
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
    print(f"total area {total}; {time.perf_counter() - t_run:.1f} s for {st.megapixels:.2f} Mpx "
          f"({st.seconds_per_megapixel:.3f} s/Mpx, {st.tiles_run}/{st.tiles_total} tiles of {st.tile} px); "
          f"device {st.device} ({st.device_reason}); precision {st.precision} ({st.precision_reason}); "
          f"model {st.model}; scope {st.scope}")
    if st.tiles_skipped or st.coarse_windows:
        print(f"search: {st.coarse_windows} window(s) looked at, {st.tiles_skipped} of {st.tiles_total} "
              f"fine tiles skipped; {st.forwards} model forwards ({st.second_looks} second looks at candidates)")
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


def main(argv: list | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = registered_commands().get(argv[0]) if argv else None
    if command is not None:
        return int(command.load()(argv[1:]) or 0)
    parser = _parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed as one line (2)
        return int(exc.code or 0)
    try:
        if a.command == "segment":
            return cmd_segment(a)
        if a.command == "batch":
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
