"""Engine result -> QGIS layers (one per query, in a group, styled, zoomed to) and GeoPackage export.

The engine's own `write_vector` writes the run into a GeoPackage (atomic, attributes exactly as the engine defines
them: query, score, area_m2, model, device, precision, created_at); each query becomes a layer on that file
filtered by its `query` attribute. The layers are file-backed, so they survive saving and reopening the project.
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransform,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#00ced1"]
FILL_ALPHA = 90  # of 255: semi-transparent fill, the imagery stays visible


def results_folder(project: QgsProject | None = None) -> Path:
    """Where run GeoPackages go: the setting, else beside the saved project, else a temp folder."""
    from . import settings

    chosen = settings.get("results_dir", "", str)
    if chosen:
        folder = Path(chosen)
    else:
        project = project or QgsProject.instance()
        home = project.homePath() if project.fileName() else ""
        folder = Path(home) / "rs2sam2_results" if home else Path(tempfile.gettempdir()) / "rs2sam2_results"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _safe_name(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")[:limit] or "run"


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def style_layer(layer: QgsVectorLayer, colour: str) -> None:
    fill = QColor(colour)
    fill.setAlpha(FILL_ALPHA)
    symbol = QgsFillSymbol.createSimple({
        "color": f"{fill.red()},{fill.green()},{fill.blue()},{fill.alpha()}",
        "outline_color": QColor(colour).name(),
        "outline_width": "0.6",
        "outline_width_unit": "MM",
    })
    layer.renderer().setSymbol(symbol)
    layer.triggerRepaint()


def run_paths(raster_name: str, folder: Path | None = None) -> tuple[str, str]:
    """A new GeoPackage path for a run (written by the engine's write_vector in the worker) and the path of the
    pickled engine result kept beside it for later exports."""
    folder = folder or results_folder()
    stamp = time.strftime("%Y%m%d_%H%M%S")
    path = folder / f"rs2sam2_{_safe_name(raster_name)}_{stamp}.gpkg"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"rs2sam2_{_safe_name(raster_name)}_{stamp}_{n}.gpkg"
    return str(path), str(path.with_suffix(".result.pickle"))


def add_result_layers(gpkg: str, layer_names: list[str], queries: list[str], raster_name: str, iface=None,
                      project: QgsProject | None = None, zoom: bool = True
                      ) -> tuple[QgsLayerTreeGroup, list[QgsVectorLayer]]:
    """Adds one styled layer per query, in a new group at the top of the layer tree; zooms to them."""
    project = project or QgsProject.instance()
    names = list(layer_names)
    if len(names) != len(queries):  # one layer holding every query (single_layer): split it by the query field
        names = names[:1] * len(queries)
        subset = True
    else:
        subset = False
    root = project.layerTreeRoot()
    group = root.insertGroup(0, f"rs2sam2: {raster_name} {time.strftime('%H:%M:%S')}")
    layers = []
    for i, (query, name) in enumerate(zip(queries, names)):
        layer = QgsVectorLayer(f"{gpkg}|layername={name}", query, "ogr")
        if not layer.isValid():
            raise RuntimeError(f"the result file {gpkg} (layer {name}) cannot be opened")
        if subset:
            layer.setSubsetString(f'"query" = {_quote_literal(query)}')
        style_layer(layer, PALETTE[i % len(PALETTE)])
        project.addMapLayer(layer, False)
        group.addLayer(layer)
        layers.append(layer)
    group.setExpanded(False)  # toggled so that an open layer tree view shows the new group unfolded
    group.setExpanded(True)
    if zoom and iface is not None:
        zoom_to_layers(iface, layers, project)
    return group, layers


def zoom_to_layers(iface, layers: list[QgsVectorLayer], project: QgsProject | None = None) -> None:
    canvas = iface.mapCanvas()
    if canvas is None:
        return
    project = project or QgsProject.instance()
    extent = QgsRectangle()
    extent.setMinimal()
    dest = canvas.mapSettings().destinationCrs()
    for layer in layers:
        if layer.featureCount() == 0:
            continue
        layer_extent = layer.extent()
        if dest.isValid() and layer.crs().isValid() and dest != layer.crs():
            layer_extent = QgsCoordinateTransform(layer.crs(), dest, project).transformBoundingBox(layer_extent)
        extent.combineExtentWith(layer_extent)
    if extent.isNull() or extent.isEmpty() and extent.width() == 0 and extent.height() == 0:
        return
    extent.scale(1.1)
    canvas.setExtent(extent)
    canvas.refresh()


def export_result(result_file: str, out_path: str, layer: str | None = None) -> list[str]:
    """Appends a run to `out_path` with the engine's atomic write_vector (in the worker process): each query's
    polygons go to the layer named after it (appended when it exists with the same schema and CRS); other layers
    stay untouched. Returns the layer names written; raises RuntimeError with the engine's message."""
    from .worker_client import run_job

    reply = run_job({"action": "export", "result_file": result_file, "output": out_path, "layer": layer,
                     "append": True})
    if reply.get("type") != "done":
        raise RuntimeError(reply.get("message") or "export failed")
    return reply["layers"]
