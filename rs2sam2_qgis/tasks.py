"""QgsTask wrapper around one engine run: QGIS stays responsive, progress and cancel go through the engine's hooks.

The engine runs in a child Python process (worker.py says why); this task feeds it the job, forwards its progress,
turns a cancel into the engine's is_cancelled, and keeps the outcome. It never raises: the engine's InputError
becomes `error` (its one-line message, for the message bar), anything else becomes `error` + `trace` (for
QgsMessageLog). `finished` runs in the main thread and hands the task to `on_finished(task)`.
"""
from __future__ import annotations

import time

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .pipeline.request import SegmentRequest
from .worker_client import run_job, segment_job

LOG_TAG = "rs2sam2"


def log(message: str, level=Qgis.MessageLevel.Info) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, level)


class WorkerTask(QgsTask):
    """Runs one worker job (see worker.py); `reply` holds the worker's final message."""

    message = pyqtSignal(str)  # the engine's progress message (queued to the main thread)

    def __init__(self, description: str, job: dict, on_finished=None, flags=QgsTask.Flag.CanCancel):
        super().__init__(description, flags)
        self.job = job
        self.on_finished = on_finished
        self.reply: dict = {}
        self.error: str | None = None
        self.trace: str | None = None
        self.was_cancelled = False
        self.seconds = 0.0
        self.last_message = ""

    def _progress(self, fraction: float, message: str = "") -> None:
        self.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))
        if message and message != self.last_message:
            self.last_message = message
            self.message.emit(message)

    def run(self) -> bool:  # worker thread
        start = time.perf_counter()
        try:
            self.reply = run_job(self.job, on_progress=self._progress, is_cancelled=self.isCanceled)
        except Exception as exc:  # noqa: BLE001 - e.g. no Python interpreter found
            import traceback

            self.reply = {"type": "error", "kind": "internal", "message": f"{type(exc).__name__}: {exc}",
                          "trace": traceback.format_exc()}
        self.seconds = time.perf_counter() - start
        if self.reply.get("type") == "done":
            return True
        if self.reply.get("kind") == "cancelled" or self.isCanceled():
            self.was_cancelled = True
        else:
            self.error = self.reply.get("message") or "the run failed"
            self.trace = self.reply.get("trace") or None
        return False

    def finished(self, ok: bool) -> None:  # main thread
        if self.isCanceled() and not ok:
            self.was_cancelled = True
        if self.trace:
            log(f"run failed: {self.error}\n{self.trace}", Qgis.MessageLevel.Critical)
        elif self.error:
            log(f"run failed: {self.error}", Qgis.MessageLevel.Warning)
        if self.on_finished is not None:
            try:
                self.on_finished(self)
            except Exception:  # noqa: BLE001 - never let a Python exception dialog pop up
                import traceback

                log(f"handling the result failed:\n{traceback.format_exc()}", Qgis.MessageLevel.Critical)


class SegmentTask(WorkerTask):
    """Runs one SegmentRequest in the worker: writes `request.output` and pickles the engine's result to
    `request.result_file` for a later export."""

    def __init__(self, request: SegmentRequest, on_finished=None):
        super().__init__(f"rs2sam2: {', '.join(request.queries)[:60]}", segment_job(request), on_finished)
        self.request = request
        self.raster_name = ""

    @property
    def output(self) -> str:
        return self.request.output

    @property
    def result_file(self) -> str | None:
        return self.request.result_file

    @property
    def stats(self) -> dict:
        return self.reply.get("stats", {}) if self.reply.get("type") == "done" else {}
