"""Shared helpers for the plugin/Processing tests (no tests here): a stub QGIS interface, isolated QgsSettings,
a small GeoTIFF with coloured squares, and waiting for QgsTasks.

The model in these tests is tests/colour_model.py's ColourModel, reached through the production path: the spec
"py:colour_model:ColourModel" typed in Model settings > Your own model (use_custom_model), chosen as "custom" by the
dock or a Processing parameter -> model_spec.resolve_model in the worker -> model_core.Predictor -> engine.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

COLOUR_MODEL = "py:colour_model:ColourModel"
SLOW_MODEL = "py:test_plugin_support:slow_colour_model"


def use_custom_model(spec: str) -> str:
    """Stores `spec` as Model settings > Your own model does when a person types it; returns the model spec that
    names it in a run ("custom")."""
    from rs2sam2_qgis import settings
    from rs2sam2_qgis.model_choice import CUSTOM

    settings.set_custom_model(spec)
    return CUSTOM


def slow_colour_model():
    """ColourModel that takes 0.2 s per call (and tiny tiles), so a run can be cancelled midway."""
    import colour_model

    class Slow(colour_model.ColourModel):
        def predict_masks(self, pixels, texts):
            time.sleep(0.2)
            return super().predict_masks(pixels, texts)

    return Slow(input_size=32)


def broken_model():
    raise RuntimeError("the model exploded")


def make_geotiff(path: Path, size: int = 128, crs: str = "EPSG:32633", origin=(500000.0, 4649776.0),
                 pixel: float = 0.5) -> Path:
    """Grey background, a white square at rows/cols 16..47 and a red square at rows/cols 72..111."""
    import rasterio
    from rasterio.transform import from_origin

    data = np.full((3, size, size), 90, dtype=np.uint8)
    data[:, 16:48, 16:48] = 255
    data[:, 72:112, 72:112] = 0
    data[0, 72:112, 72:112] = 255
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=crs,
                       transform=from_origin(origin[0], origin[1], pixel, pixel)) as dst:
        dst.write(data)
    return path


class FakeIface:
    """The part of QgisInterface the plugin uses, with real Qt widgets (canvas, message bar, main window)."""

    def __init__(self):
        from qgis.gui import QgsMapCanvas, QgsMessageBar
        from qgis.PyQt.QtWidgets import QMainWindow

        self._main = QMainWindow()
        self._canvas = QgsMapCanvas(self._main)
        self._canvas.resize(400, 400)
        self._bar = QgsMessageBar(self._main)
        self.messages: list[tuple[str, str, int]] = []
        self.toolbar_actions = []
        self.menu_actions: dict[str, list] = {}
        self.docks = []
        original = self._bar.pushMessage

        def push(title, text="", *args, level=0, duration=-1, **kwargs):
            lvl = args[0] if args else level
            self.messages.append((str(title), str(text), int(lvl)))
            return original(title, text, lvl, duration if not args[1:] else args[1])

        self._bar.pushMessage = push

    def mainWindow(self):  # noqa: N802
        return self._main

    def mapCanvas(self):  # noqa: N802
        return self._canvas

    def messageBar(self):  # noqa: N802
        return self._bar

    def addToolBarIcon(self, action):  # noqa: N802
        self.toolbar_actions.append(action)

    def removeToolBarIcon(self, action):  # noqa: N802
        self.toolbar_actions.remove(action)

    def addPluginToMenu(self, menu, action):  # noqa: N802
        self.menu_actions.setdefault(menu, []).append(action)

    def removePluginMenu(self, menu, action):  # noqa: N802
        self.menu_actions.get(menu, []).remove(action)

    def addDockWidget(self, area, dock):  # noqa: N802
        self.docks.append(dock)
        self._main.addDockWidget(area, dock)

    def removeDockWidget(self, dock):  # noqa: N802
        self.docks.remove(dock)
        self._main.removeDockWidget(dock)


def _settings_root() -> str:
    from qgis.PyQt.QtCore import QSettings

    # <root>/QGIS/QGIS3.ini -> <root>
    return os.path.dirname(os.path.dirname(QSettings(QSettings.IniFormat, QSettings.UserScope, "QGIS",
                                                     "QGIS3").fileName()))


def isolate_settings(folder: Path) -> str:
    """Point QSettings (hence QgsSettings) at `folder` so tests never touch a real QGIS profile; returns the
    previous root (give it back to isolate_settings to restore)."""
    from qgis.PyQt.QtCore import QSettings

    previous = _settings_root()
    Path(folder).mkdir(parents=True, exist_ok=True)
    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, str(folder))
    return previous


def busy_engine_pid() -> int | None:
    """The pid of this process's engine worker that runs a segment job now: a one-shot worker (a job that came
    while the long-lived one was busy, e.g. with the dock's device probe) if there is one, else the long-lived one.
    Found in /proc (children whose command line runs rs2sam2_qgis.worker)."""
    one_shot, serving = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"rs2sam2_qgis.worker" in argv:
            (serving if b"--serve" in argv else one_shot).append(int(entry))
    return (one_shot or serving or [None])[0]


def wait_until(condition, timeout: float = 60.0) -> bool:
    from qgis.PyQt.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    QCoreApplication.processEvents()
    return condition()


@pytest.fixture()
def qgis_env(qgis_app, tmp_path_factory, monkeypatch):
    """QgsApplication + settings and install folders under tmp, all given back after the test."""
    base = tmp_path_factory.mktemp("qgis_env")
    previous = isolate_settings(base / "settings")
    monkeypatch.setenv("RS2SAM2_LIBS_DIR", str(base / "libs"))
    monkeypatch.setenv("RS2SAM2_DEPS_DIR", str(base / "deps"))
    yield qgis_app
    isolate_settings(Path(previous))


@pytest.fixture()
def clean_state(qgis_env, tmp_path):
    """Empty project and no rs2sam2 settings before each test; results go under tmp_path."""
    from qgis.core import QgsProject, QgsSettings

    QgsProject.instance().clear()
    QgsSettings().remove("rs2sam2")
    QgsSettings().setValue("rs2sam2/results_dir", str(tmp_path / "results"))
    yield tmp_path
    QgsProject.instance().clear()
    QgsSettings().remove("rs2sam2")


@pytest.fixture()
def iface(qgis_env):
    return FakeIface()


@pytest.fixture()
def scene(tmp_path) -> Path:
    return make_geotiff(tmp_path / "scene.tif")
