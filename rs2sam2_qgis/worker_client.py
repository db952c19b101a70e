"""Runs rs2sam2_qgis.worker jobs in a child Python process (see worker.py for why), from any thread.

`run_job(job, on_progress, is_cancelled)` blocks until the job ends and returns the worker's final message (a dict
with "type": "done" or "error"); it never raises for engine errors. `segment_job(request)` is the job of a
SegmentRequest (the dock and the Processing algorithm build one each).

One long-lived worker (`--serve`) takes the jobs one at a time, so the model stays loaded between runs; a job that
arrives while it is busy (e.g. a Processing run during a dock run) gets a one-shot process of its own. Cancellation:
a flag file the engine polls between batches (clean: nothing written), then kill after a grace period (the
long-lived worker is restarted on the next job).
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from .bootstrap import python_executable
from .pipeline.request import SegmentRequest

CANCEL_GRACE_S = 15.0


def child_environment() -> dict:
    """The parent's import path for the child (QGIS's plugin folders, extlibs, our package folder, a venv), with
    our package folders first (engine_path.py: QGIS's older packages must not shadow our set's)."""
    from .bootstrap import user_libs_dir
    from .engine_path import worker_path

    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(worker_path(paths, str(user_libs_dir())))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    if sys.platform != "win32":
        env.pop("PYTHONHOME", None)
    return env


class _Worker:
    """One child process; `persistent` ones take many jobs."""

    def __init__(self, persistent: bool, python: str | None = None):
        self.persistent = persistent
        self.env = child_environment()
        self.stderr = tempfile.TemporaryFile(mode="w+")
        cmd = [python or python_executable(), "-m", "rs2sam2_qgis.worker"] + (["--serve"] if persistent else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, env=self.env, bufsize=1)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            return self.stderr.read()[-4000:]
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        if self.alive():
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def run(self, job: dict, on_progress, is_cancelled) -> dict:
        cancel_dir = tempfile.mkdtemp(prefix="rs2sam2_job_")
        cancel_file = os.path.join(cancel_dir, "cancel")
        job = dict(job, cancel_file=cancel_file)
        state = {"cancel_at": None, "done": False}

        def watch_cancel():
            while not state["done"] and self.alive():
                if is_cancelled is not None and state["cancel_at"] is None and is_cancelled():
                    state["cancel_at"] = time.monotonic()
                    open(cancel_file, "w").close()
                if state["cancel_at"] is not None and time.monotonic() - state["cancel_at"] > CANCEL_GRACE_S:
                    self.proc.kill()
                    return
                time.sleep(0.05)

        final: dict = {}
        watcher = threading.Thread(target=watch_cancel, name="rs2sam2-cancel-watch", daemon=True)
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            if not self.persistent:
                self.proc.stdin.close()
            watcher.start()
            for line in self.proc.stdout:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if message.get("type") == "progress":
                    if on_progress is not None:
                        on_progress(float(message.get("fraction", 0.0)), str(message.get("message", "")))
                else:
                    final = message
                    break
        except (OSError, ValueError):
            pass  # the process died; reported below
        finally:
            state["done"] = True
            watcher.join(1.0) if watcher.is_alive() else None
            try:
                os.remove(cancel_file)
            except OSError:
                pass
            os.rmdir(cancel_dir) if os.path.isdir(cancel_dir) else None
        if not self.persistent:
            self.close()
        if state["cancel_at"] is not None and final.get("type") != "done":
            return {"type": "error", "kind": "cancelled", "message": "cancelled; nothing was written", "trace": ""}
        if not final:
            return ended_without_result(self.proc, self.stderr_tail())
        return final


def ended_without_result(proc: subprocess.Popen, stderr_tail: str) -> dict:
    """The reply for a worker that died mid-job. Killed by a signal (SIGKILL: the kernel's out-of-memory killer, or
    a user's kill -9): one line saying so and no trace (the dock and Processing show just that line); the next
    job starts a fresh worker (run_job drops a dead one)."""
    try:
        code = proc.wait(5)  # stdout closes a moment before the exit status is known
    except subprocess.TimeoutExpired:
        code = proc.poll()
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = "killed (out of memory?)" if -code == signal.SIGKILL else f"stopped by {name}"
        return {"type": "error", "kind": "killed", "trace": "",
                "message": f"the engine process was {why}; nothing was written; the next run starts a fresh one "
                           f"(for memory: a smaller area, tile or batch size, or a smaller model)"}
    return {"type": "error", "kind": "internal", "trace": stderr_tail,
            "message": f"the rs2sam2 worker process ended without a result (exit code {code}); see the rs2sam2 log "
                       "for its output"}


_lock = threading.Lock()
_server: _Worker | None = None


def _shutdown() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None


atexit.register(_shutdown)


def segment_job(request: SegmentRequest) -> dict:
    """The worker job that runs `request` (worker.py: action "segment")."""
    return {"action": "segment", "request": request.to_dict()}


def run_job(job: dict, on_progress: Callable[[float, str], None] | None = None,
            is_cancelled: Callable[[], bool] | None = None, persistent: bool = True) -> dict:
    global _server
    if not persistent or not _lock.acquire(blocking=False):
        return _Worker(persistent=False).run(job, on_progress, is_cancelled)
    try:
        if _server is not None and (not _server.alive() or _server.env.get("PYTHONPATH") !=
                                    child_environment().get("PYTHONPATH")):
            _server.close()
            _server = None
        if _server is None:
            _server = _Worker(persistent=True)
        reply = _server.run(job, on_progress, is_cancelled)
        if not _server.alive():
            _server.close()
            _server = None
        return reply
    finally:
        _lock.release()


def shutdown() -> None:
    """Stops the long-lived worker (plugin unload); the next job starts a new one."""
    with _lock:
        _shutdown()
