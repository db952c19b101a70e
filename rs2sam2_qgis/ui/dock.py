"""The rs2sam2 dock panel: choose a raster, type descriptions, run in a QgsTask, get one layer per description."""
from __future__ import annotations

import traceback

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsProject,
    QgsRasterLayer,
    QgsTask,
)
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsDockWidget,
    QgsFileWidget,
    QgsMapLayerComboBox,
)
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .. import choices, settings
from ..compat import FILTER_POLYGON, FILTER_RASTER
from ..masks import polygon_union_wkt
from ..model_choice import CUSTOM, plugin_model
from ..pipeline.options import SegmentOptions
from ..pipeline.request import ModelChoice, SegmentRequest
from ..tasks import SegmentTask, log
from .query_edit import QueryEdit

MODEL_DEMO, MODEL_PRESET, MODEL_CHECKPOINT, MODEL_CUSTOM = "demo", "preset", "checkpoint", CUSTOM
AREA_LAYER, AREA_CANVAS, AREA_SELECTION = "layer", "canvas", "selection"

# Advanced settings: SegmentOptions field -> (label, kind, minimum, maximum, decimals, tooltip). Their defaults and
# ranges come from the engine (choices.py); `None` defaults show as a step below the engine's minimum with a
# special text (AUTO_TEXT).
_TILE, _PRESENCE = choices.limits("tile"), choices.limits("presence_threshold")
ADVANCED = {
    "tile": ("Tile size (px)", int, 0, _TILE[1], 0,
             f"Tile side in raster pixels ({_TILE[0]}..{_TILE[1]}); 0 = the model's own size"),
    "overlap": ("Overlap", float, *choices.limits("overlap"), 2, "Fraction of a tile shared with each neighbour; "
                "overlaps are blended before polygonizing"),
    "threshold": ("Threshold", float, *choices.limits("threshold"), 3,
                  "Probability above which a pixel belongs to the object"),
    "min_area_m2": ("Min area (m²)", float, 0.0, 1e9, 1, "Polygons with a smaller ground area are dropped"),
    "simplify": ("Simplify", float, -1.0, 1e6, 2, "Douglas-Peucker tolerance in map units; 0 = none; "
                 "auto = half a pixel"),
    "presence_threshold": ("Presence", float, _PRESENCE[0] - 0.01, _PRESENCE[1], 2, "Whole area only: a tile whose "
                           "presence (the model's belief that it shows what you described at all) is below this "
                           "gives nothing; model's = the threshold calibrated for the model"),
}
AUTO_TEXT = {"tile": "model's size", "simplify": "auto (½ pixel)", "presence_threshold": "model's"}


def _installer_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(__package__.rsplit(".", 1)[0] + ".deps.dialog") is not None
    except ImportError:
        return False


def _deps_glue(name: str, *args) -> None:
    """Tell the dependency installer's diagnostics about the last run/error (when that module is present)."""
    try:
        from ..deps import qgis_glue

        getattr(qgis_glue, name)(*args)
    except Exception:  # noqa: BLE001 - diagnostics only
        pass


