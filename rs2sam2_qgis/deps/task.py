"""QgsTask that runs an install (manager.Installer) in QGIS's task manager: pip's output streamed to a log
callback, progress, and a cancel that kills pip (the previous dependency set stays live)."""
from __future__ import annotations

from collections.abc import Callable

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .layout import DepsLayout
from .manager import Installer, InstallOptions, InstallResult


class InstallDepsTask(QgsTask):
    """`logLine(str)` is emitted from the worker thread; Qt delivers it queued to slots in the GUI thread, so
    `on_log` may touch widgets. `on_done(InstallResult)` runs in the GUI thread when the task ends."""

    logLine = pyqtSignal(str)

    def __init__(self, layout: DepsLayout, options: InstallOptions | None = None,
                 on_log: Callable[[str], None] | None = None,
                 on_done: Callable[[InstallResult], None] | None = None, description: str = "rs2sam2: installing dependencies"):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.installer = Installer(layout, options)
        self.result: InstallResult | None = None
        self.exception: BaseException | None = None
        self._on_done = on_done
        if on_log is not None:
            self.logLine.connect(on_log)

    def run(self) -> bool:  # worker thread
        try:
            self.result = self.installer.run(log=self.logLine.emit,
                                             progress=lambda f: self.setProgress(max(0.0, min(100.0, 100.0 * f))),
                                             is_cancelled=self.isCanceled)
        except BaseException as exc:  # noqa: BLE001 - reported in finished()
            self.exception = exc
            self.result = InstallResult(False, f"{type(exc).__name__}: {exc}")
            return False
        return bool(self.result.ok)

    def finished(self, ok: bool) -> None:  # GUI thread
        if self.result is None:
            self.result = InstallResult(False, "cancelled before it started")
        if self._on_done is not None:
            self._on_done(self.result)
