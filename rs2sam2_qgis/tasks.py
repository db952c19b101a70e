"""QgsTask wrapper around one engine run: QGIS stays responsive, progress and cancel go through the engine's hooks.

The task never raises: the engine's InputError becomes `error` (its one-line message, for the message bar), any other
exception becomes `error` + `trace` (the full traceback, for QgsMessageLog). `finished` runs in the main thread and
hands the outcome to `on_finished(task)`.
"""
from __future__ import annotations

import threading
import time
import traceback

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

LOG_TAG = "rs2sam2"


def run_in_python_thread(fn, *args, poll=None, **kwargs):
    """Runs fn in a thread Python itself started, waits for it, returns its value or re-raises its exception.

    Why: QgsTask/Processing worker threads are Qt threads; PyQt gives each call into Python a short-lived thread
    state, so `threading.local` data dies after every call while C-level thread-specific storage survives.
    pyproj 3.7 keeps its PROJ context pointer in the latter and the object that frees it in the former: the second
    engine run on a reused Qt thread then uses a freed PROJ context and QGIS crashes (seen here: segfault in
    pyproj.CRS.from_wkt). A Python thread keeps one thread state for its whole life, so both die together.
    `poll()` runs every 50 ms in the calling (Qt) thread: Qt objects (progress signals) are touched only there.
    """
    box = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="rs2sam2-engine", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.05)
        if poll is not None:
            poll()
    if poll is not None:
        poll()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def log(message: str, level=Qgis.Info) -> None:
    QgsMessageLog.logMessage(message, LOG_TAG, level)


class SegmentTask(QgsTask):
    """Segments `raster_path` for `queries` with the model `model_spec` on `device`."""

    message = pyqtSignal(str)  # the engine's progress message (queued to the main thread)

    def __init__(self, raster_path: str, queries: list[str], model_spec: str, device: str, options,
                 on_finished=None, description: str | None = None):
        super().__init__(description or f"rs2sam2: {', '.join(queries)[:60]}", QgsTask.CanCancel)
        self.raster_path = raster_path
        self.queries = list(queries)
        self.model_spec = model_spec
        self.device_choice = device
        self.options = options
        self.on_finished = on_finished
        self.result = None
        self.error: str | None = None
        self.trace: str | None = None
        self.was_cancelled = False
        self.device_used: str = ""
        self.device_reason: str = ""
        self.model_name: str = ""
        self.seconds = 0.0
        self.last_message = ""
        self._pending = None

    # engine hooks --------------------------------------------------------------------------------------------
    def _progress(self, fraction: float, message: str = "") -> None:  # engine thread: only stores
        self._pending = (max(0.0, min(100.0, 100.0 * float(fraction))), message)

    def _forward_progress(self) -> None:  # task thread (a QThread): Qt signals are safe here
        pending, self._pending = self._pending, None
        if pending is None:
            return
        value, message = pending
        self.setProgress(value)
        if message and message != self.last_message:
            self.last_message = message
            self.message.emit(message)

    def _is_cancelled(self) -> bool:
        return self.isCanceled()

    # QgsTask -------------------------------------------------------------------------------------------------
    def run(self) -> bool:  # worker thread
        start = time.perf_counter()
        try:
            from .pipeline import Cancelled, InputError
        except Exception:  # noqa: BLE001
            self.error = "the rs2sam2 engine cannot be imported (see the log; use 'Check dependencies')"
            self.trace = traceback.format_exc()
            return False
        try:
            from .models import ModelSpecError, get_predictor

            self._progress(0.0, "loading model")
            predictor = run_in_python_thread(get_predictor, self.model_spec, self.device_choice,
                                             poll=self._forward_progress)
            self.device_used = str(predictor.device)
            self.device_reason = getattr(predictor, "device_reason", "")
            self.model_name = getattr(predictor, "model_name", "")
            if self.isCanceled():
                raise Cancelled("cancelled")
            from .pipeline import segment_raster

            self.result = run_in_python_thread(segment_raster, self.raster_path, self.queries, predictor,
                                               self.options, progress=self._progress,
                                               is_cancelled=self._is_cancelled, poll=self._forward_progress)
            return True
        except Cancelled:
            self.was_cancelled = True
            return False
        except (InputError, ModelSpecError) as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - shown in the message bar, trace in the log
            self.error = f"{type(exc).__name__}: {exc}"
            self.trace = traceback.format_exc()
            return False
        finally:
            self.seconds = time.perf_counter() - start

    def finished(self, ok: bool) -> None:  # main thread
        if self.isCanceled():
            self.was_cancelled = True
        if self.trace:
            log(f"run failed: {self.error}\n{self.trace}", Qgis.Critical)
        elif self.error:
            log(f"run failed: {self.error}", Qgis.Warning)
        if self.on_finished is not None:
            try:
                self.on_finished(self)
            except Exception:  # noqa: BLE001 - never let a Python exception dialog pop up
                log(f"handling the result failed:\n{traceback.format_exc()}", Qgis.Critical)
