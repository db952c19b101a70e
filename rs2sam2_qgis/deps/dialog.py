"""Dependencies dialog: copyable text view (install log / diagnostics), Install, Repair, Uninstall, Diagnostics."""
from __future__ import annotations

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from . import diagnostics, qgis_glue
from .manager import InstallOptions, InstallResult, check_missing, missing_message
from .task import InstallDepsTask
from .torch_variant import CUDA_INDEXES

TORCH_CHOICES = [("Automatic (by NVIDIA driver)", "auto"), ("CPU only", "cpu"),
                 ("From PyPI / my pip index", "pypi")] + [
    (f"CUDA {v[0]}.{v[1]} ({name})", name) for v, name in CUDA_INDEXES]


class DependenciesDialog(QDialog):
    def __init__(self, parent=None, layout=None, on_installed=None):
        super().__init__(parent)
        self.setWindowTitle("rs2sam2: Python dependencies")
        self.resize(820, 560)
        self.deps_layout = layout or qgis_glue.layout()
        self.on_installed = on_installed
        self.task = None
        self._diag_task = None

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.torch_combo = QComboBox()
        for label, value in TORCH_CHOICES:
            self.torch_combo.addItem(label, value)
        self.offline = QLineEdit()
        self.offline.setPlaceholderText("offline: folder of wheels (empty = download from PyPI)")
        browse = QPushButton("…")
        browse.setMaximumWidth(36)
        browse.clicked.connect(self._browse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)

        self.install_button = QPushButton("Install")
        self.repair_button = QPushButton("Repair")
        self.uninstall_button = QPushButton("Uninstall")
        self.diag_button = QPushButton("Diagnostics")
        self.copy_button = QPushButton("Copy")
        self.kit_button = QPushButton("Offline kit…")
        self.kit_button.setToolTip("Write the constraints and pip commands that collect a wheel folder for an "
                                   "offline install of this QGIS (run them on a connected machine)")
        self.cancel_button = QPushButton("Cancel install")
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        self.install_button.clicked.connect(lambda: self.start_install(repair=False))
        self.repair_button.clicked.connect(lambda: self.start_install(repair=True))
        self.uninstall_button.clicked.connect(self.uninstall)
        self.diag_button.clicked.connect(self.show_diagnostics)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        self.cancel_button.clicked.connect(self.cancel)
        self.kit_button.clicked.connect(self.write_offline_kit)
        close.clicked.connect(self.close)

        options = QHBoxLayout()
        options.addWidget(QLabel("torch:"))
        options.addWidget(self.torch_combo)
        options.addWidget(self.offline, 1)
        options.addWidget(browse)
        buttons = QHBoxLayout()
        for b in (self.install_button, self.repair_button, self.uninstall_button, self.diag_button, self.copy_button,
                  self.kit_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        box = QVBoxLayout(self)
        box.addWidget(self.status)
        box.addLayout(options)
        box.addWidget(self.text, 1)
        box.addWidget(self.progress)
        box.addLayout(buttons)
        self.refresh_status()

    # --- status ---------------------------------------------------------------------------------------------
    def refresh_status(self) -> None:
        active = self.deps_layout.active_dir()
        line = missing_message(check_missing()) or "All dependencies found."
        where = f"Folder: {active}" if active else f"Nothing installed yet in {self.deps_layout.key_dir}"
        self.status.setText(f"{line}\n{where}")

    def append(self, line: str) -> None:
        self.text.appendPlainText(line)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of wheels for an offline install")
        if folder:
            self.offline.setText(folder)

    def _busy(self, busy: bool) -> None:
        for b in (self.install_button, self.repair_button, self.uninstall_button):
            b.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)

    # --- actions ----------------------------------------------------------------------------------------------
    def options(self) -> InstallOptions:
        offline = self.offline.text().strip() or None
        proxy = None
        try:
            proxy = qgis_glue.qgis_proxy()
        except Exception:  # noqa: BLE001
            pass
        return InstallOptions(offline_dir=offline, proxy=proxy, torch=self.torch_combo.currentData() or "auto")

    def start_install(self, repair: bool = False) -> None:
        if self.task is not None:
            return
        self.text.clear()
        if repair:
            removed = self.deps_layout.cleanup()
            self.append(f"Repair: removed {len(removed)} unused set(s); installing a fresh set.")
        self.task = InstallDepsTask(self.deps_layout, self.options(), on_log=self.append, on_done=self._done)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self._busy(True)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        if self.task is not None:
            self.append("Cancelling: stopping pip; the previous set stays in use ...")
            self.task.cancel()

    def _done(self, result: InstallResult) -> None:
        self.task = None
        self._busy(False)
        self.append("")
        self.append(("OK: " if result.ok else "FAILED: ") + result.message)
        for w in result.warnings:
            self.append("warning: " + w)
        if result.log_tail and not result.ok:
            self.append("--- last pip output ---")
            self.append(result.log_tail[-4000:])
        if result.ok:
            from .layout import DepsLayout  # noqa: F401 - keep import local
            self.deps_layout.activate()
            if result.restart_needed:
                self.append("Restart QGIS to use the new packages: " + "; ".join(result.restart_reasons))
            if self.on_installed is not None:
                self.on_installed(result)
        else:
            from . import state

            state.record_error(self.deps_layout.state_file, "install: " + result.message, result.log_tail)
        self.refresh_status()

    def uninstall(self) -> None:
        answer = QMessageBox.question(self, "Uninstall", f"Remove {self.deps_layout.key_dir}?\n"
                                      "Only the plugin's own folder is removed; QGIS's packages are not touched.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        ok = self.deps_layout.uninstall()
        self.append("Removed our dependency folder." if ok else
                    "Some files are in use (Windows): restart QGIS and uninstall again to remove them.")
        self.append("Restart QGIS if torch was already loaded in this session.")
        self.refresh_status()

    def write_offline_kit(self, folder: str | None = None) -> str | None:
        """Write qgis-constraints.txt and download-wheels.txt into `folder` (asked for when None)."""
        from pathlib import Path

        from .constraints import qgis_pins
        from .manager import offline_kit
        from .torch_variant import choose_variant, detect_gpu

        folder = folder or QFileDialog.getExistingDirectory(self, "Folder for the offline kit")
        if not folder:
            return None
        choice = self.torch_combo.currentData() or "auto"
        gpu = detect_gpu() if choice in ("auto", "pypi") else None
        variant = choose_variant(gpu, force=None if choice == "auto" else choice)
        constraints, commands = offline_kit(qgis_pins(None, exclude=[self.deps_layout.root]), variant)
        Path(folder, "qgis-constraints.txt").write_text(constraints, encoding="utf-8")
        Path(folder, "download-wheels.txt").write_text(commands, encoding="utf-8")
        self.text.setPlainText(f"Wrote {folder}/qgis-constraints.txt and download-wheels.txt.\n"
                               "On a connected machine with the same OS, CPU and Python version, in that folder:\n\n"
                               + commands + "\nThen copy the wheels/ folder here and choose it as the offline folder.")
        return folder

    def show_diagnostics(self) -> None:
        self.text.setPlainText("Collecting diagnostics (checks torch in a separate process) ...")
        layout, version = self.deps_layout, qgis_glue.qgis_version()
        holder = {}

        def work(task):
            holder["text"] = diagnostics.report(layout, version)
            return True

        def done(exception, result=None):
            self.text.setPlainText(holder.get("text") or f"Diagnostics failed: {exception}")
            self._diag_task = None

        self._diag_task = QgsTask.fromFunction("rs2sam2: diagnostics", work, on_finished=done)
        QgsApplication.taskManager().addTask(self._diag_task)
