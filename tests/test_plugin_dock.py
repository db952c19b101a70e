"""The plugin in real PyQGIS, headless: classFactory, dock, settings, runs through the QgsTask, cancel, errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import qgis.core  # noqa: E402,F401 - QGIS's Python runs the tests: missing QGIS fails, never skips
from test_plugin_support import (  # noqa: E402,F401 - fixtures
    COLOUR_MODEL,
    SLOW_MODEL,
    busy_engine_pid,
    clean_state,
    iface,
    make_geotiff,
    qgis_env,
    scene,
    use_custom_model,
    wait_until,
)

pytestmark = pytest.mark.qgis


def _plugin(iface):
    import rs2sam2_qgis

    plugin = rs2sam2_qgis.classFactory(iface)
    plugin.initGui()
    return plugin


def _dock_ready(plugin, raster_path, queries, spec=COLOUR_MODEL):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(raster_path), "scene")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    plugin.toggle_action.setChecked(True)
    dock = plugin.dock
    dock.layer_combo.setLayer(layer)
    dock.query_edit.setPlainText("\n".join(queries))
    _use_own_model(dock, spec)
    dock.device_combo.setCurrentIndex(dock.device_combo.findData("cpu"))
    return dock, layer


def _use_own_model(dock, spec):
    """`spec` typed in Model settings > Your own model, and that model chosen in the dock."""
    use_custom_model(spec)
    dock.model_kind.setCurrentIndex(dock.model_kind.findData("custom"))


def _run(dock, timeout=60):
    finished = []
    dock.run_finished.connect(finished.append)
    task = dock.start_run()
    assert wait_until(lambda: bool(finished), timeout), "the run did not finish"
    return task


def _result_layers():
    from qgis.core import QgsProject, QgsVectorLayer

    return [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)]


def test_startup_imports_nothing_heavy_and_loads_via_classfactory(clean_state, iface):
    import subprocess

    code = ("import sys, rs2sam2_qgis; heavy = [m for m in ('torch', 'qgis', 'rasterio', 'model_core') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

    # QGIS start-up (classFactory + initGui + Processing provider + opening the dock) in a fresh process: none of
    # the engine's compiled dependencies may load inside QGIS (pyproj/rasterio wheels hang there, see worker.py);
    # of the engine only its standard-library modules (choices, limits, the request, the model spec rule)
    light = ("rs2sam2_qgis.pipeline", "rs2sam2_qgis.pipeline.errors", "rs2sam2_qgis.pipeline.options",
             "rs2sam2_qgis.pipeline.request", "rs2sam2_qgis.pipeline.model_spec")
    code = ("import sys; from qgis.core import QgsApplication; app = QgsApplication([], False); app.initQgis(); "
            "import test_plugin_support as s, rs2sam2_qgis; p = rs2sam2_qgis.classFactory(s.FakeIface()); "
            "p.initGui(); p.set_dock_visible(True); "
            "print([m for m in sys.modules if m in ('torch', 'rasterio', 'pyproj', 'pyogrio', 'shapely', "
            f"'model_core') or (m.startswith('rs2sam2_qgis.pipeline') and m not in {light!r})])")
    env = dict(__import__("os").environ, PYTHONPATH=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr

    plugin = _plugin(iface)
    assert plugin.toggle_action in iface.toolbar_actions
    assert [a.text() for a in iface.menu_actions["&rs2sam2"]] == ["Segment by text (rs2sam2)", "Model settings…",
                                                                  "Python dependencies…"]
    from qgis.core import QgsApplication

    assert QgsApplication.processingRegistry().algorithmById("rs2sam2:segment_by_text") is not None
    assert plugin.dock is None  # built on first use only
    plugin.unload()
    assert not iface.toolbar_actions and not iface.menu_actions["&rs2sam2"]
    assert QgsApplication.processingRegistry().providerById("rs2sam2") is None


def test_metadata_has_every_required_field_and_the_project_version():
    import configparser
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    meta = configparser.ConfigParser()
    meta.read(root / "rs2sam2_qgis" / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                "tracker", "tags", "experimental", "license", "hasProcessingProvider"):
        assert general.get(key), key
    assert general["qgisMinimumVersion"] == "3.22" and general["hasProcessingProvider"] == "yes"
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert general["version"] == project["version"]
    assert (root / "rs2sam2_qgis" / general["icon"]).is_file()


def test_dock_builds_with_engine_defaults_and_fills_from_settings(clean_state, iface):
    from qgis.core import QgsSettings

    from rs2sam2_qgis.pipeline import SegmentOptions

    defaults = SegmentOptions()
    plugin = _plugin(iface)
    plugin.toggle_action.setChecked(True)
    dock = plugin.dock
    assert dock is not None and dock in iface.docks
    assert dock.advanced_widgets["overlap"].value() == pytest.approx(defaults.overlap)
    assert dock.advanced_widgets["threshold"].value() == pytest.approx(defaults.threshold)
    assert dock.advanced_widgets["min_area_m2"].value() == pytest.approx(defaults.min_area_m2)
    assert dock.advanced_widgets["tile"].specialValueText() and defaults.tile is None
    assert dock.scope_combo.currentData() == defaults.scope == "extent"
    assert dock.advanced_widgets["presence_threshold"].specialValueText() and defaults.presence_threshold is None
    assert dock.refine_check.isChecked() == defaults.refine_edges
    plugin.unload()

    s = QgsSettings()
    s.setValue("rs2sam2/queries", "the runway\nwhite tanks")
    s.setValue("rs2sam2/device", "cpu")
    s.setValue("rs2sam2/mode", "authors")
    s.setValue("rs2sam2/scope", "tile")
    s.setValue("rs2sam2/model_kind", "checkpoint")
    s.setValue("rs2sam2/checkpoint", "/data/model.pt")
    s.setValue("rs2sam2/area", "canvas")
    s.setValue("rs2sam2/options/threshold", 0.7)
    s.setValue("rs2sam2/options/refine_edges", not defaults.refine_edges)
    s.setValue("rs2sam2/query_history", ["old query", "the runway"])
    plugin = _plugin(iface)
    plugin.toggle_action.setChecked(True)
    dock = plugin.dock
    assert dock.query_edit.queries() == ["the runway", "white tanks"]
    assert dock.device_combo.currentData() == "cpu"
    assert dock.mode_combo.currentData() == "authors"
    assert dock.scope_combo.currentData() == "tile"
    assert dock.model_kind.currentData() == "checkpoint" and dock.model_spec() == "/data/model.pt"
    assert dock.area_combo.currentData() == "canvas"
    assert dock.advanced_widgets["threshold"].value() == pytest.approx(0.7)
    assert dock.refine_check.isChecked() == (not defaults.refine_edges)
    dock.reset_advanced()
    assert dock.refine_check.isChecked() == defaults.refine_edges
    assert dock.query_edit.history() == ["old query", "the runway"]
    completer = dock.query_edit.completer()
    completer.setCompletionPrefix("runw")
    assert completer.currentCompletion() == "the runway"
    plugin.unload()


def test_run_adds_a_styled_layer_per_query_with_engine_attributes(clean_state, iface, scene):
    from qgis.core import QgsProject

    plugin = _plugin(iface)
    dock, raster = _dock_ready(plugin, scene, ["the white tank", "red roofs", "a purple whale"])
    task = _run(dock)
    assert task.error is None, task.error
    layers = {lyr.name(): lyr for lyr in _result_layers()}
    assert set(layers) == {"the white tank", "red roofs", "a purple whale"}
    white, red = layers["the white tank"], layers["red roofs"]
    assert white.featureCount() == 1 and red.featureCount() == 1 and layers["a purple whale"].featureCount() == 0
    assert white.crs() == raster.crs()
    feature = next(white.getFeatures())
    names = [f.name() for f in white.fields()]
    for field in ("query", "score", "area_m2", "model", "device", "precision", "created_at", "presence", "rank"):
        assert field in names
    assert feature["query"] == "the white tank" and feature["model"] == "colour-test"
    assert feature["device"] == "cpu" and feature["precision"] == "fp32"
    # the white square is 32 x 32 px of 0.5 m = 256 m2
    assert feature["area_m2"] == pytest.approx(256.0, rel=0.1)
    bbox = feature.geometry().boundingBox()
    assert bbox.xMinimum() == pytest.approx(500008.0, abs=1.0) and bbox.yMaximum() == pytest.approx(4649768.0,
                                                                                                     abs=1.0)
    # grouped, styled semi-transparent with an outline, zoomed to
    group = QgsProject.instance().layerTreeRoot().children()[0]
    assert group.name().startswith("rs2sam2: scene")
    assert {child.layer().name() for child in group.findLayers()} == set(layers)
    symbol = white.renderer().symbol()
    assert 0 < symbol.color().alpha() < 255
    assert iface.mapCanvas().extent().contains(white.extent())
    assert "3 polygon" not in dock.status_label.text() and "2 polygons" in dock.status_label.text()
    assert "cpu" in dock.status_label.text() and "fp32 (auto: " in dock.status_label.text()
    assert "'the white tank': find 'the white tank'; keep one" in dock.status_label.toolTip()  # what was understood
    assert dock.export_button.isEnabled()
    from qgis.core import QgsSettings

    assert QgsSettings().value("rs2sam2/query_history")[:3] == ["a purple whale", "red roofs", "the white tank"]
    plugin.unload()


def test_export_appends_to_a_geopackage_with_write_vector(clean_state, iface, scene, tmp_path):
    import pyogrio

    from rs2sam2_qgis import worker_client

    plugin = _plugin(iface)
    dock, _ = _dock_ready(plugin, scene, ["the white tank"])
    _run(dock)
    pid = worker_client._server.proc.pid
    out = tmp_path / "export.gpkg"
    assert dock.export_to(str(out))
    assert dock.export_to(str(out))  # second export appends, never overwrites
    assert worker_client._server.proc.pid == pid  # one long-lived worker: the model stays loaded
    layers = [str(name) for name in pyogrio.list_layers(out)[:, 0]]
    assert len(layers) == 1
    assert pyogrio.read_info(out, layer=layers[0])["features"] == 2
    plugin.unload()


def _start_slow_run(iface, tmp_path):
    """(plugin, dock, task, finished tasks) of a run long enough to be interrupted."""
    big = make_geotiff(tmp_path / "big.tif", size=512)
    plugin = _plugin(iface)
    dock, _ = _dock_ready(plugin, big, ["the white tank"], spec=SLOW_MODEL)
    dock.advanced_widgets["overlap"].setValue(0.0)
    # every tile runs: the whole-area search could skip most tiles of a singular query and end before the test acts
    dock.scope_combo.setCurrentIndex(dock.scope_combo.findData("tile"))
    finished = []
    dock.run_finished.connect(finished.append)
    return plugin, dock, dock.start_run(), finished


def test_cancel_mid_run_adds_nothing(clean_state, iface, tmp_path):
    plugin, dock, task, finished = _start_slow_run(iface, tmp_path)
    assert wait_until(lambda: task.progress() > 0, 30), "no progress reported"
    dock.cancel_button.click()
    assert wait_until(lambda: bool(finished), 30)
    assert task.was_cancelled and task.reply.get("type") != "done"
    assert _result_layers() == []
    assert not Path(task.output).exists()  # the engine writes nothing when cancelled
    assert "Cancelled" in dock.status_label.text()
    assert dock.run_button.isEnabled()
    plugin.unload()


def test_authors_mode_reaches_the_predictor(clean_state, iface, scene):
    """The dock's Decision choice travels with the job to the engine worker's Predictor: the authors' contract
    needs an RS2-SAM2 model, so the colour test model is refused there with model_core's own message."""
    plugin = _plugin(iface)
    dock, _ = _dock_ready(plugin, scene, ["the white tank"])
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("authors"))
    task = _run(dock)
    assert task.request.model.mode == "authors"
    assert task.error and "needs an RS2-SAM2 model" in task.error and _result_layers() == []
    dock.mode_combo.setCurrentIndex(dock.mode_combo.findData("analyst"))
    task = _run(dock)
    assert task.error is None and len(_result_layers()) == 1
    plugin.unload()


