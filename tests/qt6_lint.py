"""Static check for Qt5-only idioms that stop a QGIS plugin from loading on Qt6 (QGIS 4), run on QGIS 3.22 / PyQt5.

The rules follow QGIS's own migration script (scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py):
- `exec_()` / `print_()`: gone in PyQt6 (`exec()` / `print()` work on both);
- unscoped enum members (`Qt.ToolTipRole`, `QMessageBox.Yes`, `QgsTask.CanCancel`): PyQt6 only has the scoped form;
  found by introspection, not by a list: PyQt5 / QGIS say whether `X.Y` is an enum member and of which enum;
- QRegExp, QRegExpValidator, QDesktopWidget, qApp: removed in Qt6;
- `QVariant.<Type>` constants: QGIS 3.38+ takes QMetaType types;
- PyQt5 / PyQt6 / sip imports that bypass `qgis.PyQt` (the only module that is right on both);
- QAction & co imported from QtWidgets: Qt6 moved them to QtGui (take them from compat.py);
- QGIS enums that moved into the `Qgis` namespace after 3.22 (the old homes are deprecated aliases in QGIS 4): only
  compat.py may name them.

    python tests/qt6_lint.py [FOLDER_OR_FILE ...]   # default: rs2sam2_qgis/; exit 1 when anything is found
"""
from __future__ import annotations

import ast
import enum
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO_ROOT / "rs2sam2_qgis"
COMPAT_FILE = "compat.py"  # the one module allowed to spell version-specific names

# Modules whose classes are introspected for enum members.
INTROSPECTED = ("qgis.PyQt.", "qgis.core", "qgis.gui", "qgis.analysis")
BYPASS_MODULES = ("PyQt5", "PyQt6", "sip")
RENAMED_METHODS = {"exec_": "exec", "print_": "print"}
REMOVED_IN_QT6 = {"QRegExp": "QRegularExpression", "QRegExpValidator": "QRegularExpressionValidator",
                  "QDesktopWidget": "QGuiApplication.screens()", "qApp": "QApplication.instance()"}
MOVED_TO_QTGUI = {"QAction", "QActionGroup", "QShortcut", "QFileSystemModel", "QUndoCommand", "QUndoGroup",
                  "QUndoStack"}
