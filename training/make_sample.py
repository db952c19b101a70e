"""Write the bundled sample: a synthetic georeferenced scene (GeoTIFF) and its ground truth (GeoPackage).

    python -m training.make_sample [--out data/sample] [--seed 7] [--size 1024]

The scene comes from the synthetic generator (training/datasets/synthetic.py) at its native scale, georeferenced
at 0.5 m per pixel in UTM zone 33N (EPSG:32633); DEFLATE-compressed, tiled. The GeoPackage holds one polygon per
object with a `class` column and a class-level `text` column ("the storage tanks", ...), so the folder is also a
valid GIS-folder data set (training/datasets/gis_folder.py).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ORIGIN = (455_000.0, 5_110_000.0)  # UTM 33N easting/northing of the top-left corner
RES = 0.5
CRS = "EPSG:32633"
CLASS_TEXT = {"building": "the buildings", "tank": "the storage tanks", "vehicle": "the vehicles",
              "tree": "the trees", "road": "the roads", "water": "the water"}


def write_sample(out: Path, seed: int = 7, size: int = 1024, density: float = 0.7) -> dict:
    import pyogrio
    import rasterio
    import rasterio.features
    import shapely
    from rasterio.transform import from_origin

    from .datasets.synthetic import generate_scene

    scene = generate_scene(seed, size, density)
    out.mkdir(parents=True, exist_ok=True)
    transform = from_origin(ORIGIN[0], ORIGIN[1], RES, RES)
    tif = out / "sample_scene.tif"
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=CRS, transform=transform,
                   compress="deflate", predictor=2, zlevel=9, tiled=True, blockxsize=256, blockysize=256,
                   photometric="RGB", interleave="pixel")
    with rasterio.open(tif, "w", **profile) as dst:
        dst.write(scene.image.transpose(2, 0, 1))
        dst.update_tags(source="rs2sam2 synthetic generator", seed=str(seed), density=str(density))
    geoms, classes, texts = [], [], []
    counts: dict[str, int] = {}
    for obj in scene.objects:
        m = scene.labels == obj.label
        polys = [shapely.geometry.shape(g) for g, v in
                 rasterio.features.shapes(m.astype(np.uint8), mask=m, transform=transform) if v == 1]
        if not polys:
            continue
        geoms.append(shapely.union_all(polys))
        classes.append(obj.cls)
        texts.append(CLASS_TEXT[obj.cls])
        counts[obj.cls] = counts.get(obj.cls, 0) + 1
    gpkg = out / "sample_scene.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    pyogrio.raw.write(str(gpkg), np.array(shapely.to_wkb(geoms), dtype=object),
                      field_data=[np.array(classes, dtype=object), np.array(texts, dtype=object)],
                      fields=["class", "text"], crs=CRS, geometry_type="MultiPolygon", driver="GPKG",
                      promote_to_multi=True)
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/sample")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--density", type=float, default=0.7)
    a = p.parse_args(argv)
    counts = write_sample(Path(a.out), a.seed, a.size, a.density)
    print(f"wrote {a.out}/sample_scene.tif and .gpkg: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
