"""Run by `qgis --code` from scripts/qgis_screenshot.sh inside a real QGIS window (Xvfb): opens the rs2sam2 dock on
the bundled sample scene (or a drawn one), runs a model, saves the screen to $RS2SAM2_SCREENSHOT and quits.

Runs inside the qgis executable: only QGIS's own Python modules here (osgeo.gdal for the scene), the engine runs in
its worker process like in any analyst's QGIS.
"""
import os
import time
import traceback

from osgeo import gdal, osr
from qgis.core import QgsProject, QgsRasterLayer, QgsSettings
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, plugins

OUT = os.environ["RS2SAM2_SCREENSHOT"]
WORK = os.environ.get("RS2SAM2_SCREENSHOT_WORK", "/tmp")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) if "__file__" in globals() else os.getcwd()
state = {"start": time.monotonic(), "ran": False, "log": []}


def note(text):
    state["log"].append(text)


def make_scene(path, size=512):
    """Grey ground, white 'tanks' (discs) and red 'roofs' (rectangles), 0.5 m pixels in UTM 33N."""
    import numpy as np  # QGIS's own numpy

    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.empty((3, size, size), dtype=np.uint8)
    rgb[:] = np.array([110, 120, 100], dtype=np.uint8)[:, None, None]
    for cy, cx, r in ((120, 110, 28), (120, 190, 28), (200, 150, 22), (400, 420, 30)):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        rgb[:, disc] = 250
    for y0, x0, h, w in ((300, 60, 60, 110), (330, 250, 50, 80), (60, 330, 70, 120)):
        rgb[0, y0:y0 + h, x0:x0 + w] = 230
        rgb[1, y0:y0 + h, x0:x0 + w] = 30
        rgb[2, y0:y0 + h, x0:x0 + w] = 30
    ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.5, 0.0, 4649776.0, 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for band in range(3):
        ds.GetRasterBand(band + 1).WriteArray(rgb[band])
    ds = None
    return path


SAMPLE = os.path.join(REPO, "data", "sample", "sample_scene.tif")


def scenario():
    """(model, raster, layer name, queries): the demo model on the bundled sample scene it was trained for, or
    the colour test model on a drawn scene when the demo checkpoint is absent."""
    if os.path.exists(os.path.join(REPO, "model_core", "assets", "demo.pt")) and os.path.exists(SAMPLE):
        return "demo", SAMPLE, "sample_scene", "the storage tanks\nthe buildings"
    scene = make_scene(os.path.join(WORK, "harbour_scene.tif"))
    return "py:colour_model:ColourModel", scene, "harbour_scene", "the white storage tanks\nred roofs"


def finish(ok_text):
    try:
        iface.mapCanvas().refresh()
        QApplication.processEvents()
        pixmap = QApplication.primaryScreen().grabWindow(0)
        pixmap.save(OUT, "PNG")
        with open(OUT + ".done", "w") as fh:
            fh.write("\n".join(state["log"] + [ok_text]) + "\n")
    finally:
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(500, lambda: os._exit(0))


def start():
    try:
        iface.mainWindow().setGeometry(0, 0, 1600, 1000)
        iface.mainWindow().showMaximized()
        plugin = plugins.get("rs2sam2_qgis")
        if plugin is None:
            note("plugin not loaded: " + ", ".join(sorted(plugins)))
            finish("FAILED: plugin not loaded")
            return
        QgsSettings().setValue("rs2sam2/results_dir", os.environ.get("RS2SAM2_RESULTS_DIR", WORK))
        spec, scene, name, queries = scenario()
        layer = QgsRasterLayer(scene, name)
        QgsProject.instance().addMapLayer(layer)
        plugin.toggle_action.setChecked(True)
        dock = plugin.dock
        dock.layer_combo.setLayer(layer)
        dock.query_edit.setPlainText(queries)
        dock.model_kind.setCurrentIndex(dock.model_kind.findData("preset"))
        dock.preset_combo.setCurrentText(spec)
        dock.device_combo.setCurrentIndex(dock.device_combo.findData("auto"))
        dock.advanced.setCollapsed(False)
        note(f"model: {spec}")
        dock.run_finished.connect(lambda task: QTimer.singleShot(2500, lambda: finish(
            f"status: {dock.status_label.text()}")))
        dock.start_run()
    except Exception:  # noqa: BLE001
        note(traceback.format_exc())
        finish("FAILED")


def watchdog():
    if time.monotonic() - state["start"] > 240:
        note("timed out waiting for the run")
        finish("FAILED: timeout")
    else:
        QTimer.singleShot(1000, watchdog)


QTimer.singleShot(3000, start)
QTimer.singleShot(1000, watchdog)
