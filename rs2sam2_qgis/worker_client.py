"""Runs rs2sam2_qgis.worker jobs in a child Python process (see worker.py for why), from any thread.

`run_job(job, on_progress, is_cancelled)` blocks until the job ends and returns the worker's final message (a dict
with "type": "done" or "error"); it never raises for engine errors. Cancellation: a flag file the engine polls
between batches (clean: nothing written), then terminate/kill after a grace period.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

from .bootstrap import python_executable

CANCEL_GRACE_S = 15.0


class WorkerError(RuntimeError):
    pass


def child_environment() -> dict:
    """The parent's import path for the child (QGIS's plugin folders, extlibs, our package folder, a venv)."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None) if sys.platform != "win32" else None
    return env


def run_job(job: dict, on_progress: Optional[Callable[[float, str], None]] = None,
            is_cancelled: Optional[Callable[[], bool]] = None, python: Optional[str] = None) -> dict:
    cancel_dir = tempfile.mkdtemp(prefix="rs2sam2_job_")
    cancel_file = os.path.join(cancel_dir, "cancel")
    job = dict(job, cancel_file=cancel_file)
    stderr_file = tempfile.TemporaryFile(mode="w+")
    cmd = [python or python_executable(), "-m", "rs2sam2_qgis.worker"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_file, text=True,
                            env=child_environment(), bufsize=1)
    final: dict = {}
    cancel_at: Optional[float] = None

    def watch_cancel():
        nonlocal cancel_at
        while proc.poll() is None:
            if is_cancelled is not None and is_cancelled() and cancel_at is None:
                cancel_at = time.monotonic()
                open(cancel_file, "w").close()
            if cancel_at is not None and time.monotonic() - cancel_at > CANCEL_GRACE_S:
                proc.kill()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_cancel, name="rs2sam2-cancel-watch", daemon=True)
    try:
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        proc.stdin.close()
        watcher.start()
        for line in proc.stdout:
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
        proc.wait()
        watcher.join(1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        try:
            os.remove(cancel_file)
        except OSError:
            pass
        os.rmdir(cancel_dir) if os.path.isdir(cancel_dir) else None
    if cancel_at is not None and final.get("type") != "done":
        return {"type": "error", "kind": "cancelled", "message": "cancelled; nothing was written", "trace": ""}
    if not final:
        stderr_file.seek(0)
        tail = stderr_file.read()[-4000:]
        stderr_file.close()
        return {"type": "error", "kind": "internal", "trace": tail,
                "message": f"the rs2sam2 worker process ended without a result (exit code {proc.returncode}); "
                           "see the rs2sam2 log for its output"}
    stderr_file.close()
    return final
