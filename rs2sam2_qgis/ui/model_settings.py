"""Model settings: weight file paths (with official downloads), your own model code (the one place in the plugin
where a py:module:callable is accepted: model_choice.py says why) and a dependency check with the exact pip
command."""
from __future__ import annotations

import traceback

from qgis.core import Qgis, QgsApplication, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from .. import settings
from ..pipeline.model_spec import is_code_spec
from ..tasks import log


def _human(size) -> str:
    if not size:
        return "size: reported by the server"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024.0
    return str(size)


class DownloadTask(QgsTask):
    def __init__(self, entry, folder, on_done):
        super().__init__(f"rs2sam2: downloading {entry.filename}", QgsTask.Flag.CanCancel)
        self.entry, self.folder, self.on_done = entry, folder, on_done
        self.path = None
        self.error = ""

    def run(self):
        from ..weights import DownloadError, download_entry

        def progress(done, total):
            if total:
                self.setProgress(100.0 * done / total)

        try:
            self.path = download_entry(self.entry, self.folder, progress=progress, is_cancelled=self.isCanceled)
            return True
        except DownloadError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc(), Qgis.MessageLevel.Critical)
        return False

    def finished(self, ok):
        self.on_done(self)


class ModelSettingsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("rs2sam2 model settings")
        self.setMinimumWidth(720)
        self.file_widgets: dict[str, QgsFileWidget] = {}
        self.progress_bars: dict[str, QProgressBar] = {}
        self.download_buttons: dict[str, QPushButton] = {}
        self.tasks: dict[str, DownloadTask] = {}
        layout = QVBoxLayout(self)

        from ..weights import CATALOG

        weights_box = QGroupBox("Weight files", self)
        grid = QGridLayout(weights_box)
        row = 0
        for key, label in settings.WEIGHT_KEYS.items():
            grid.addWidget(QLabel(f"<b>{label}</b>"), row, 0, 1, 3)
            row += 1
            widget = QgsFileWidget(self)
            if key == "rs2sam2":
                widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
            widget.setFilePath(settings.weight_path(key))
            self.file_widgets[key] = widget
            grid.addWidget(widget, row, 0)
            button = QPushButton("Download", self)
            bar = QProgressBar(self)
            bar.setRange(0, 100)
            bar.setMaximumWidth(120)
            bar.setVisible(False)
            grid.addWidget(button, row, 1)
            grid.addWidget(bar, row, 2)
            row += 1
            entries = CATALOG.get(key, [])
            if entries:
                entry = entries[0]
                info = QLabel(f"{entry.label}<br><small>{entry.url}<br>{_human(entry.size)}; "
                              f"{entry.verification_text()}. {entry.note}</small>")
                info.setWordWrap(True)
                info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                grid.addWidget(info, row, 0, 1, 3)
                row += 1
                button.clicked.connect(lambda _=False, k=key: self.start_download(k))
            else:
                button.setEnabled(False)
            self.download_buttons[key] = button
            self.progress_bars[key] = bar
        layout.addWidget(weights_box)

        own_box = QGroupBox("Your own model", self)
        own_layout = QVBoxLayout(own_box)
        self.custom_model_edit = QLineEdit(settings.custom_model(), self)
        self.custom_model_edit.setPlaceholderText("py:module:callable")
        self.custom_model_edit.setToolTip("A Python callable that returns a model following the model protocol; "
                                          "the module must be importable. Runs choose it as 'Your own model' in "
                                          "the panel, or MODEL=custom in Processing.")
        own_layout.addWidget(QLabel("Python code that builds your model (it runs on this machine: only code you "
                                    "trust)", self))
        own_layout.addWidget(self.custom_model_edit)
        layout.addWidget(own_box)

        deps_row = QHBoxLayout()
        self.check_button = QPushButton("Check dependencies", self)
        self.copy_button = QPushButton("Copy report", self)
        self.install_button = QPushButton("Install…", self)
        self.install_button.setToolTip("The dependency installer: pip into a folder of our own, QGIS's own "
                                       "numpy/GDAL/PROJ untouched")
        deps_row.addWidget(self.check_button)
        deps_row.addWidget(self.install_button)
        deps_row.addWidget(self.copy_button)
        deps_row.addStretch(1)
        layout.addLayout(deps_row)
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("'Check dependencies' lists what is missing and the pip command for "
                                       "QGIS's Python.")
        self.report.setMinimumHeight(120)
        layout.addWidget(self.report)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.check_button.clicked.connect(self.check_dependencies)
        self.install_button.clicked.connect(self.open_installer)
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.report.toPlainText()))

    def check_dependencies(self) -> str:
        from ..bootstrap import dependency_report

        text = dependency_report()
        self.report.setPlainText(text)
        return text

    def open_installer(self) -> None:
        try:
            from ..deps.dialog import DependenciesDialog
        except ImportError:
            self.check_dependencies()
            return
        DependenciesDialog(self, on_installed=lambda *_: self.check_dependencies()).exec()

    def start_download(self, key: str) -> None:
        from ..weights import CATALOG, default_folder

        if key in self.tasks:
            self.tasks[key].cancel()
            return
        entry = CATALOG[key][0]
        task = DownloadTask(entry, default_folder(), self._download_done)
        task.key = key
        bar = self.progress_bars[key]
        bar.setValue(0)
        bar.setVisible(True)
        task.progressChanged.connect(lambda v, b=bar: b.setValue(int(v)))
        self.download_buttons[key].setText("Cancel")
        self.tasks[key] = task
        self.status.setText(f"Downloading {entry.url} …")
        QgsApplication.taskManager().addTask(task)

    def _download_done(self, task: DownloadTask) -> None:
        key = task.key
        self.tasks.pop(key, None)
        self.download_buttons[key].setText("Download")
        self.progress_bars[key].setVisible(False)
        if task.path is not None:
            self.file_widgets[key].setFilePath(str(task.path))
            settings.set_weight_path(key, str(task.path))
            self.status.setText(f"Downloaded and verified: {task.path}")
        else:
            self.status.setText(f"Download failed: {task.error}")
            log(f"download failed: {task.error}", Qgis.MessageLevel.Warning)

    def save(self) -> bool:
        """Stores the choices (the worker builds its next model from them); False when the own-model field is
        not a py:module:callable (nothing is stored then)."""
        custom = self.custom_model_edit.text().strip()
        if custom and not is_code_spec(custom):
            self.status.setText(f"Your own model must be written py:module:callable, not '{custom}'")
            return False
        for key, widget in self.file_widgets.items():
            settings.set_weight_path(key, widget.filePath().strip())
        settings.set_custom_model(custom)
        return True

    def accept(self):
        if self.save():
            super().accept()

    def reject(self):
        for task in list(self.tasks.values()):
            task.cancel()
        super().reject()