class Rs2Sam2Dock(QgsDockWidget):
    """Dock panel. `run_started`/`run_finished` are emitted for the plugin and for tests."""

    run_started = pyqtSignal(object)   # the SegmentTask
    run_finished = pyqtSignal(object)  # the SegmentTask, after layers were added (or the error shown)

    def __init__(self, iface, parent=None):
        super().__init__("rs2sam2: segment by text", parent)
        self.setObjectName("Rs2Sam2Dock")
        self.iface = iface
        self.task: SegmentTask | None = None
        self.last_result = None
        self.last_layers = []
        self._probe = None
        self._defaults = self._engine_defaults()
        self._build()
        self.load_settings()
        self._show_missing_dependencies()

    def _show_missing_dependencies(self, *_args) -> None:
        """Say at once (not at the first run) when packages the engine needs are missing, with an Install button
        (the dependency installer's dialog) when that installer is part of the plugin."""
        from ..bootstrap import REQUIRED, missing_packages

        missing = [m for m, _ in missing_packages(include_optional=False) if m in {r for r, _ in REQUIRED}]
        self.install_button.setVisible(bool(missing) and _installer_available())
        if missing:
            self.status_label.setText(f"Missing packages: {', '.join(missing)}. Press Install, or see Model "
                                      "settings (…) > Check dependencies for the pip command.")
        elif self.status_label.text().startswith("Missing packages"):
            self.status_label.setText("Ready.")

    def open_dependencies(self) -> None:
        from ..deps.dialog import DependenciesDialog

        DependenciesDialog(self, on_installed=self._show_missing_dependencies).exec()

    # construction --------------------------------------------------------------------------------------------
    @staticmethod
    def _engine_defaults() -> dict:
        try:
            return choices.engine_defaults()
        except Exception:  # noqa: BLE001 - engine not importable: the run will say why
            log(f"engine defaults unavailable:\n{traceback.format_exc()}", Qgis.MessageLevel.Warning)
            return {}

    def _build(self) -> None:
        body = QWidget(self)
        outer = QVBoxLayout(body)
        form = QFormLayout()
        outer.addLayout(form)

        self.layer_combo = QgsMapLayerComboBox(body)
        self.layer_combo.setFilters(FILTER_RASTER)
        self.layer_combo.setAllowEmptyLayer(False)
        form.addRow("Raster layer", self.layer_combo)

        self.query_edit = QueryEdit(body)
        self.query_edit.setMinimumHeight(70)
        self.query_edit.setToolTip("What to find, one description per line (each line becomes its own layer), e.g.\n"
                                   "the buildings / the largest lake / the second tank from the left /\n"
                                   "the building in the top left / the tree next to the largest lake /\n"
                                   "the two white tanks / buildings larger than 200 m2 /\n"
                                   "buildings within 50 m of the river / the lakes and ponds.\n"
                                   "Earlier descriptions complete as you type (Ctrl+Space lists them).")
        form.addRow("Find", self.query_edit)

        model_row = QHBoxLayout()
        self.model_kind = QComboBox(body)
        self.model_kind.addItem("Demo model", MODEL_DEMO)
        self.model_kind.addItem("Preset", MODEL_PRESET)
        self.model_kind.addItem("Checkpoint file", MODEL_CHECKPOINT)
        self.model_kind.addItem("Your own model (Model settings)", MODEL_CUSTOM)
        self.model_kind.setItemData(3, "The py:module:callable typed in Model settings > Your own model",
                                    Qt.ItemDataRole.ToolTipRole)
        self.preset_combo = QComboBox(body)
        self.preset_combo.setEditable(True)
        self.preset_combo.setToolTip("model_core preset, filled with the part weights chosen in Model settings "
                                     "(SAM2, CLIP or BEiT-3); parts without weights stay random")
        self.checkpoint_widget = QgsFileWidget(body)
        self.checkpoint_widget.setFilter("Checkpoints (*.pt *.pth *.safetensors *.bin *.ckpt);;All files (*)")
        self.settings_button = QPushButton("…", body)
        self.settings_button.setToolTip("Model settings: weight files, downloads, dependencies")
        self.settings_button.setMaximumWidth(30)
        model_row.addWidget(self.model_kind)
        model_row.addWidget(self.preset_combo, 1)
        model_row.addWidget(self.checkpoint_widget, 1)
        model_row.addWidget(self.settings_button)
        form.addRow("Model", model_row)
        self.model_kind.currentIndexChanged.connect(self._update_model_widgets)

        self.device_combo = QComboBox(body)
        for value, label in choices.devices():
            self.device_combo.addItem(label, value)
        self.device_combo.setToolTip("Where the model runs; the status line says which device really ran")
        form.addRow("Device", self.device_combo)

        self.mode_combo = QComboBox(body)
        for value, label in choices.modes():
            self.mode_combo.addItem(label, value)
        self.mode_combo.setToolTip("How masks are decided. The authors' contract reproduces the released RS2-SAM2 "
                                   "weights' own masks exactly (their 1024 px stretch and logit > 0.5 rule); "
                                   "the default gives probabilities thresholded by the Threshold setting.")
        form.addRow("Decision", self.mode_combo)

        self.scope_combo = QComboBox(body)
        for value, label in choices.scopes():
            self.scope_combo.addItem(label, value)
        self.scope_combo.setToolTip("The whole area: each description is answered once for the area, so "
                                    "'the largest building' or 'the tank in the top left' gives one object and a "
                                    "description of something absent gives nothing. Each tile: every tile of the "
                                    "raster answers on its own (the engine before whole-area referring).")
        form.addRow("Answer for", self.scope_combo)

        self.area_combo = QComboBox(body)
        self.area_combo.addItem("Whole layer", AREA_LAYER)
        self.area_combo.addItem("Map canvas extent", AREA_CANVAS)
        self.area_combo.addItem("Selected features of a polygon layer", AREA_SELECTION)
        self.mask_combo = QgsMapLayerComboBox(body)
        self.mask_combo.setFilters(FILTER_POLYGON)
        form.addRow("Area", self.area_combo)
        form.addRow("", self.mask_combo)
        self.area_combo.currentIndexChanged.connect(self._update_area_widgets)

        self.advanced = QgsCollapsibleGroupBox("Advanced settings", body)
        self.advanced.setCollapsed(True)
        adv_form = QFormLayout(self.advanced)
        self.advanced_widgets = {}
        for name, (label, kind, lo, hi, decimals, tip) in ADVANCED.items():
            if name not in self._defaults and self._defaults:
                continue
            widget = QSpinBox(self.advanced) if kind is int else QDoubleSpinBox(self.advanced)
            widget.setRange(lo, hi) if kind is int else widget.setRange(float(lo), float(hi))
            if kind is float:
                widget.setDecimals(decimals)
                widget.setSingleStep(0.05 if hi <= 1 else 1.0)
            if name in AUTO_TEXT:
                widget.setSpecialValueText(AUTO_TEXT[name])
            widget.setToolTip(tip)
            self.advanced_widgets[name] = widget
            adv_form.addRow(label, widget)
        self.refine_check = QCheckBox("Outlines on the image's edges", self.advanced)
        self.refine_check.setToolTip("Draw each answer's outline on the image's colour edges, within half a mask "
                                     "cell (the answer itself is chosen on the model's own masks); off: the "
                                     "model's outlines as drawn")
        adv_form.addRow("", self.refine_check)
        self.reset_button = QPushButton("Reset to defaults", self.advanced)
        self.reset_button.clicked.connect(self.reset_advanced)
        adv_form.addRow("", self.reset_button)
        outer.addWidget(self.advanced)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", body)
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", body)
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export…", body)
        self.export_button.setToolTip("Append the last run's polygons to a GeoPackage")
        self.export_button.setEnabled(False)
        self.install_button = QPushButton("Install…", body)
        self.install_button.setToolTip("Install the missing Python packages for QGIS (a folder of their own)")
        self.install_button.setVisible(False)
        self.install_button.clicked.connect(self.open_dependencies)
        buttons.addWidget(self.install_button)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        outer.addLayout(buttons)

        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        outer.addWidget(self.progress)
        self.status_label = QLabel("Ready.", body)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.status_label)
        outer.addStretch(1)
        self.setWidget(body)

        self.run_button.clicked.connect(self.start_run)
        self.cancel_button.clicked.connect(self.cancel_run)
        self.export_button.clicked.connect(self.export_dialog)
        self.settings_button.clicked.connect(self.open_model_settings)
        self._update_model_widgets()
        self._update_area_widgets()

    def _update_model_widgets(self) -> None:
        kind = self.model_kind.currentData()
        self.preset_combo.setVisible(kind == MODEL_PRESET)
        self.checkpoint_widget.setVisible(kind == MODEL_CHECKPOINT)
        if kind == MODEL_PRESET and self.preset_combo.count() == 0:
            self.probe_environment()

    def _update_area_widgets(self) -> None:
        self.mask_combo.setVisible(self.area_combo.currentData() == AREA_SELECTION)

    # settings ------------------------------------------------------------------------------------------------
    def _set_combo_data(self, combo: QComboBox, value) -> None:
        index = combo.findData(value)
        if index >= 0:
            combo.setCurrentIndex(index)

    def load_settings(self) -> None:
        self.query_edit.setPlainText(settings.get("queries", "", str))
        self.query_edit.set_history(settings.history())
        self._set_combo_data(self.model_kind, settings.get("model_kind", MODEL_DEMO, str))
        preset = settings.get("preset", "", str)
        if preset:
            if self.preset_combo.findText(preset) < 0:
                self.preset_combo.addItem(preset)
            self.preset_combo.setCurrentText(preset)
        self.checkpoint_widget.setFilePath(settings.get("checkpoint", "", str))
        self._set_combo_data(self.device_combo, settings.get("device", "auto", str))
        self._set_combo_data(self.mode_combo, settings.get("mode", "analyst", str))
        self._set_combo_data(self.scope_combo, settings.get("scope", self.scope_combo.itemData(0), str))
        self._set_combo_data(self.area_combo, settings.get("area", AREA_LAYER, str))
        self.advanced.setCollapsed(settings.get("advanced_collapsed", True, bool))
        for name, widget in self.advanced_widgets.items():
            default = self._default_value(name)
            kind = int if isinstance(widget, QSpinBox) else float
            widget.setValue(settings.get(f"options/{name}", default, kind))
        self.refine_check.setChecked(settings.get("options/refine_edges", self._refine_default(), bool))
        layer_id = settings.get("raster_layer", "", str)
        layer = QgsProject.instance().mapLayer(layer_id) if layer_id else None
        if layer is not None:
            self.layer_combo.setLayer(layer)
        mask_id = settings.get("mask_layer", "", str)
        mask = QgsProject.instance().mapLayer(mask_id) if mask_id else None
        if mask is not None:
            self.mask_combo.setLayer(mask)
        self._update_model_widgets()
        self._update_area_widgets()

    def save_settings(self) -> None:
        settings.set("queries", self.query_edit.toPlainText())
        settings.set("model_kind", self.model_kind.currentData())
        settings.set("preset", self.preset_combo.currentText())
        settings.set("checkpoint", self.checkpoint_widget.filePath())
        settings.set("device", self.device_combo.currentData())
        settings.set("mode", self.mode_combo.currentData())
        settings.set("scope", self.scope_combo.currentData())
        settings.set("area", self.area_combo.currentData())
        settings.set("advanced_collapsed", self.advanced.isCollapsed())
        for name, widget in self.advanced_widgets.items():
            value = widget.value()
            if value == self._default_value(name):
                settings.remove(f"options/{name}")  # follow the engine's default if it changes later
            else:
                settings.set(f"options/{name}", value)
        if self.refine_check.isChecked() == self._refine_default():
            settings.remove("options/refine_edges")
        else:
            settings.set("options/refine_edges", self.refine_check.isChecked())
        layer = self.layer_combo.currentLayer()
        settings.set("raster_layer", layer.id() if layer else "")
        mask = self.mask_combo.currentLayer()
        settings.set("mask_layer", mask.id() if mask else "")

    def _default_value(self, name: str):
        value = self._defaults.get(name)
        if value is None:  # "automatic": the spin box's minimum, shown with its special text
            return self.advanced_widgets[name].minimum() if name in self.advanced_widgets else 0
        return value

    def _refine_default(self) -> bool:
        return bool(self._defaults.get("refine_edges", True))

    def reset_advanced(self) -> None:
        for name, widget in self.advanced_widgets.items():
            widget.setValue(self._default_value(name))
        self.refine_check.setChecked(self._refine_default())

    # environment probe (torch is imported in the worker process, never in QGIS) -----------------------------
    def probe_environment(self) -> None:
        if self._probe is not None:
            return
        from ..tasks import WorkerTask

        self._probe = WorkerTask("rs2sam2: detecting devices", {"action": "probe"},
                                 on_finished=self._apply_probe, flags=QgsTask.Flags())
        QgsApplication.taskManager().addTask(self._probe)

    def _apply_probe(self, probe) -> None:
        if probe.error or probe.reply.get("type") != "done":
            self.device_combo.setToolTip(f"Device detection failed: {probe.error}")
            return
        info = probe.reply.get("devices") or {}
        index = self.device_combo.findData("cuda")
        if info.get("cuda"):
            self.device_combo.setItemText(index, f"CUDA ({info.get('cuda_name')})")
        else:
            self.device_combo.setItemText(index, "CUDA (not available)")
            self.device_combo.setItemData(index, f"CUDA cannot be used: {info.get('why_not_cuda')}",
                                          Qt.ItemDataRole.ToolTipRole)
        auto = self.device_combo.findData("auto")
        self.device_combo.setItemText(auto, "Auto (GPU)" if info.get("cuda") else "Auto (CPU)")
        current = self.preset_combo.currentText()
        for name in probe.reply.get("presets") or []:
            if self.preset_combo.findText(name) < 0:
                self.preset_combo.addItem(name)
        if current:
            self.preset_combo.setCurrentText(current)

    # run -----------------------------------------------------------------------------------------------------
    def model_spec(self) -> str:
        kind = self.model_kind.currentData()
        if kind == MODEL_PRESET:
            return self.preset_combo.currentText().strip()
        if kind == MODEL_CHECKPOINT:  # empty: the RS2-SAM2 weights chosen in Model settings
            return self.checkpoint_widget.filePath().strip() or settings.weight_path("rs2sam2")
        if kind == MODEL_CUSTOM:
            return CUSTOM
        return "demo"

    def build_options(self, layer: QgsRasterLayer) -> tuple[dict, str | None]:
        """(SegmentOptions fields, mask polygon as WKT in the raster's CRS or None) from the advanced settings and
        the chosen area; raises ValueError with a message. The engine validates the values (InputError)."""
        values = {}
        for name, widget in self.advanced_widgets.items():
            value = widget.value()
            if name in AUTO_TEXT and value <= widget.minimum():
                value = None
            values[name] = value
        values["scope"] = self.scope_combo.currentData()
        values["refine_edges"] = self.refine_check.isChecked()
        area = self.area_combo.currentData()
        mask_wkt = None
        if area == AREA_CANVAS:
            values["extent"] = self._canvas_extent(layer)
        elif area == AREA_SELECTION:
            mask_wkt = self._selection_mask(layer)
        return values, mask_wkt

    def _canvas_extent(self, layer: QgsRasterLayer):
        canvas = self.iface.mapCanvas()
        extent = canvas.extent()
        source_crs = canvas.mapSettings().destinationCrs()
        if source_crs.isValid() and layer.crs().isValid() and source_crs != layer.crs():
            transform = QgsCoordinateTransform(source_crs, layer.crs(), QgsProject.instance())
            extent = transform.transformBoundingBox(extent)
        return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())

    def _selection_mask(self, layer: QgsRasterLayer) -> str:
        mask_layer = self.mask_combo.currentLayer()
        if mask_layer is None:
            raise ValueError("choose a polygon layer for the area (or pick 'Whole layer')")
        features = list(mask_layer.getSelectedFeatures())
        if not features:
            raise ValueError(f"select one or more polygons in '{mask_layer.name()}' first "
                             "(or pick another area)")
        wkt = polygon_union_wkt((feature.geometry() for feature in features), mask_layer.crs(), layer.crs(),
                                QgsProject.instance().transformContext())
        if wkt is None:
            raise ValueError(f"the selected features of '{mask_layer.name()}' have no polygon geometry")
        return wkt

    def start_run(self) -> SegmentTask | None:
        """Validates the inputs and starts a SegmentTask; errors go to the message bar."""
        if self.task is not None:
            return None
        layer = self.layer_combo.currentLayer()
        queries = self.query_edit.queries()
        try:
            if layer is None:
                raise ValueError("add a raster layer to the project and choose it")
            if layer.providerType() != "gdal":
                raise ValueError(f"'{layer.name()}' is a {layer.providerType()} layer; rs2sam2 reads files "
                                 "(GeoTIFF, VRT, ...): save it as a GeoTIFF first")
            if not queries:
                raise ValueError("type what to find (one description per line)")
            spec = self.model_spec()
            if not spec:
                raise ValueError("choose a preset or a checkpoint file (or the demo model)")
            model, allow_code = plugin_model(spec)
            options, mask_wkt = self.build_options(layer)
        except Exception as exc:  # noqa: BLE001 - any input problem is one message, never a dialog
            self.show_error(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}",
                            None if isinstance(exc, ValueError) else traceback.format_exc())
            return None
        self.save_settings()
        self.query_edit.set_history(settings.add_to_history(queries))
        raster_path = layer.source().split("|")[0]
        from ..results import run_paths

        output, result_file = run_paths(layer.name())
        choice = ModelChoice(spec=model, allow_code=allow_code, weights=settings.weight_paths(),
                             device=self.device_combo.currentData(), mode=self.mode_combo.currentData())
        request = SegmentRequest(raster=raster_path, queries=queries, output=output, model=choice,
                                 options=SegmentOptions(**options), mask_wkt=mask_wkt, result_file=result_file)
        task = SegmentTask(request, on_finished=self._on_task_finished)
        task.raster_name = layer.name()
        task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        task.message.connect(self._on_message)
        self.task = task
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status_label.setText(f"Running {len(queries)} quer{'y' if len(queries) == 1 else 'ies'} on "
                                  f"{layer.name()}…")
        QgsApplication.taskManager().addTask(task)
        self.run_started.emit(task)
        return task

    def _on_message(self, message: str) -> None:
        if self.task is not None:
            self.status_label.setText(message)

    def cancel_run(self) -> None:
        if self.task is not None:
            self.status_label.setText("Cancelling…")
            self.task.cancel()

    def _on_task_finished(self, task: SegmentTask) -> None:
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        try:
            if task.was_cancelled:
                self.progress.setValue(0)
                self.status_label.setText("Cancelled: nothing was added.")
                self.iface.messageBar().pushMessage("rs2sam2", "Run cancelled; nothing was added.",
                                                    level=Qgis.MessageLevel.Info, duration=5)
            elif task.error or task.reply.get("type") != "done":
                _deps_glue("record_error", task.error or "the run produced no result", task.trace)
                self.progress.setValue(0)
                self.show_error(task.error or "the run produced no result", task.trace, logged=True)
            else:
                try:
                    self._add_results(task)
                except Exception as exc:  # noqa: BLE001 - e.g. the result file cannot be opened
                    self.show_error(f"the results could not be added: {exc}", traceback.format_exc())
        finally:
            self.run_finished.emit(task)

    def _add_results(self, task: SegmentTask) -> None:
        from ..results import add_result_layers

        reply = task.reply
        group, layers = add_result_layers(reply["output"], reply["layers"], reply["queries"],
                                          task.raster_name or "raster", iface=self.iface)
        self.last_result = task.result_file
        self.last_layers = layers
        self.export_button.setEnabled(True)
        counts = ", ".join(f"{layer.name()}: {layer.featureCount()}" for layer in layers)
        total = sum(layer.featureCount() for layer in layers)
        stats = task.stats
        device = stats.get("device") or "?"
        reason = f" ({stats['device_reason']})" if stats.get("device_reason") else ""
        precision = ""
        if stats.get("precision"):
            why = f" ({stats['precision_reason']})" if stats.get("precision_reason") else ""
            precision = f", {stats['precision']}{why}"
        oom = (f"; CUDA ran out of memory, batch halved to {stats['batch_size']}"
               if stats.get("cuda_oom_halvings") else "")
        model = f", model {stats['model']}" if stats.get("model") else ""
        self.progress.setValue(100)
        self.status_label.setText(f"{total} polygon{'s' if total != 1 else ''} ({counts}) in {task.seconds:.1f} s "
                                  f"on {device}{reason}{precision}{model}{oom}.")
        readings = [f"'{q}': {how}" for q, how in (stats.get("plans") or {}).items()]
        self.status_label.setToolTip("How each description was read:\n" + "\n".join(readings) if readings else "")
        log(f"run done: {self.status_label.text()} -> {reply['output']}")
        for reading in readings:  # what the engine understood: the analyst checks "keep one", "size largest"
            log(f"read {reading}")
        for warning in stats.get("warnings") or []:  # e.g. a noise-like mask polygonized on coarser cells
            self.iface.messageBar().pushMessage("rs2sam2", warning, level=Qgis.MessageLevel.Warning, duration=0)
            log(f"warning: {warning}", Qgis.MessageLevel.Warning)
        _deps_glue("record_run", device, f"{stats.get('device_reason', '')}{precision}")

    def show_error(self, message: str, trace: str | None = None, logged: bool = False) -> None:
        self.status_label.setText(f"Error: {message}")
        self.iface.messageBar().pushMessage("rs2sam2", message, level=Qgis.MessageLevel.Critical, duration=0)
        if trace and not logged:
            log(f"{message}\n{trace}", Qgis.MessageLevel.Critical)

    # export --------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.last_result is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export rs2sam2 results", settings.get("export_path", "", str),
                                              "GeoPackage (*.gpkg)", options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.export_to(path)

    def export_to(self, path: str) -> bool:
        from ..results import export_result

        if not path.lower().endswith(".gpkg"):
            path += ".gpkg"
        try:
            export_result(self.last_result, path)
        except RuntimeError as exc:
            self.show_error(f"export failed: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"export failed: {exc}", traceback.format_exc())
            return False
        settings.set("export_path", path)
        self.iface.messageBar().pushMessage("rs2sam2", f"Results appended to {path}", level=Qgis.MessageLevel.Success,
                                            duration=5)
        return True

    def open_model_settings(self) -> None:
        from .model_settings import ModelSettingsDialog

        ModelSettingsDialog(self).exec()

    def closeEvent(self, event):  # noqa: N802
        try:
            self.save_settings()
        finally:
            super().closeEvent(event)
