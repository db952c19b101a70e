"""Run a command with its output streamed line by line, and a cancel that really stops it (the whole process
tree: pip starts build subprocesses). Pure Python: QgsTask and tests use the same code."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence


class Cancelled(Exception):
    """The user cancelled; the command was killed."""


def _kill_tree(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        if os.name == "nt":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True,
                           creationflags=0x08000000)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


def run_streamed(cmd: Sequence[str], log: Callable[[str], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None, env: dict | None = None,
                 cwd: str | None = None, timeout: float | None = None) -> tuple[int, str]:
    """Run `cmd`; every output line goes to `log`; returns (exit code, last 200 lines). Raises Cancelled when
    `is_cancelled()` turns true (polled every 0.2 s), after killing the process tree."""
    flags = {}
    if os.name == "nt":
        flags["creationflags"] = 0x08000000  # CREATE_NO_WINDOW
    else:
        flags["start_new_session"] = True   # own process group, so a cancel kills pip's children too
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **flags)
    lines: queue.Queue = queue.Queue()

    def reader():
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\r\n"))
        lines.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    tail: list[str] = []
    start = time.monotonic()
    done = False
    while not done:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = ""
        if line is None:
            done = True
        elif line:
            tail.append(line)
            del tail[:-200]
            if log is not None:
                log(line)
        if is_cancelled is not None and is_cancelled():
            _kill_tree(proc)
            raise Cancelled("cancelled: " + " ".join(cmd[:4]))
        if timeout is not None and time.monotonic() - start > timeout:
            _kill_tree(proc)
            return 124, "\n".join(tail + [f"(timed out after {timeout:.0f} s)"])
    proc.wait()
    thread.join(timeout=1)
    return proc.returncode, "\n".join(tail)
