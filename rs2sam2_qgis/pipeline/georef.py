"""How a raster is placed on the map, decided once: an affine geotransform (rotated and sheared ones included), ground
control points warped through GDAL's GCP transformer, pixel coordinates without a CRS (only when asked), or a refusal.

Why: GDAL reports a raster without a geotransform as the identity transform. Taken at face value, a raster with a
CRS (or GCPs in a CRS) but no geotransform would have its pixel column/row written as map coordinates under that
CRS: polygons in the wrong place with nothing to say so.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from .errors import InputError

#: GDAL's polynomial GCP transformer needs at least this many points for order 1 (affine)
MIN_GCPS = 3


@dataclass(frozen=True)
class Placement:
    kind: str                  # "affine" | "gcps" | "pixel"
    crs_wkt: str | None     # None for "pixel"
    gcp_count: int = 0


def _has_geotransform(ds) -> bool:
    return not ds.transform.almost_equals(Affine.identity())


def _gcp_names(gcps, n: int = 3) -> str:
    shown = [f"(col {g.col:g}, row {g.row:g}) -> ({g.x:g}, {g.y:g})" for g in gcps[:n]]
    more = f" and {len(gcps) - n} more" if len(gcps) > n else ""
    return "; ".join(shown) + more


def placement(ds, path: str, allow_pixel_coords: bool) -> Placement:
    """Decide how ``ds`` is placed; InputError (one line) when it cannot be placed correctly."""
    gcps, gcp_crs = ds.gcps
    crs = ds.crs if ds.crs is not None and ds.crs.to_wkt() else None
    if _has_geotransform(ds):
        if crs is None:
            if allow_pixel_coords:
                return Placement("pixel", None)
            raise InputError(f"{path} has a geotransform but no CRS; assign one (gdal_edit.py -a_srs EPSG:xxxx "
                             f"{path}) or pass --allow-pixel-coords to write pixel coordinates")
        t = ds.transform
        if abs(t.a * t.e - t.b * t.d) == 0:
            raise InputError(f"{path} has a degenerate geotransform (zero pixel size); fix its georeferencing")
        return Placement("affine", crs.to_wkt())
    if gcps:
        gcrs = gcp_crs if gcp_crs is not None and gcp_crs.to_wkt() else crs
        if gcrs is None:
            raise InputError(f"{path} has {len(gcps)} ground control points ({_gcp_names(gcps)}) but no CRS for "
                             f"them; assign one (gdal_translate -a_srs EPSG:xxxx) or warp it with gdalwarp")
        if len(gcps) < MIN_GCPS:
            raise InputError(f"{path} is georeferenced by only {len(gcps)} ground control point(s) "
                             f"({_gcp_names(gcps)}); at least {MIN_GCPS} are needed to place it: add GCPs or warp "
                             f"it first (gdalwarp -t_srs EPSG:xxxx in out.tif)")
        return Placement("gcps", gcrs.to_wkt(), len(gcps))
    if getattr(ds, "rpcs", None) is not None:
        raise InputError(f"{path} is georeferenced by RPCs (rational polynomial coefficients) only; orthorectify "
                         f"it first (gdalwarp -rpc -t_srs EPSG:xxxx {path} out.tif)")
    if crs is not None:
        raise InputError(f"{path} has a CRS but no geotransform, so its pixels have no place on the map; "
                         f"georeference it (gdal_edit.py -a_ullr or -a_gt) or drop the CRS and pass "
                         f"--allow-pixel-coords")
    if allow_pixel_coords:
        return Placement("pixel", None)
    raise InputError(f"{path} has no CRS; assign one (gdal_edit.py -a_srs EPSG:xxxx {path}) or pass "
                     f"--allow-pixel-coords to write pixel coordinates")


def warp_gcps(ds, crs_wkt: str, path: str):
    """A WarpedVRT of a GCP-only dataset through GDAL's polynomial GCP transformer, north-up in the GCPs' CRS; an
    alpha band marks the pixels outside the source. Fails as InputError naming the GCPs."""
    from rasterio.crs import CRS
    from rasterio.vrt import WarpedVRT

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return WarpedVRT(ds, src_crs=CRS.from_wkt(crs_wkt), crs=CRS.from_wkt(crs_wkt),
                             add_alpha=ds.nodata is None and not _has_alpha(ds))
    except Exception as exc:  # noqa: BLE001 - GDAL's reasons vary; the GCPs are what the user can fix
        gcps = ds.gcps[0]
        raise InputError(f"{path}: GDAL cannot fit a transform to its {len(gcps)} ground control points "
                         f"({_gcp_names(gcps)}): {' '.join(str(exc).split())}; warp it first "
                         f"(gdalwarp -t_srs EPSG:xxxx in out.tif)") from None


def _has_alpha(ds) -> bool:
    from rasterio.enums import ColorInterp

    return ColorInterp.alpha in ds.colorinterp


@contextlib.contextmanager
def warped(ds, crs_wkt: str, path: str):
    """``warp_gcps`` as a context manager that closes the VRT and the dataset under it."""
    vrt = warp_gcps(ds, crs_wkt, path)
    try:
        yield vrt
    finally:
        vrt.close()
        ds.close()