def test_bad_input_shows_the_engine_message_and_adds_nothing(clean_state, iface, tmp_path):
    from qgis.core import Qgis

    plugin = _plugin(iface)
    # a raster without a CRS: the engine refuses it with one clear line (InputError)
    import numpy as np
    import rasterio

    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 64, 64), dtype=np.uint8))
    dock, _ = _dock_ready(plugin, path, ["the white tank"])
    task = _run(dock)
    assert task.error and task.trace is None  # an InputError: message only, no traceback
    assert iface.messages and iface.messages[-1][2] == Qgis.Critical
    assert iface.messages[-1][1] == task.error
    assert _result_layers() == []
    assert dock.status_label.text().startswith("Error:")

    # a broken model factory: the message bar says so, the trace goes to the log
    _use_own_model(dock, "py:colour_model:NoSuchModel")
    task = _run(dock)
    assert "NoSuchModel" in task.error and _result_layers() == []
    # an unexpected exception inside the engine process: one line in the bar, the full trace in the log
    from qgis.core import QgsApplication

    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append((tag, msg)))
    _use_own_model(dock, "py:test_plugin_support:broken_model")
    task = _run(dock)
    assert task.error == "RuntimeError: the model exploded" and iface.messages[-1][1] == task.error
    assert any(tag == "rs2sam2" and "Traceback" in msg and "the model exploded" in msg for tag, msg in logged)
    assert _result_layers() == []
    # an invalid tile size is caught by the engine's validation
    _use_own_model(dock, COLOUR_MODEL)
    dock.advanced_widgets["tile"].setValue(5)
    task = _run(dock)
    assert "tile size" in task.error and _result_layers() == []
    plugin.unload()


