"""Processing algorithm rs2sam2:segment_by_text: processing.run, a graphical model, batch mode (the real batch
dialog), errors, and headless `qgis_process.bin run` in a subprocess with the plugin installed in a profile."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import qgis.core  # noqa: E402,F401 - QGIS's Python runs the tests: missing QGIS fails, never skips
from test_plugin_support import (  # noqa: E402,F401 - fixtures
    COLOUR_MODEL,
    REPO_ROOT,
    SLOW_MODEL,
    TESTS_DIR,
    busy_engine_pid,
    clean_state,
    make_geotiff,
    qgis_env,
    scene,
    use_custom_model,
)

pytestmark = pytest.mark.qgis
ALG = "rs2sam2:segment_by_text"


@pytest.fixture(scope="module")
def processing_ready(qgis_app):
    from processing.core.Processing import Processing
    from qgis.core import QgsApplication

    from rs2sam2_qgis.processing.provider import Rs2Sam2Provider

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    provider = None
    if registry.providerById("rs2sam2") is None:
        provider = Rs2Sam2Provider()
        registry.addProvider(provider)
    yield registry
    if provider is not None:
        registry.removeProvider(provider)


def _colour() -> str:
    """The colour test model as a person sets it up: typed in Model settings > Your own model, named "custom"."""
    return use_custom_model(COLOUR_MODEL)


def _read(path):
    import pyogrio

    layers = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    assert len(layers) == 1, layers
    return pyogrio.read_dataframe(path) if False else pyogrio.raw.read(path, layer=layers[0])


def _no_crs_raster(path):
    import warnings

    import numpy as np
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
            dst.write(np.zeros((3, 64, 64), dtype=np.uint8))
    return path


def _queries_and_areas(path):
    meta, _, _, fields = _read(path)
    names = list(meta["fields"])
    return sorted(zip(fields[names.index("query")], [round(a) for a in fields[names.index("area_m2")]]))


def test_processing_run_writes_one_layer_with_every_query(processing_ready, clean_state, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.infos = []

        def pushInfo(self, info):  # noqa: N802 - Qt's name
            self.infos.append(info)
            super().pushInfo(info)

    out = tmp_path / "out.gpkg"
    feedback = Feedback()
    result = processing.run(ALG, {"INPUT": str(scene), "QUERIES": "the white tank\nred roofs",
                                  "MODEL": _colour(), "DEVICE": 2, "OUTPUT": str(out)}, feedback=feedback)
    assert "'the white tank' read as: find 'the white tank'; keep one" in feedback.infos  # what was understood
    assert result["OUTPUT"].split("|")[0] == str(out) and result["DEVICE_USED"] == "cpu"
    assert result["FEATURE_COUNT"] == 2
    assert _queries_and_areas(out) == [("red roofs", 400), ("the white tank", 256)]
    meta = _read(out)[0]
    assert list(meta["fields"]) == ["query", "score", "area_m2", "model", "device", "precision", "created_at", "presence", "rank"]
    assert "32633" in meta["crs"]

    # "Save to GeoPackage" with a layer name, into the same file: a second layer, the first one untouched
    import pyogrio

    dest = f"ogr:dbname='{out}' table=\"tanks\" (geom)"
    result = processing.run(ALG, {"INPUT": str(scene), "QUERIES": "the white tank", "MODEL": _colour(),
                                  "DEVICE": 2, "OUTPUT": dest})
    assert result["OUTPUT"] == f"{out}|layername=tanks"
    assert sorted(str(n) for n in pyogrio.list_layers(out)[:, 0]) == ["rs2sam2", "tanks"]
    from qgis.core import QgsVectorLayer

    assert QgsVectorLayer(result["OUTPUT"], "t", "ogr").featureCount() == 1


def test_toolbox_dialog_builds_a_widget_for_every_parameter(processing_ready, clean_state):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg.displayName() == "Segment by text" and alg.provider().id() == "rs2sam2"
    dialog = AlgorithmDialog(alg.create(), in_place=False)
    panel = dialog.mainWidget()
    names = {p.name() for p in alg.parameterDefinitions()}
    assert names <= set(panel.wrappers)
    dialog.deleteLater()


def test_processing_reports_engine_errors_as_processing_exceptions(processing_ready, clean_state, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    nocrs = _no_crs_raster(tmp_path / "nocrs.tif")
    with pytest.raises(QgsProcessingException, match="(?i)crs"):  # the engine's InputError, one line
        processing.run(ALG, {"INPUT": str(nocrs), "QUERIES": "white", "MODEL": _colour(), "DEVICE": 2,
                             "OUTPUT": str(tmp_path / "x.gpkg")})
    with pytest.raises(QgsProcessingException, match="neither a preset"):
        processing.run(ALG, {"INPUT": str(scene), "QUERIES": "white", "MODEL": "no-such-model", "DEVICE": 2,
                             "OUTPUT": str(tmp_path / "y.gpkg")})
    assert not (tmp_path / "x.gpkg").exists() and not (tmp_path / "y.gpkg").exists()


def test_py_model_parameter_is_refused_and_imports_nothing(processing_ready, clean_state, scene, tmp_path,
                                                          monkeypatch):
    """A Processing parameter (a model file, a project, someone's batch) must not name code to run here."""
    import processing
    from qgis.core import QgsProcessingException

    mark = tmp_path / "imported"
    monkeypatch.setenv("RS2SAM2_IMPORT_MARK", str(mark))
    monkeypatch.delitem(sys.modules, "tests.records_its_import", raising=False)
    with pytest.raises(QgsProcessingException, match="names Python code to run") as err:
        processing.run(ALG, {"INPUT": str(scene), "QUERIES": "white", "MODEL": "py:tests.records_its_import:model",
                             "DEVICE": 2, "OUTPUT": str(tmp_path / "x.gpkg")})
    assert "Model settings" in str(err.value) and "\n" not in str(err.value)
    assert "tests.records_its_import" not in sys.modules and not mark.exists()
    assert not (tmp_path / "x.gpkg").exists()


def test_parameter_ranges_are_the_engines(processing_ready):
    from qgis.core import QgsApplication

    from rs2sam2_qgis.pipeline.options import LIMITS

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    for name, field in (("TILE", "tile"), ("OVERLAP", "overlap"), ("THRESHOLD", "threshold"),
                        ("PRESENCE", "presence_threshold")):
        param = alg.parameterDefinition(name)
        assert (param.minimum(), param.maximum()) == LIMITS[field], name
    from rs2sam2_qgis.pipeline import SegmentOptions

    assert alg.parameterDefinition("REFINE_EDGES").defaultValue() == SegmentOptions().refine_edges


def test_mask_polygons_limit_the_run(processing_ready, clean_state, scene, tmp_path):
    import processing
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsVectorLayer

    mask = QgsVectorLayer("Polygon?crs=EPSG:32633", "mask", "memory")
    feature = QgsFeature()
    # around the red square only (rows/cols 72..111 at 0.5 m from 500000, 4649776)
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((500034 4649742, 500058 4649742, 500058 4649718, "
                                            "500034 4649718, 500034 4649742))"))
    mask.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(mask)
    out = tmp_path / "masked.gpkg"
    processing.run(ALG, {"INPUT": str(scene), "QUERIES": "the white tank;red roofs", "MODEL": _colour(),
                         "DEVICE": 2, "MASK": mask, "OUTPUT": str(out)})
    assert [q for q, _ in _queries_and_areas(out)] == ["red roofs"]


def test_algorithm_runs_inside_a_graphical_model(processing_ready, clean_state, scene, tmp_path):
    import processing
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("rs2sam2 test model", "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("raster", "Raster"),
                            QgsProcessingModelParameter("raster"))
    child = QgsProcessingModelChildAlgorithm(ALG)
    child.setChildId("segment")
    child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
    for name, value in (("QUERIES", "red roofs"), ("MODEL", _colour()), ("DEVICE", 2), ("OVERLAP", 0.25),
                        ("THRESHOLD", 0.5), ("MIN_AREA", 0.0)):
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    output = QgsProcessingModelOutput("segments", "Segments")
    output.setChildId("segment")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"segments": output})
    model.addChildAlgorithm(child)
    out = tmp_path / "model_out.gpkg"
    result = processing.run(model, {"raster": str(scene), "segment:segments": str(out)})
    assert Path(result["segment:segments"].split("|")[0]) == out
    assert _queries_and_areas(out) == [("red roofs", 400)]


