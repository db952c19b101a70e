"""A small store the plugin writes to after each run, read by the diagnostics report (pure Python, JSON file).

File: `<deps root>/run_state.json` (DepsLayout.state_file), keys:
    last_device          str   the device that really ran the last segmentation ("cuda:0", "cpu", "mps")
    last_device_detail   str   e.g. "NVIDIA RTX A4000, 16376 MiB, bf16" or why CUDA was not used
    last_run_at          str   UTC ISO time of that run
    last_error           str   one line: the last error a run or an install ended with
    last_error_trace     str   its Python traceback (text)
    last_error_at        str   UTC ISO time of that error
Writers: `record_run(...)` after a run (tasks.py), `record_error(...)` in an except block.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import traceback
import uuid
from pathlib import Path

KEYS = ("last_device", "last_device_detail", "last_run_at", "last_error", "last_error_trace", "last_error_at")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load(path: str | os.PathLike) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {k: data[k] for k in KEYS if k in data} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(path: str | os.PathLike, update: dict) -> dict:
    path = Path(path)
    data = load(path)
    data.update(update)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # diagnostics must never break a run
    return data


def record_run(path, device: str, detail: str = "") -> dict:
    return _save(path, {"last_device": str(device), "last_device_detail": detail, "last_run_at": _now()})


def record_error(path, error: BaseException | str, trace: str | None = None) -> dict:
    if isinstance(error, BaseException):
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
        if trace is None:
            trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    else:
        message = str(error)
    return _save(path, {"last_error": message, "last_error_trace": trace or "", "last_error_at": _now()})
