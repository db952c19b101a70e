"""A folder of GeoTIFFs with GeoPackage labels, turned into referring samples.

    <root>/<name>.tif (or .tiff)   RGB (or 1-band) raster, any CRS
    <root>/<name>.gpkg             polygons with a `text` column (the sentence that refers to the feature) and an
                                   optional `split` column (train/val/test); a .gpkg without a raster of the same
                                   name labels every raster of the folder
Each feature gives one sample: a square chip (`chip` raster pixels, larger when the object does not fit) centred on
the feature and clamped to the raster, and its mask rasterised with rasterio.features from the union of the
features that carry the same text (a class-level sentence such as "the storage tanks" means all of them).
Without a `split` column a feature's split is fixed by a hash of (raster, feature id): 80% train, 10% val, 10% test.
Non-uint8 rasters are stretched to uint8 by the raster's 2-98 percentiles (computed once, from a decimated read).
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import rasterio.features
import rasterio.warp
import rasterio.windows
import shapely
from shapely.geometry import mapping, shape

from .common import RefDataset


def _hash_split(key: str, val: float, test: float) -> str:
    u = (zlib.crc32(key.encode()) % 10000) / 10000.0
    return "val" if u < val else "test" if u < val + test else "train"


class GISFolder(RefDataset):
    name = "gis"

    def __init__(self, root, split: str = "train", size: int | None = 256, *, chip: int = 256,
                 text_column: str = "text", split_column: str = "split", val_fraction: float = 0.1,
                 test_fraction: float = 0.1, transform=None):
        super().__init__(split=split, size=size, transform=transform)
        self.root, self.chip = Path(root), chip
        rasters = sorted(p for p in self.root.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not rasters:
            raise FileNotFoundError(f"no GeoTIFF (.tif/.tiff) in {self.root}")
        shared = [p for p in sorted(self.root.glob("*.gpkg")) if not any(r.stem == p.stem for r in rasters)]
        self.rasters: list[dict] = []
        self.items: list[tuple[int, int]] = []
        for path in rasters:
            own = path.with_suffix(".gpkg")
            label_files = [own] if own.exists() else shared
            with rasterio.open(path) as src:
                info = {"path": path, "crs": src.crs, "transform": src.transform, "height": src.height,
                        "width": src.width, "count": src.count, "dtype": src.dtypes[0], "features": []}
                bounds = shapely.box(*src.bounds)
            for lf in label_files:
                meta, fids, geoms, fields = pyogrio.raw.read(lf, return_fids=True)
                names = list(meta["fields"])
                if text_column not in names:
                    raise ValueError(f"{lf} has no {text_column!r} column (columns: {names})")
                texts = fields[names.index(text_column)]
                splits = fields[names.index(split_column)] if split_column in names else None
                for k, (fid, wkb) in enumerate(zip(fids, geoms)):
                    if wkb is None or texts[k] is None or not str(texts[k]).strip():
                        continue
                    geom = shapely.from_wkb(wkb)
                    if meta.get("crs") and info["crs"] and rasterio.crs.CRS.from_user_input(meta["crs"]) != info["crs"]:
                        geom = shape(rasterio.warp.transform_geom(meta["crs"], info["crs"], mapping(geom)))
                    if geom.is_empty or not geom.intersects(bounds):
                        continue
                    sp = str(splits[k]) if splits is not None and splits[k] else \
                        _hash_split(f"{path.name}:{lf.name}:{fid}", val_fraction, test_fraction)
                    info["features"].append({"geom": geom, "text": str(texts[k]).strip(), "split": sp})
            ri = len(self.rasters)
            self.rasters.append(info)
            self.items += [(ri, fi) for fi, f in enumerate(info["features"]) if f["split"] == split]
        self._stretch: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def _to_uint8(self, ri: int, src, data: np.ndarray) -> np.ndarray:
        if data.dtype == np.uint8:
            return data
        if ri not in self._stretch:
            f = max(1, max(src.height, src.width) // 1024)
            small = src.read(indexes=self._bands(src), out_shape=(len(self._bands(src)), max(1, src.height // f),
                                                                   max(1, src.width // f))).astype(np.float64)
            lo = np.percentile(small.reshape(small.shape[0], -1), 2, axis=1)
            hi = np.percentile(small.reshape(small.shape[0], -1), 98, axis=1)
            self._stretch[ri] = (lo, np.maximum(hi, lo + 1e-6))
        lo, hi = self._stretch[ri]
        out = (data.astype(np.float64) - lo[:, None, None]) / (hi - lo)[:, None, None]
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    @staticmethod
    def _bands(src) -> list[int]:
        return [1, 2, 3] if src.count >= 3 else [1, 1, 1]

    def raw(self, index: int):
        ri, fi = self.items[index]
        info = self.rasters[ri]
        feat = info["features"][fi]
        inv = ~info["transform"]
        minx, miny, maxx, maxy = feat["geom"].bounds
        cols, rows = zip(*[inv * (x, y) for x, y in ((minx, miny), (maxx, maxy))])
        obj = max(abs(cols[1] - cols[0]), abs(rows[1] - rows[0]))
        side = int(min(max(self.chip, np.ceil(obj * 1.25)), info["width"], info["height"]))
        cc, cr = (cols[0] + cols[1]) / 2, (rows[0] + rows[1]) / 2
        c0 = int(np.clip(round(cc - side / 2), 0, info["width"] - side))
        r0 = int(np.clip(round(cr - side / 2), 0, info["height"] - side))
        window = rasterio.windows.Window(c0, r0, side, side)
        with rasterio.open(info["path"]) as src:
            data = src.read(indexes=self._bands(src), window=window)
            data = self._to_uint8(ri, src, data)
        wt = rasterio.windows.transform(window, info["transform"])
        same = [f["geom"] for f in info["features"] if f["text"] == feat["text"]]
        mask = rasterio.features.rasterize(((g, 1) for g in same), out_shape=(side, side), transform=wt,
                                           fill=0, dtype="uint8") > 0
        return np.ascontiguousarray(data.transpose(1, 2, 0)), mask, feat["text"], f"{info['path'].stem}:{fi}"