def test_area_canvas_extent_limits_the_run(clean_state, iface, scene):
    from qgis.core import QgsRectangle

    plugin = _plugin(iface)
    dock, raster = _dock_ready(plugin, scene, ["the white tank", "red roofs"])
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(raster.crs())
    # the lower-right half only: holds the red square, not the white one
    canvas.setExtent(QgsRectangle(500030.0, 4649712.0, 500064.0, 4649740.0))
    dock.area_combo.setCurrentIndex(dock.area_combo.findData("canvas"))
    options, mask_wkt = dock.build_options(raster)
    assert mask_wkt is None and options["scope"] == "extent" and options["presence_threshold"] is None
    assert options["refine_edges"] is True
    xmin, ymin, xmax, ymax = options["extent"]
    assert xmin <= 500030.0 and xmax >= 500064.0
    task = _run(dock)
    assert task.error is None, task.error
    counts = {lyr.name(): lyr.featureCount() for lyr in _result_layers()}
    assert counts == {"the white tank": 0, "red roofs": 1}
    plugin.unload()


def test_area_selected_polygons_mask_the_run(clean_state, iface, scene):
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsVectorLayer

    plugin = _plugin(iface)
    dock, raster = _dock_ready(plugin, scene, ["the white tank", "red roofs"])
    # a polygon layer in WGS 84 (another CRS than the raster's) around the white square only, selected
    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326", "areas", "memory")
    white_square_utm = QgsGeometry.fromWkt("POLYGON((500004 4649772, 500028 4649772, 500028 4649748, "
                                           "500004 4649748, 500004 4649772))")
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform

    white_square_utm.transform(QgsCoordinateTransform(raster.crs(), QgsCoordinateReferenceSystem("EPSG:4326"),
                                                      QgsProject.instance()))
    feature = QgsFeature()
    feature.setGeometry(white_square_utm)
    polygons.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(polygons)
    dock.area_combo.setCurrentIndex(dock.area_combo.findData("selection"))
    dock.mask_combo.setLayer(polygons)
    with pytest.raises(ValueError, match="select one or more polygons"):
        dock.build_options(raster)
    polygons.selectAll()
    options, mask_wkt = dock.build_options(raster)
    assert QgsGeometry.fromWkt(mask_wkt).boundingBox().xMinimum() == pytest.approx(500004.0, abs=0.5)
    task = _run(dock)
    assert task.error is None, task.error
    counts = {lyr.name(): lyr.featureCount() for lyr in _result_layers() if lyr.name() != "areas"}
    assert counts == {"the white tank": 1, "red roofs": 0}
    plugin.unload()


