"""`make demo`: the main job on the bundled sample. Segments the synthetic georeferenced scene in data/sample/
with the bundled demo model through the `rs2sam2 segment` CLI, writes a GeoPackage, and checks the polygons
against the scene's ground truth so a newcomer sees both what came out and how good it is."""
from __future__ import annotations

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
           "the largest lake": ("water", "largest")}
ABSENT = "the airport runway"  # not in the scene: the right answer is no polygon


def _geoms(path: Path, where: str | None = None, layer: str | None = None) -> list:
    info = pyogrio.raw.read(path, layer=layer, where=where, read_geometry=True, columns=[])
    return list(shapely.from_wkb(info[2]))


def _union(geoms: list):
    return shapely.union_all(geoms) if geoms else shapely.Polygon()


def main() -> int:
    from rs2sam2_qgis.pipeline.cli import main as rs2sam2
    from rs2sam2_qgis.pipeline.export import layer_name_for  # the engine names each layer from its query

    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.unlink(missing_ok=True)  # the demo's own file: each run starts clean
    rc = rs2sam2(["segment", str(SAMPLE), *QUERIES, ABSENT, "-o", str(OUTPUT), "--model", "demo"])
    if rc:
        return rc
    print(f"\nGeoPackage: {OUTPUT}")
    print("agreement with the scene's ground truth (data/sample/sample_scene.gpkg), each query answered for the "
          "whole raster:")
    for query, (klass, which) in QUERIES.items():
        found = _geoms(OUTPUT, layer=layer_name_for(query))
        truth = _geoms(TRUTH, where=f"class = '{klass}'")
        if which == "largest":
            truth = [max(truth, key=lambda g: g.area)]
        found_u, truth_u = _union(found), _union(truth)
        inter, union = found_u.intersection(truth_u).area, found_u.union(truth_u).area
        print(f"  '{query}': {len(found)} polygon(s), IoU {inter / union if union else 0.0:.3f} "
              f"({found_u.area:,.0f} m2 found, {truth_u.area:,.0f} m2 true)")
    n_absent = len(_geoms(OUTPUT, layer=layer_name_for(ABSENT)))
    print(f"  '{ABSENT}' (not in the scene): {n_absent} polygon(s)")
    print("Open the GeoPackage in QGIS beside the GeoTIFF, or try your own query:\n"
          f"  .venv/bin/rs2sam2 segment {SAMPLE.relative_to(REPO)} \"the water\" -o out/water.gpkg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