def test_batch_mode_over_two_rasters(processing_ready, clean_state, tmp_path):
    """The real batch dialog (processing.gui.BatchAlgorithmDialog), two rows, run."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis.core import QgsApplication, QgsProcessingContext

    rasters = [make_geotiff(tmp_path / "a.tif"), make_geotiff(tmp_path / "b.tif", size=96)]
    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    dialog = BatchAlgorithmDialog(alg.create())
    panel = dialog.mainWidget()
    while panel.batchRowCount() < 2:
        panel.addRow()
    panel.checkLoadLayersOnCompletion.setChecked(False)
    context = QgsProcessingContext()
    outputs = [tmp_path / "a.gpkg", tmp_path / "b.gpkg"]
    for row, (raster, out) in enumerate(zip(rasters, outputs)):
        values = {"INPUT": str(raster), "QUERIES": "the white tank", "MODEL": _colour(), "DEVICE": 2}
        for name, value in values.items():
            panel.wrappers[row][panel.parameter_to_column[name]].setParameterValue(value, context)
        panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column["OUTPUT"]).setValue(str(out))
    dialog.runAlgorithm()
    for out in outputs:
        assert _queries_and_areas(out) == [("the white tank", 256)]
    dialog.deleteLater()


def _install_plugin(profile_root: Path) -> Path:
    plugins = profile_root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "rs2sam2_qgis"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "rs2sam2_qgis", target_is_directory=True)
    return link


def _qgis_process_env(profile_root: Path) -> dict:
    import site

    env = dict(os.environ)
    site_packages = [p for p in site.getsitepackages() if "site-packages" in p and str(REPO_ROOT) in p]
    env["PYTHONPATH"] = os.pathsep.join([*site_packages, str(REPO_ROOT), str(TESTS_DIR)])
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(profile_root)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("XDG_RUNTIME_DIR", "/tmp/runtime-rs2sam2")
    return env


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qgis_process.bin") is None and not Path("/usr/bin/qgis_process.bin").exists(),
                    reason="qgis_process.bin not installed (apt-get install qgis)")
def test_qgis_process_headless_run(tmp_path):
    exe = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
    profile = tmp_path / "qgis_profile"
    _install_plugin(profile)
    env = _qgis_process_env(profile)
    enable = subprocess.run([exe, "plugins", "enable", "rs2sam2_qgis"], env=env, capture_output=True, text=True,
                            timeout=180)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    from qgis.PyQt.QtCore import QSettings

    profile_settings = QSettings(str(profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"), QSettings.IniFormat)
    profile_settings.setValue("rs2sam2/custom_model", COLOUR_MODEL)  # Model settings > Your own model, typed there
    profile_settings.sync()
    scene_path = make_geotiff(tmp_path / "scene.tif")
    out = tmp_path / "qp_out.gpkg"
    run = subprocess.run([exe, "run", ALG, "--json", f"--INPUT={scene_path}", "--QUERIES=the white tank;red roofs",
                          "--MODEL=custom", "--DEVICE=2", f"--OUTPUT={out}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads(run.stdout[run.stdout.index("{"):])
    assert payload["results"]["FEATURE_COUNT"] == 2 and payload["results"]["DEVICE_USED"] == "cpu"
    assert _queries_and_areas(out) == [("red roofs", 400), ("the white tank", 256)]

    nocrs = _no_crs_raster(tmp_path / "nocrs.tif")
    bad = subprocess.run([exe, "run", ALG, f"--INPUT={nocrs}", "--QUERIES=white", "--MODEL=custom",
                          f"--OUTPUT={tmp_path / 'bad.gpkg'}"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "crs" in (bad.stdout + bad.stderr).lower()
    assert not (tmp_path / "bad.gpkg").exists()


def test_killed_engine_is_one_processing_error_and_the_next_run_works(processing_ready, clean_state, tmp_path):
    """SIGKILL on the real worker mid-run: one QgsProcessingException line, no output, the next run succeeds."""
    import os
    import signal
    import threading

    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    big = make_geotiff(tmp_path / "big.tif", size=512)
    progressed = threading.Event()

    class Feedback(QgsProcessingFeedback):
        def setProgressText(self, text):  # noqa: N802 - Qt's name
            if text.startswith("tile "):
                progressed.set()
            super().setProgressText(text)

    killed = []

    def kill():
        if progressed.wait(60):
            killed.append(busy_engine_pid())
            os.kill(killed[0], signal.SIGKILL)
    threading.Thread(target=kill, daemon=True).start()
    out = tmp_path / "k.gpkg"
    with pytest.raises(QgsProcessingException) as err:
        processing.run(ALG, {"INPUT": str(big), "QUERIES": "white", "MODEL": use_custom_model(SLOW_MODEL), "DEVICE": 2,
                             "TILE": 32, "OVERLAP": 0.0, "OUTPUT": str(out)}, feedback=Feedback())
    assert killed, "the run ended before it could be killed"
    assert str(err.value).startswith("the engine process was killed (out of memory?)") and "\n" not in str(err.value)
    assert not out.exists()
    result = processing.run(ALG, {"INPUT": str(big), "QUERIES": "white", "MODEL": _colour(), "DEVICE": 2,
                                  "OUTPUT": str(tmp_path / "ok.gpkg")})
    assert result["FEATURE_COUNT"] >= 1 and busy_engine_pid() != killed[0]