def test_dock_says_at_once_when_required_packages_are_missing(clean_state, iface, monkeypatch):
    from rs2sam2_qgis import bootstrap

    monkeypatch.setattr(bootstrap, "REQUIRED", bootstrap.REQUIRED + [("surely_not_installed_pkg", "x")])
    plugin = _plugin(iface)
    plugin.toggle_action.setChecked(True)
    text = plugin.dock.status_label.text()
    assert "surely_not_installed_pkg" in text and "Check dependencies" in text
    assert not plugin.dock.install_button.isHidden()  # opens the dependency installer's dialog
    plugin.unload()


def test_history_keeps_the_last_20_unique_queries(clean_state):
    from rs2sam2_qgis import settings

    for i in range(25):
        settings.add_to_history([f"query {i}"])
    items = settings.add_to_history(["query 7", "  ", "new one"])
    assert len(items) == 20 and items[:2] == ["new one", "query 7"] and items.count("query 7") == 1
    assert "query 0" not in items


def test_device_choice_shows_what_is_available(clean_state, iface):
    plugin = _plugin(iface)
    plugin.toggle_action.setChecked(True)
    dock = plugin.dock
    assert wait_until(lambda: dock._probe is not None and dock._probe.reply, 60)
    wait_until(lambda: "Auto (" in dock.device_combo.itemText(0), 5)
    import torch

    cuda = dock.device_combo.itemText(dock.device_combo.findData("cuda"))
    if torch.cuda.is_available():
        assert dock.device_combo.itemText(0) == "Auto (GPU)" and "not available" not in cuda
    else:
        assert dock.device_combo.itemText(0) == "Auto (CPU)" and cuda == "CUDA (not available)"
    assert dock.preset_combo.findText("nano") >= 0  # model_core's presets, listed by the worker
    plugin.unload()


