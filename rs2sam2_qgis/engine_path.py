"""The engine worker's import path: our package folders first, then QGIS's.

Why: QGIS's own process appends our folders (QGIS's numpy, GDAL, PROJ and Qt must win there), but then a package
QGIS's Python happens to have at an older version shadows the one our set needs: Debian 12's python3-sympy 1.11
(pulled in by QGIS's matplotlib stack) breaks torchvision, open_clip and timm ("cannot import name 'equal_valued'
from 'sympy.core.numbers'"). The worker imports nothing of QGIS, so it can put our folders first. QGIS's numpy, GDAL
and PROJ still come from QGIS there: the installer prunes every package QGIS has from our set (deps/manager.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def is_ours(path: str, user_libs: str | None = None) -> bool:
    """An installer set (<profile>/python/rs2sam2_deps/<key>/<set>) or the manual `pip --target` folder."""
    from .deps.layout import ROOT_NAME

    return ROOT_NAME in Path(path).parts or (user_libs is not None and path == user_libs)


def worker_path(paths: Iterable[str], user_libs: str | None = None) -> list[str]:
    """``paths`` (the parent's sys.path) with our package folders moved to the front, order kept otherwise."""
    paths = list(dict.fromkeys(p for p in paths if p))
    ours = [p for p in paths if is_ours(p, user_libs)]
    return ours + [p for p in paths if p not in ours]
