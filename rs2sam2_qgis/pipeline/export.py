"""Write a SegmentResult with GDAL/OGR (pyogrio): GeoPackage, GeoJSON or Shapefile by extension, atomically.

The target is never written in place: a temporary copy beside it is written and renamed over it only at the end,
so a failed or cancelled run leaves the target byte-identical. In a GeoPackage each run adds a new layer per query
(named from the query, made unique), or appends to an existing layer of the same schema; other layers are never
touched.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings

import numpy as np
import pyogrio
import shapely
from pyproj import CRS

from .errors import InputError

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile"}
FIELDS = ["query", "score", "area_m2", "model", "device", "precision", "created_at", "presence", "rank"]
SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd")


def driver_for(path) -> str:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in DRIVERS:
        raise InputError(f"output '{path}' has an unsupported extension; use .gpkg, .geojson or .shp")
    return DRIVERS[ext]


def layer_name_for(query: str) -> str:
    name = re.sub(r"[^0-9A-Za-z]+", "_", query).strip("_").lower()[:60] or "query"
    return name if not name[0].isdigit() else f"q_{name}"


def check_output_path(path) -> str:
    """Raise InputError unless ``path`` has a supported extension and its folder is writable."""
    path = os.fspath(path)
    driver = driver_for(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"output folder {folder} does not exist; create it or choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {folder} is not writable; choose another output path")
    if os.path.isdir(path):
        raise InputError(f"output {path} is a folder; give a file name such as out.gpkg")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"output {path} is not writable (read-only); choose another output path")
    return driver


def _existing_layers(path) -> list[str]:
    if not os.path.exists(path):
        return []
    try:
        return [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path} exists but is not a vector file GDAL can open ({exc}); choose another output "
                         f"path") from None


def _unique(name: str, taken: set) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


def _columns(polys):
    geometry = np.array([shapely.to_wkb(p.geometry) for p in polys], dtype=object)
    data = [
        np.array([p.query for p in polys], dtype=object),
        np.array([p.score for p in polys], dtype=np.float64),
        np.array([np.nan if p.area_m2 is None else p.area_m2 for p in polys], dtype=np.float64),
        np.array([p.model for p in polys], dtype=object),
        np.array([p.device for p in polys], dtype=object),
        np.array([p.precision for p in polys], dtype=object),
        np.array([p.created_at for p in polys], dtype=object),
        np.array([np.nan if p.presence is None else p.presence for p in polys], dtype=np.float64),
        np.array([0 if p.rank is None else p.rank for p in polys], dtype=np.int32),
    ]
    return geometry, data


def _check_schema(path, layer, crs_wkt):
    info = pyogrio.read_info(path, layer=layer)
    have = [str(f).lower() for f in info["fields"]]
    if have != FIELDS:
        raise InputError(f"layer '{layer}' in {path} has another schema ({', '.join(have)}); choose another layer "
                         f"name or write a new layer instead of appending")
    theirs = info.get("crs")
    if theirs and crs_wkt and not CRS.from_user_input(theirs).equals(CRS.from_wkt(crs_wkt), ignore_axis_order=True):
        raise InputError(f"layer '{layer}' in {path} is in another CRS ({theirs}); choose another layer name or "
                         f"write a new layer instead of appending")


def plan_layers(result, driver: str, layer: str | None, existing: list[str], append: bool) -> list:
    """[(layer_name, polygons, append_to_existing)] for this result."""
    single = driver != "GPKG" or layer is not None or getattr(result, "single_layer", False) or \
        len(result.queries) == 1
    if single:
        name = layer or layer_name_for(result.queries[0] if len(result.queries) == 1 else "rs2sam2")
        groups = [(name, result.all_polygons())]
    else:
        groups = [(layer_name_for(q), result.polygons[q]) for q in result.queries]
    plan = []
    taken = set(existing)
    for name, polys in groups:
        if driver != "GPKG":
            plan.append((None, polys, append and bool(existing)))
            continue
        if append and name in existing:
            plan.append((name, polys, True))
        else:
            name = _unique(name, taken)
            taken.add(name)
            plan.append((name, polys, False))
    return plan


def write_vector(result, out_path, layer: str | None = None, append: bool = False) -> list[str]:
    """Write ``result`` to ``out_path`` (.gpkg/.geojson/.shp); returns the layer names written.

    GeoPackage: without ``layer``, one new layer per query named from it (``_2``... when taken) or, with
    ``result.single_layer`` or ``layer``, one layer holding every query (``query`` column). ``append=True``
    appends to an existing layer of the same name and schema instead of adding a new one. GeoJSON/Shapefile hold
    one layer: every query in it; append is supported for Shapefile only. Atomic: the target changes only on
    success.
    """
    out_path = os.fspath(out_path)
    driver = check_output_path(out_path)
    if append and driver == "GeoJSON":
        raise InputError("GeoJSON files cannot be appended to; write a new file or use a .gpkg")
    existing = _existing_layers(out_path) if driver == "GPKG" else ([out_path] if os.path.exists(out_path) else [])
    plan = plan_layers(result, driver, layer, existing, append)
    folder = os.path.dirname(os.path.abspath(out_path))
    base = os.path.basename(out_path)
    stem, ext = os.path.splitext(base)
    tmpdir = tempfile.mkdtemp(prefix=f".{stem}.rs2sam2-", dir=folder)
    try:
        tmp = os.path.join(tmpdir, base)
        if os.path.exists(out_path) and (driver == "GPKG" or append):
            if driver == "ESRI Shapefile":
                for sx in SHAPEFILE_SIDECARS:
                    if os.path.exists(os.path.join(folder, stem + sx)):
                        shutil.copy2(os.path.join(folder, stem + sx), os.path.join(tmpdir, stem + sx))
            else:
                shutil.copy2(out_path, tmp)
        written = []
        crs = result.crs_wkt
        for name, polys, to_existing in plan:
            if to_existing:
                _check_schema(tmp, name, crs)
            geometry, data = _columns(polys)
            kwargs = {}
            if driver == "GPKG":
                kwargs["layer"] = name
            if driver == "ESRI Shapefile":
                kwargs["encoding"] = "UTF-8"
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="'crs' was not provided")  # pixel coordinates
                pyogrio.raw.write(tmp, geometry, data, FIELDS, driver=driver, geometry_type="MultiPolygon",
                                  crs=crs, promote_to_multi=True, append=to_existing, **kwargs)
            written.append(name or stem)
        # commit: rename over the target only now
        if driver == "ESRI Shapefile":
            for sx in SHAPEFILE_SIDECARS:
                p = os.path.join(tmpdir, stem + sx)
                if os.path.exists(p):
                    os.replace(p, os.path.join(folder, stem + sx))
        else:
            os.replace(tmp, out_path)
        return written
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