def test_killed_engine_is_one_line_adds_nothing_and_the_next_run_works(clean_state, iface, tmp_path):
    """SIGKILL on the real worker mid-run (the out-of-memory killer): one line in the message bar, no layer, QGIS
    goes on, and the next run starts a fresh worker."""
    import os
    import signal

    plugin, dock, task, finished = _start_slow_run(iface, tmp_path)
    assert wait_until(lambda: task.progress() > 0, 60), "no progress"
    pid = busy_engine_pid()
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: bool(finished), 30)
    assert task.error and task.error.startswith("the engine process was killed (out of memory?)"), task.error
    assert "\n" not in task.error and not task.trace
    assert iface.messages[-1][1] == task.error
    assert _result_layers() == [] and not Path(task.output).exists()
    assert dock.run_button.isEnabled()
    _use_own_model(dock, COLOUR_MODEL)
    task = _run(dock)
    assert task.error is None and len(_result_layers()) == 1
    assert busy_engine_pid() != pid
    plugin.unload()


def test_py_spec_typed_as_a_preset_or_saved_in_settings_is_refused(clean_state, iface, scene, tmp_path,
                                                                   monkeypatch):
    """Code runs only from Model settings > Your own model: a py: spec in the preset field (or restored from saved
    settings someone else could have written) is one message, no run, and nothing imported here or in a worker."""
    from qgis.core import QgsSettings

    mark = tmp_path / "imported"
    monkeypatch.setenv("RS2SAM2_IMPORT_MARK", str(mark))
    monkeypatch.delitem(sys.modules, "tests.records_its_import", raising=False)
    QgsSettings().setValue("rs2sam2/model_kind", "preset")
    QgsSettings().setValue("rs2sam2/preset", "py:tests.records_its_import:model")
    plugin = _plugin(iface)
    dock, _ = _dock_ready(plugin, scene, ["red"])
    dock.load_settings()
    dock.query_edit.setPlainText("red")
    assert dock.model_spec() == "py:tests.records_its_import:model"
    assert dock.start_run() is None and dock.task is None
    assert "names Python code to run" in iface.messages[-1][1] and "Model settings" in iface.messages[-1][1]
    assert "tests.records_its_import" not in sys.modules and not mark.exists()
    _use_own_model(dock, "")  # "Your own model" chosen but none typed: says where to type it
    assert dock.start_run() is None and "no model of your own is set" in iface.messages[-1][1]
    plugin.unload()
