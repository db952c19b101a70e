"""Prints the versions of the stack and fails loudly unless QGIS, torch, sam2, open_clip, torchscale and rasterio
import together in one process with a QgsApplication started (the plugin runs them in QGIS's own Python)."""
from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp/runtime-rs2sam2")
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)


def _dist_version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def main() -> int:
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    failures: list[str] = []
    try:
        from qgis.core import Qgis, QgsApplication

        app = QgsApplication([], False)
        app.initQgis()
        versions["qgis"] = Qgis.version()
    except Exception as exc:  # noqa: BLE001 - report every failure, not just the first
        failures.append(f"qgis.core: {exc!r}")
    for module in ("numpy", "torch", "torchvision", "sam2", "open_clip", "torchscale", "rasterio", "shapely",
                   "pyproj", "pyogrio", "sentencepiece", "osgeo.gdal"):
        try:
            mod = __import__(module, fromlist=["__version__"])
            versions[module] = getattr(mod, "__version__", None) or _dist_version(module)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{module}: {exc!r}")
    if "rasterio" in versions:
        import rasterio

        versions["rasterio GDAL"] = rasterio.__gdal_version__
    if "torch" in versions:
        import torch

        versions["torch CUDA"] = f"{torch.version.cuda} (available: {torch.cuda.is_available()})"
    for name, version in versions.items():
        print(f"  {name:<14} {version}")
    if failures:
        print("ENVIRONMENT CHECK FAILED: these could not be imported together with QGIS:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    print("environment check: OK (QGIS, torch, sam2, open_clip, torchscale, rasterio in one process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
