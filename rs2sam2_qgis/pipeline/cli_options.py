"""The engine options of the command line, shared by `rs2sam2 segment` and `rs2sam2 batch`: their arguments and
the SegmentOptions they make (one definition of each option; defaults, choices and limits from options.py)."""
from __future__ import annotations

import argparse

from .errors import InputError
from .options import MODES, SCOPES, SegmentOptions
from .request import ModelChoice

_D = SegmentOptions()


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of a run but the inputs, the output and --append (those differ between segment and batch)."""
    p.add_argument("--model", default="demo",
                   help="'demo' (bundled, default), a preset name, a checkpoint file, a release folder, or "
                        "py:module:callable (your own model code)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    p.add_argument("--mode", default=MODES[0], choices=MODES,
                   help="analyst (default): probabilities at each tile's size; authors: the RS2-SAM2 authors' "
                        "contract (PIL resize to 1024/224, fp32, their mask where logit > 0.5)")
    p.add_argument("--tile", type=int, default=_D.tile, help="tile size in pixels (default: the model's)")
    p.add_argument("--overlap", type=float, default=_D.overlap, help=f"tile overlap fraction ({_D.overlap})")
    p.add_argument("--threshold", type=float, default=_D.threshold, help=f"probability threshold ({_D.threshold})")
    p.add_argument("--refine-edges", action=argparse.BooleanOptionalAction, default=_D.refine_edges,
                   help="draw each answer's outline on the image's colour edges, within half a mask cell "
                        "(default on; --no-refine-edges: the model's outlines as drawn)")
    p.add_argument("--min-area", type=float, default=_D.min_area_m2, help="drop polygons smaller than this (m2)")
    p.add_argument("--min-pixels", type=int, default=_D.min_pixels, help=f"drop specks ({_D.min_pixels} px)")
    p.add_argument("--simplify", type=float, default=_D.simplify,
                   help="simplify tolerance in map units (default: half a pixel; 0: none)")
    p.add_argument("--fill-holes", type=float, default=_D.fill_holes_m2, help="fill holes smaller than this (m2)")
    p.add_argument("--max-edges", type=int, default=_D.polygonize_max_edges,
                   help="masks with more pixel edges are polygonized on coarser cells, with a warning (bounds "
                        f"memory: ~100 MB per 2 million; default {_D.polygonize_max_edges})")
    p.add_argument("--extent", help="xmin,ymin,xmax,ymax in the raster's CRS")
    p.add_argument("--bands", help="band numbers for R,G,B, e.g. 3,2,1 (default: RGB / 1,2,3 / grey)")
    p.add_argument("--gsd", type=float, help="resample to this ground sample distance (map units per pixel)")
    p.add_argument("--batch-size", type=int, default=_D.batch_size, help=f"tiles per batch ({_D.batch_size})")
    p.add_argument("--layer", help="GeoPackage layer name (one layer for all queries)")
    p.add_argument("--single-layer", action="store_true", help="one layer with a query column for all queries")
    p.add_argument("--allow-pixel-coords", action="store_true",
                   help="accept a raster without CRS and write pixel coordinates (column, row)")
    p.add_argument("--scope", default=_D.scope, choices=SCOPES,
                   help="extent (default): answer each query for the whole extent (nothing where the referent is "
                        "absent; 'the largest', 'in the top left', 'the two ...' judged over the extent); tile: "
                        "every tile answers on its own")
    p.add_argument("--presence-threshold", type=float, default=_D.presence_threshold,
                   help="extent scope: tiles whose presence is below this give nothing (default: the model's own "
                        "calibrated threshold)")
    p.add_argument("--search-levels", type=int, default=_D.search_levels,
                   help=f"extent scope: halvings of the overview in which a singular referent is searched "
                        f"({_D.search_levels}; 0 = run every tile)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep per-tile image features in DIR and reuse them on later runs (models whose image "
                        "features do not depend on the text, e.g. RSRefSeg); bounded, safe to share")
    p.add_argument("--feature-cache-mb", type=float, default=_D.feature_cache_max_mb,
                   help=f"bound of the disk feature cache in MB ({_D.feature_cache_max_mb:g})")


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


def model_choice_from_args(a: argparse.Namespace) -> ModelChoice:
    """The model of parsed engine arguments; a py: spec is accepted: the person running the command typed it."""
    return ModelChoice(spec=a.model, allow_code=True, device=a.device, precision=a.precision, mode=a.mode)


def options_from_args(a: argparse.Namespace) -> SegmentOptions:
    """The validated SegmentOptions of parsed engine arguments; a bad value is one InputError line."""
    return SegmentOptions(
        tile=a.tile, overlap=a.overlap, threshold=a.threshold, refine_edges=a.refine_edges, min_area_m2=a.min_area,
        min_pixels=a.min_pixels,
        simplify=a.simplify, fill_holes_m2=a.fill_holes, polygonize_max_edges=a.max_edges,
        extent=_floats(a.extent, 4, "extent", "--extent 500000,4999000,501000,5000000") if a.extent else None,
        bands=_ints(a.bands, "bands", "--bands 3,2,1") if a.bands else None,
        gsd=a.gsd, batch_size=a.batch_size, allow_pixel_coords=a.allow_pixel_coords,
        single_layer=a.single_layer, feature_cache=a.feature_cache, feature_cache_max_mb=a.feature_cache_mb,
        scope=a.scope, presence_threshold=a.presence_threshold, search_levels=a.search_levels,
    ).validate()
