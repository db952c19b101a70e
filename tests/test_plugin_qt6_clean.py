"""QGIS 4 / Qt6 readiness, checked on QGIS 3.22: no Qt5-only idiom in the plugin (tests/qt6_lint.py), the compat
choices give the right parameter types, metadata declares QGIS 4, and the dependency folder follows QGIS's profile."""
from __future__ import annotations

import configparser
from pathlib import Path

import qgis.core  # noqa: F401 - required: the lint asks PyQt5 and QGIS which names are enum members
import qt6_lint  # tests/ helper

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "rs2sam2_qgis"


def test_plugin_has_no_qt5_only_idioms():
    findings = qt6_lint.check_tree(PLUGIN_DIR)
    assert not findings, "Qt5-only idioms (they stop the plugin loading on QGIS 4):\n" + "\n".join(map(str, findings))


QT5_SOURCE = '''
from PyQt5.QtCore import QVariant
from qgis.PyQt import sip
import PyQt5.QtGui
from qgis.PyQt.QtCore import Qt, QRegExp
from qgis.PyQt.QtWidgets import QAction, QMessageBox, QDialog
from qgis.core import Qgis, QgsTask, QgsProcessingParameterNumber, QgsField

class Dialog(QDialog):
    def exec_(self):
        return super().exec_()

area = Qt.RightDockWidgetArea
answer = QMessageBox.Yes | QMessageBox.No
level = Qgis.Critical
task_flag = QgsTask.CanCancel
kind = QgsProcessingParameterNumber.Double
scoped_but_moved = QgsProcessingParameterNumber.Type.Integer
field = QgsField("name", QVariant.String)
pattern = QRegExp("a+")
'''


def test_lint_finds_every_kind_of_qt5_idiom():
    messages = [f"{f.line}: {f.message}" for f in qt6_lint.check_source(QT5_SOURCE, "plugin/module.py")]
    expected = [
        "2: from PyQt5.QtCore import ...: import Qt through qgis.PyQt",
        "4: import PyQt5.QtGui: import Qt through qgis.PyQt",
        "5: QRegExp is removed in Qt6: use QRegularExpression",
        "6: QAction moved to QtGui in Qt6: import it from compat.py",
        "10: def exec_: PyQt6 calls exec",
        "11: .exec_(): PyQt6 has only .exec()",
        "13: unscoped enum Qt.RightDockWidgetArea: write Qt.DockWidgetArea.RightDockWidgetArea",
        "14: unscoped enum QMessageBox.No: write QMessageBox.StandardButton.No",
        "14: unscoped enum QMessageBox.Yes: write QMessageBox.StandardButton.Yes",
        "15: unscoped enum Qgis.Critical: write Qgis.MessageLevel.Critical",
        "16: unscoped enum QgsTask.CanCancel: write QgsTask.Flag.CanCancel",
        "17: QgsProcessingParameterNumber.Double (enum QgsProcessingParameterNumber.Type) moved to "
        "Qgis.ProcessingNumberParameterType (3.36): take it from compat.py",
        "18: QgsProcessingParameterNumber.Type moved to Qgis.ProcessingNumberParameterType (3.36): take it from "
        "compat.py",
        "19: QVariant.String: QGIS 3.38+ takes QMetaType types (pick one in compat.py)",
        "20: QRegExp is removed in Qt6: use QRegularExpression",
    ]
    assert messages == expected  # line 3 (qgis.PyQt's sip) is the portable import: no finding


PORTABLE_SOURCE = '''
try:
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QDialog, QMessageBox
from qgis.core import Qgis, QgsTask

area = Qt.DockWidgetArea.RightDockWidgetArea
answer = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
level = Qgis.MessageLevel.Critical
flags = QgsTask.Flags()
QDialog().exec()
'''


def test_lint_accepts_the_portable_spellings():
    assert qt6_lint.check_source(PORTABLE_SOURCE, "plugin/module.py") == []


def test_only_compat_may_name_moved_qgis_enums():
    source = "from qgis.core import QgsProcessingParameterNumber\nkind = QgsProcessingParameterNumber.Type.Double\n"
    assert qt6_lint.check_source(source, "rs2sam2_qgis/compat.py") == []
    assert len(qt6_lint.check_source(source, "rs2sam2_qgis/other.py")) == 1


def test_compat_choices_give_the_algorithm_its_parameter_types(qgis_app):
    from qgis.core import QgsProcessingParameterDefinition, QgsProcessingParameterNumber

    from rs2sam2_qgis import compat
    from rs2sam2_qgis.processing.segment_by_text import SegmentByTextAlgorithm

    alg = SegmentByTextAlgorithm()
    alg.initAlgorithm()
    # the 3.22 spellings (on 3.36+ the compat values are the Qgis.* ones, with the same numbers)
    assert alg.parameterDefinition("TILE").dataType() == QgsProcessingParameterNumber.Type.Integer
    assert alg.parameterDefinition("OVERLAP").dataType() == QgsProcessingParameterNumber.Type.Double
    assert alg.parameterDefinition("MASK").dataTypes() == [compat.SOURCE_VECTOR_POLYGON]
    advanced = QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert alg.parameterDefinition("MASK").flags() & advanced
    assert not alg.parameterDefinition("QUERIES").flags() & advanced


def test_metadata_declares_qgis_4():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["supportsQt6"] == "True"


def test_dependency_folders_follow_the_running_qgis_profile(qgis_app, tmp_path, monkeypatch):
    """A QGIS 4 profile (another folder than QGIS 3's) gets its own install: the folder is asked from QGIS."""
    from qgis.core import QgsApplication

    from rs2sam2_qgis import bootstrap
    from rs2sam2_qgis.deps import qgis_glue

    profile = tmp_path / "QGIS" / "QGIS4" / "profiles" / "work"
    monkeypatch.delenv("RS2SAM2_DEPS_DIR", raising=False)
    monkeypatch.delenv("RS2SAM2_LIBS_DIR", raising=False)
    monkeypatch.setattr(QgsApplication, "qgisSettingsDirPath", staticmethod(lambda: f"{profile}/"))
    assert qgis_glue.layout().root == profile / "python" / "rs2sam2_deps"
    assert bootstrap.user_libs_dir().parent == profile / "rs2sam2"
