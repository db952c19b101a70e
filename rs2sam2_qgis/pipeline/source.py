"""Raster input: validation, band mapping, dtype stretch and window reads -> (RGB uint8, valid mask).

Never reads the whole raster: statistics come from overviews or a decimated read, tiles are read window by window.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.windows import Window

from .errors import InputError
from .georef import placement, warped
from .options import SegmentOptions

STATS_MAX_SIDE = 1024  # side of the decimated read used for the stretch statistics


@dataclass
class RasterSource:
    """What the engine needs to know about one raster, validated. Coordinates are in 'grid' pixels: the raster's
    own pixels, or resampled ones when a GSD is set (``scale`` = grid pixels per raster pixel)."""

    path: str
    width: int          # raster pixels
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: Affine   # raster pixel -> map (identity with pixel coordinates)
    pixel_coords: bool
    bands: tuple        # 1-based indices for R, G, B
    alpha: int | None
    palette: np.ndarray | None  # 256x3 LUT for a paletted band
    stretch: list | None        # [(lo, hi)] per output channel, None for uint8
    scale: float = 1.0
    nodata: float | None = None
    placed_by: str = "affine"      # georef.Placement.kind: "affine", "gcps" (read through a warp) or "pixel"

    @property
    def grid_width(self) -> int:
        return max(1, int(round(self.width * self.scale)))

    @property
    def grid_height(self) -> int:
        return max(1, int(round(self.height * self.scale)))

    @property
    def grid_transform(self) -> Affine:
        if self.scale == 1.0:
            return self.transform
        return self.transform * Affine.scale(self.width / self.grid_width, self.height / self.grid_height)

    @property
    def pixel_size(self) -> float:
        """Mean side of a grid pixel in map units."""
        t = self.grid_transform
        return math.sqrt(abs(t.a * t.e - t.b * t.d))

    def open(self):
        """The dataset to read windows from (GCP-only rasters: a warp through their GCPs); a context manager."""
        return _open_placed(self.path, self.placed_by, self.crs_wkt)

    # ------------------------------------------------------------------ reading
    def read(self, ds, row: int, col: int, height: int, width: int, out_size: int | None = None):
        """Grid window (may extend past the raster: padded, invalid there) -> (rgb uint8 [h,w,3], valid bool [h,w]).
        ``out_size``: return the window shrunk to out_size x out_size pixels instead (area-averaged, read through
        GDAL's overviews when the file has them): the overview of whole-extent search."""
        oh, ow = (height, width) if out_size is None else (int(out_size), int(out_size))
        fy, fx = oh / height, ow / width
        rgb = np.zeros((oh, ow, 3), np.uint8)
        valid = np.zeros((oh, ow), bool)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, self.grid_height), min(col + width, self.grid_width)
        if r1 <= r0 or c1 <= c0:
            return rgb, valid
        h, w = r1 - r0, c1 - c0
        # the output rectangle the raster's part of the window lands in
        o_r0, o_c0 = int(round((r0 - row) * fy)), int(round((c0 - col) * fx))
        o_h = max(1, min(oh - o_r0, int(round(h * fy))))
        o_w = max(1, min(ow - o_c0, int(round(w * fx))))
        uniq = sorted(set(self.bands))
        try:
            if self.scale == 1.0 and out_size is None:
                win = Window(c0, r0, w, h)
                data = ds.read(uniq, window=win)
                masks = ds.read_masks(uniq, window=win)
            else:
                sx, sy = self.width / self.grid_width, self.height / self.grid_height
                win = Window(c0 * sx, r0 * sy, w * sx, h * sy)
                shrink = Resampling.average if out_size is not None else Resampling.bilinear
                data = ds.read(uniq, window=win, out_shape=(len(uniq), o_h, o_w), resampling=shrink)
                masks = ds.read_masks(uniq, window=win, out_shape=(len(uniq), o_h, o_w),
                                      resampling=Resampling.nearest)
        except (RasterioError, CPLE_BaseError) as exc:
            raise unreadable(self.path, exc, f"rows {int(win.row_off)}-{int(win.row_off + win.height)}, columns "
                                             f"{int(win.col_off)}-{int(win.col_off + win.width)}") from None
        ok = np.any(masks > 0, axis=0)  # GDAL's rule: nodata only where every band is
        if data.dtype.kind == "f":
            ok &= np.all(np.isfinite(data), axis=0)
        planes = [data[uniq.index(b)] for b in self.bands]
        out = self._to_uint8(planes)
        out[~ok] = 0
        rgb[o_r0:o_r0 + o_h, o_c0:o_c0 + o_w] = out
        valid[o_r0:o_r0 + o_h, o_c0:o_c0 + o_w] = ok
        return rgb, valid

    def _to_uint8(self, planes) -> np.ndarray:
        if self.palette is not None:
            idx = np.clip(planes[0], 0, 255).astype(np.uint8)
            return self.palette[idx]
        h, w = planes[0].shape
        out = np.empty((h, w, 3), np.uint8)
        for k, p in enumerate(planes):
            if self.stretch is None:
                out[..., k] = p
            else:
                lo, hi = self.stretch[k]
                q = (p.astype(np.float32) - lo) * (255.0 / (hi - lo))
                np.nan_to_num(q, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
                out[..., k] = np.clip(q + 0.5, 0, 255).astype(np.uint8)
        return out


def _open(path):
    """rasterio.open of a raster the user named, or one InputError line saying what is wrong with the path; no
    NotGeoreferencedWarning (a missing CRS is reported as an InputError where it matters)."""
    if not os.path.exists(path) and not path.startswith("/vsi"):
        raise InputError(f"raster not found: {path}; check the path")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a raster; give a raster file such as a GeoTIFF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError:
        raise InputError(f"{path} is not a raster GDAL can read; give a GeoTIFF or another GDAL raster") from None


def unreadable(path: str, exc: BaseException, where: str) -> InputError:
    """A read that failed mid-file (truncated or corrupt blocks): one line naming the file and the window."""
    cause = exc.__cause__ or exc.__context__ or exc
    detail = " ".join(str(cause).split()) or type(exc).__name__
    return InputError(f"{path} cannot be read at {where} (GDAL: {detail}): the file is truncated or corrupt; "
                      f"copy or export it again (gdal_translate), nothing was written")


def _open_placed(path: str, placed_by: str, crs_wkt: str | None):
    ds = _open(path)
    return warped(ds, crs_wkt, path) if placed_by == "gcps" else ds


def _choose_bands(ds, requested) -> tuple[tuple, int | None]:
    ci = list(ds.colorinterp)
    alpha = next((i + 1 for i, c in enumerate(ci) if c == ColorInterp.alpha), None)
    n = ds.count
    if requested is not None:
        b = [int(i) for i in requested]
        bad = [i for i in b if not 1 <= i <= n]
        if bad:
            raise InputError(f"band(s) {bad} do not exist: the raster has {n} band(s); choose --bands among 1..{n}")
        return (tuple(b * 3) if len(b) == 1 else tuple(b)), alpha
    data_bands = [i + 1 for i in range(n) if i + 1 != alpha]
    if len(data_bands) == 1:
        return (data_bands[0],) * 3, alpha
    if len(data_bands) == 3:
        return tuple(data_bands), alpha
    by_ci = {c: i + 1 for i, c in reversed(list(enumerate(ci)))}
    if all(c in by_ci for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return (by_ci[ColorInterp.red], by_ci[ColorInterp.green], by_ci[ColorInterp.blue]), alpha
    raise InputError(f"the raster has {len(data_bands)} data bands and no red/green/blue colour interpretation; "
                     f"choose three with --bands R,G,B (e.g. --bands 3,2,1 or --bands 4,3,2)")


def _stretch(ds, bands, options: SegmentOptions, path: str):
    """Percentile stretch from overviews / a decimated read, nodata masked; [(lo, hi)] per output channel."""
    uniq = sorted(set(bands))
    f = min(1.0, STATS_MAX_SIDE / max(ds.width, ds.height))
    shape = (len(uniq), max(1, int(ds.height * f)), max(1, int(ds.width * f)))
    try:
        data = ds.read(uniq, out_shape=shape, resampling=Resampling.nearest)
        masks = ds.read_masks(uniq, out_shape=shape, resampling=Resampling.nearest)
    except (RasterioError, CPLE_BaseError) as exc:
        raise unreadable(path, exc, "a decimated read of the whole raster (for its statistics)") from None
    ok = np.any(masks > 0, axis=0)  # GDAL's rule: nodata only where every band is
    if data.dtype.kind == "f":
        ok &= np.all(np.isfinite(data), axis=0)
    if not ok.any():
        raise InputError(f"{path} holds no valid pixel (every pixel is nodata or masked); check its nodata value "
                         f"and mask (rs2sam2 info) or choose another raster")
    lo_p, hi_p = options.stretch_percentiles

    def lohi(values):
        lo, hi = np.percentile(values, [lo_p, hi_p])
        if not hi > lo:
            lo, hi = float(values.min()), float(values.max())
        if not hi > lo:
            hi = lo + 1.0
        return float(lo), float(hi)

    if options.stretch_per_band:
        per = {b: lohi(data[uniq.index(b)][ok].astype(np.float64)) for b in uniq}
        return [per[b] for b in bands]
    joint = lohi(np.concatenate([data[uniq.index(b)][ok].astype(np.float64) for b in uniq]))
    return [joint] * 3


def open_source(path, options: SegmentOptions) -> RasterSource:
    """Validate a raster and prepare its reading; bad input raises InputError (one line)."""
    path = os.fspath(path)
    with _open(path) as ds:
        if ds.count < 1 or ds.width < 1 or ds.height < 1:
            raise InputError(f"{path} has no pixels or no bands; give a raster with image data")
        place = placement(ds, path, options.allow_pixel_coords)
    with _open_placed(path, place.kind, place.crs_wkt) as ds:
        crs_wkt, pixel_coords = place.crs_wkt, place.kind == "pixel"
        transform = Affine.identity() if pixel_coords else ds.transform
        bands, alpha = _choose_bands(ds, options.bands)
        palette = None
        if len(set(bands)) == 1 and ds.colorinterp[bands[0] - 1] == ColorInterp.palette:
            try:
                cmap = ds.colormap(bands[0])
                palette = np.zeros((256, 3), np.uint8)
                for k, v in cmap.items():
                    if 0 <= k < 256:
                        palette[k] = v[:3]
            except ValueError:
                palette = None
        dtypes = {ds.dtypes[b - 1] for b in bands}
        dtype = ds.dtypes[bands[0] - 1]
        stretch = None if (dtypes == {"uint8"} or palette is not None) else _stretch(ds, bands, options, path)
        scale = 1.0
        if options.gsd is not None:
            native = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
            scale = native / float(options.gsd)
            if not 1e-3 < scale < 16:
                raise InputError(f"gsd {options.gsd} is too far from the raster's {native:.6g} map units per "
                                 f"pixel; use a value within 16x of it")
        return RasterSource(path=path, width=ds.width, height=ds.height, count=ds.count, dtype=dtype,
                            crs_wkt=crs_wkt, transform=transform, pixel_coords=pixel_coords, bands=bands,
                            alpha=alpha, palette=palette, stretch=stretch, scale=scale, nodata=ds.nodata,
                            placed_by=place.kind)


def raster_info(path) -> dict:
    """A short description of a raster (the CLI's `info`)."""
    path = os.fspath(path)
    ds = _open(path)
    with ds:
        t = ds.transform
        info = {
            "path": path, "driver": ds.driver, "width": ds.width, "height": ds.height, "count": ds.count,
            "dtypes": list(ds.dtypes), "nodata": ds.nodata,
            "colorinterp": [c.name for c in ds.colorinterp],
            "crs": ds.crs.to_string() if ds.crs else None,
            "crs_is_geographic": bool(ds.crs.is_geographic) if ds.crs else None,
            "transform": list(t)[:6], "rotated": bool(t.b or t.d),
            "bounds": list(ds.bounds), "block_shapes": [list(s) for s in ds.block_shapes[:1]],
            "overviews": ds.overviews(1), "megapixels": ds.width * ds.height / 1e6,
            "mask_flags": [[f.name for f in fl] for fl in ds.mask_flag_enums],
        }
        try:
            bands, _ = _choose_bands(ds, None)
            info["default_bands"] = list(bands)
        except InputError as e:
            info["default_bands"] = None
            info["note"] = str(e)
        return info
