"""Loading a model file the user named: every way the file can be wrong becomes one InputError line naming it.

model_core.load_model raises whatever its readers raise on a bad file (EOFError for an empty torch file,
IndexError/UnpicklingError for random bytes, SafetensorError for a truncated .safetensors, CheckpointError for a
foreign or mismatched state dict, ValueError for a part-only checkpoint). A user cannot act on a traceback; they can
act on "this file is empty / truncated / not a model / another kind of model".
"""
from __future__ import annotations

import os

from .errors import InputError

HINT = ("give an rs2sam2 checkpoint (model_core.save_model / rs2sam2 train), the authors' release folder, or "
        "--model demo")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (strict loaders list hundreds of keys below it)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 240:
        first = first[:237] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def describe_failure(path: str, exc: BaseException) -> str:
    """One line for a model file that failed to load: what is wrong with it and what to do."""
    from model_core.checkpoints import CheckpointError

    name = os.fspath(path)
    if os.path.isfile(name) and os.path.getsize(name) == 0:
        return f"model file {name} is empty (0 bytes): the download or copy did not finish; fetch it again or {HINT}"
    msg = str(exc)
    if isinstance(exc, ValueError) and "fills only part of a model" in msg:
        kind = msg.split(" is a ", 1)[-1].split(" checkpoint", 1)[0]
        return (f"model file {name} holds {kind} weights, only one part of a model; in QGIS pick a preset and set "
                f"it as that part's weights (Model settings), or {HINT}")
    if isinstance(exc, CheckpointError):
        if msg.startswith("cannot tell what kind"):
            return f"model file {name} is not a model checkpoint rs2sam2 knows ({first_line(exc)}); {HINT}"
        return f"model file {name} does not fit the model it describes ({first_line(exc)}); {HINT}"
    if isinstance(exc, FileNotFoundError):
        return f"{first_line(exc)}; {HINT}"
    return f"model file {name} cannot be read: it is corrupt, truncated or not a model ({first_line(exc)}); {HINT}"


def load_model_file(spec: str, **kw):
    """model_core.load_model(spec) for "demo" or a path; a bad file raises InputError (one line naming it)."""
    import model_core

    spec = os.fspath(spec)
    if spec != "demo" and not spec.startswith("local-dir:") and not os.path.exists(spec):
        raise InputError(f"model checkpoint not found: {spec}; {HINT}")
    try:
        return model_core.load_model(spec, **kw)
    except (MemoryError, KeyboardInterrupt, ImportError):
        raise
    except Exception as exc:  # noqa: BLE001 - every reader's failure on the user's file is reported the same way
        raise InputError(describe_failure(spec, exc)) from None
