"""The plugin object QGIS holds: menu entry, toolbar button, dock, Processing provider, model settings.

Nothing heavy at start-up: the dock is built when first opened; torch is imported only by the worker process
(worker.py) that the first run starts, never in QGIS's own process.
"""
from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

from .compat import QAction
from .icon import ICON_PATH

MENU = "&rs2sam2"


class Rs2Sam2Plugin:
    def __init__(self, iface):
        self.iface = iface
        self.dock = None
        self.provider = None
        self.actions: list[QAction] = []
        self.toggle_action: QAction | None = None

    # QGIS hooks ----------------------------------------------------------------------------------------------
    def initProcessing(self):  # noqa: N802 - QGIS's name (also called by qgis_process)
        from .processing.provider import Rs2Sam2Provider

        if self.provider is None:
            self.provider = Rs2Sam2Provider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        icon = QIcon(ICON_PATH)
        self.toggle_action = QAction(icon, "Segment by text (rs2sam2)", self.iface.mainWindow())
        self.toggle_action.setObjectName("rs2sam2_toggle_dock")
        self.toggle_action.setCheckable(True)
        self.toggle_action.setToolTip("Find objects in a raster layer by describing them (rs2sam2)")
        self.toggle_action.toggled.connect(self.set_dock_visible)
        self.iface.addToolBarIcon(self.toggle_action)
        self.iface.addPluginToMenu(MENU, self.toggle_action)
        settings_action = QAction("Model settings…", self.iface.mainWindow())
        settings_action.setObjectName("rs2sam2_model_settings")
        settings_action.triggered.connect(self.open_model_settings)
        self.iface.addPluginToMenu(MENU, settings_action)
        self.actions = [self.toggle_action, settings_action]
        deps_action = QAction("Python dependencies…", self.iface.mainWindow())
        deps_action.setObjectName("rs2sam2_dependencies")
        deps_action.triggered.connect(self.open_dependencies)
        self.iface.addPluginToMenu(MENU, deps_action)
        self.actions.append(deps_action)

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        if self.toggle_action is not None:
            self.iface.removeToolBarIcon(self.toggle_action)
        if self.dock is not None:
            if self.dock.task is not None:
                self.dock.task.cancel()
            self.dock.save_settings()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.actions = []
        self.toggle_action = None
        from . import worker_client

        worker_client.shutdown()

    # actions -------------------------------------------------------------------------------------------------
    def ensure_dock(self):
        if self.dock is None:
            from .ui.dock import Rs2Sam2Dock

            self.dock = Rs2Sam2Dock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            if self.toggle_action is not None:
                self.dock.visibilityChanged.connect(self._sync_action)
        return self.dock

    def _sync_action(self, visible: bool) -> None:
        if self.toggle_action is not None and self.toggle_action.isChecked() != visible:
            self.toggle_action.blockSignals(True)
            self.toggle_action.setChecked(visible)
            self.toggle_action.blockSignals(False)

    def set_dock_visible(self, visible: bool) -> None:
        if visible:
            dock = self.ensure_dock()
            dock.show()
            dock.raise_()
            dock.probe_environment()
        elif self.dock is not None:
            self.dock.hide()

    def open_dependencies(self) -> None:
        try:
            from .deps.dialog import DependenciesDialog
        except ImportError:
            return self.open_model_settings()
        DependenciesDialog(self.iface.mainWindow()).exec()

    def open_model_settings(self) -> None:
        from .ui.model_settings import ModelSettingsDialog

        ModelSettingsDialog(self.iface.mainWindow()).exec()
