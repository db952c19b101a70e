"""`make demo`: the main job on the bundled sample. Segments the synthetic georeferenced scene in data/sample/
with the bundled demo model through the `rs2sam2 segment` CLI, writes a GeoPackage, and checks the polygons
against the scene's ground truth so a newcomer sees both what came out and how good it is.

    .venv/bin/python scripts/demo.py [--model demo|PATH] [--out out/demo.gpkg]

``--model`` scores another checkpoint on the same queries (e.g. a training run's best.pt before shipping it)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyogrio
import shapely

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "sample_scene.tif"
TRUTH = REPO / "data" / "sample" / "sample_scene.gpkg"
OUTPUT = REPO / "out" / "demo.gpkg"
# query -> (ground-truth class, which of its objects: None = all, "largest" = the largest one)
QUERIES = {"the storage tanks": ("tank", None), "the buildings": ("building", None),
           "the largest lake": ("water", "largest"), "the largest building": ("building", "largest")}
ABSENT = ["the airport runway", "the swimming pools"]  # not in the scene: the right answer is no polygon


def _geoms(path: Path, where: str | None = None, layer: str | None = None) -> list:
    info = pyogrio.raw.read(path, layer=layer, where=where, read_geometry=True, columns=[])
    return list(shapely.from_wkb(info[2]))


def _union(geoms: list):
    return shapely.union_all(geoms) if geoms else shapely.Polygon()


def main(argv=None) -> int:
    from rs2sam2_qgis.pipeline.cli import main as rs2sam2
    from rs2sam2_qgis.pipeline.export import layer_name_for  # the engine names each layer from its query

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="the bundled demo (default) or a checkpoint path")
    ap.add_argument("--out", type=Path, default=OUTPUT, help="the GeoPackage written (replaced)")
    a = ap.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.unlink(missing_ok=True)  # the demo's own file: each run starts clean
    rc = rs2sam2(["segment", str(SAMPLE), *QUERIES, *ABSENT, "-o", str(a.out), "--model", a.model])
    if rc:
        return rc
    print(f"\nGeoPackage: {a.out}")
    print("agreement with the scene's ground truth (data/sample/sample_scene.gpkg), each query answered for the "
          "whole raster:")
    for query, (klass, which) in QUERIES.items():
        found = _geoms(a.out, layer=layer_name_for(query))
        truth = _geoms(TRUTH, where=f"class = '{klass}'")
        found_u = _union(found)
        if which == "largest":  # objects within 1% of the largest area are all right answers (the sample's two
            top = max(g.area for g in truth)  # largest buildings differ by 0.2 m2): scored against the one found
            truth = [max((g for g in truth if g.area >= 0.99 * top), key=lambda g: g.intersection(found_u).area)]
        truth_u = _union(truth)
        inter, union = found_u.intersection(truth_u).area, found_u.union(truth_u).area
        print(f"  '{query}': {len(found)} polygon(s), IoU {inter / union if union else 0.0:.3f} "
              f"({found_u.area:,.0f} m2 found, {truth_u.area:,.0f} m2 true)")
    for query in ABSENT:
        print(f"  '{query}' (not in the scene): {len(_geoms(a.out, layer=layer_name_for(query)))} polygon(s)")
    print("Open the GeoPackage in QGIS beside the GeoTIFF, or try your own query:\n"
          f"  .venv/bin/rs2sam2 segment {SAMPLE.relative_to(REPO)} \"the water\" -o out/water.gpkg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