# (class, enum) -> where QGIS moved it (QGIS's python/core/auto_additions/qgis.py keeps the old name as an alias).
MOVED_TO_QGIS = {
    ("QgsWkbTypes", "GeometryType"): "Qgis.GeometryType (3.30)",
    ("QgsWkbTypes", "Type"): "Qgis.WkbType (3.30)",
    ("QgsMapLayer", "LayerType"): "Qgis.LayerType (3.30)",
    ("QgsMapLayerProxyModel", "Filter"): "Qgis.LayerFilter (3.34)",
    ("QgsProcessing", "SourceType"): "Qgis.ProcessingSourceType (3.36)",
    ("QgsProcessingParameterNumber", "Type"): "Qgis.ProcessingNumberParameterType (3.36)",
    ("QgsProcessingParameterDefinition", "Flag"): "Qgis.ProcessingParameterFlag (3.36)",
    ("QgsProcessingAlgorithm", "Flag"): "Qgis.ProcessingAlgorithmFlag (3.36)",
    ("QgsProcessingParameterFile", "Behavior"): "Qgis.ProcessingFileParameterBehavior (3.36)",
    ("QgsProcessingParameterField", "DataType"): "Qgis.ProcessingFieldParameterDataType (3.36)",
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _is_enum_member(value) -> bool:
    """A member of a sip enum (PyQt5, QGIS 3.x) or of a Python enum (PyQt6, scoped QGIS enums)."""
    return isinstance(value, enum.Enum) or type(type(value)).__name__ == "enumtype"


def _resolve(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, is_compat: bool):
        self.path = path
        self.is_compat = is_compat
        self.findings: list[Finding] = []
        self.classes: dict[str, object] = {}  # local name -> class imported from an introspected module
        self._try_depth = 0

    def report(self, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), message))

    # imports ------------------------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802 - ast's name
        for alias in node.names:
            if alias.name.split(".")[0] in BYPASS_MODULES:
                self.report(node, f"import {alias.name}: import Qt through qgis.PyQt")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        module = node.module or ""
        if node.level == 0 and module.split(".")[0] in BYPASS_MODULES:
            self.report(node, f"from {module} import ...: import Qt through qgis.PyQt")
        for alias in node.names:
            name = alias.asname or alias.name
            if alias.name in REMOVED_IN_QT6:
                self.report(node, f"{alias.name} is removed in Qt6: use {REMOVED_IN_QT6[alias.name]}")
            if alias.name in MOVED_TO_QTGUI and module.endswith("QtWidgets") and not self._try_depth:
                self.report(node, f"{alias.name} moved to QtGui in Qt6: import it from compat.py")
            if node.level == 0 and module.startswith(INTROSPECTED + BYPASS_MODULES):
                value = _resolve(module, alias.name)
                if isinstance(value, type):
                    self.classes[name] = value

    def visit_Try(self, node: ast.Try) -> None:  # noqa: N802 - a try/except ImportError may pick a Qt5 home
        self._try_depth += 1
        self.generic_visit(node)
        self._try_depth -= 1

    # uses ---------------------------------------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802
        if node.name in RENAMED_METHODS:
            self.report(node, f"def {node.name}: PyQt6 calls {RENAMED_METHODS[node.name]}")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:  # noqa: N802
        if node.id in REMOVED_IN_QT6 and isinstance(node.ctx, ast.Load):
            self.report(node, f"{node.id} is removed in Qt6: use {REMOVED_IN_QT6[node.id]}")

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802
        if node.attr in RENAMED_METHODS:
            self.report(node, f".{node.attr}(): PyQt6 has only .{RENAMED_METHODS[node.attr]}()")
        if isinstance(node.value, ast.Name):
            self._check_class_attribute(node, node.value.id)
        self.generic_visit(node)

    def _check_class_attribute(self, node: ast.Attribute, owner: str) -> None:
        if owner == "QVariant" and node.attr[:1].isupper():
            self.report(node, f"QVariant.{node.attr}: QGIS 3.38+ takes QMetaType types (pick one in compat.py)")
            return
        cls = self.classes.get(owner)
        if cls is None:
            return
        value = getattr(cls, node.attr, None)
        if isinstance(value, type):  # X.Enum (the scoped form's first half) or a nested class
            moved = MOVED_TO_QGIS.get((owner, node.attr))
            if moved and not self.is_compat:
                self.report(node, f"{owner}.{node.attr} moved to {moved}: take it from compat.py")
            return
        if not _is_enum_member(value):
            return
        enum_name = type(value).__name__
        moved = MOVED_TO_QGIS.get((owner, enum_name))
        if moved and not self.is_compat:
            self.report(node, f"{owner}.{node.attr} (enum {owner}.{enum_name}) moved to {moved}: take it from "
                        "compat.py")
        elif getattr(getattr(cls, enum_name, None), node.attr, None) is not None:
            self.report(node, f"unscoped enum {owner}.{node.attr}: write {owner}.{enum_name}.{node.attr}")
        else:
            self.report(node, f"unscoped enum {owner}.{node.attr} (of {type(value).__qualname__}): no scoped "
                        f"spelling on {owner} here")


def check_source(source: str, path: str = "<string>") -> list[Finding]:
    """The findings of one module's source text (compat.py's own rules apply when `path` ends with it)."""
    checker = _Checker(path, Path(path).name == COMPAT_FILE)
    checker.visit(ast.parse(source, filename=path))
    return sorted(checker.findings, key=lambda f: (f.path, f.line, f.message))


def python_files(root: Path) -> list[Path]:
    """The plugin's own .py files (extlibs/ holds the QGIS-free model_core and is skipped)."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.py") if "extlibs" not in p.relative_to(root).parts)


def check_tree(root: Path = PLUGIN_DIR) -> list[Finding]:
    findings = []
    for path in python_files(Path(root)):
        findings += check_source(path.read_text(encoding="utf-8"), str(path.relative_to(Path(root).parent)))
    return findings


def main(argv: list[str]) -> int:
    findings = [f for root in (argv or [str(PLUGIN_DIR)]) for f in check_tree(Path(root))]
    for finding in findings:
        print(finding)
    print(f"{len(findings)} Qt5-only idiom(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
