"""A model_core.Predictor for a model spec: the one way every front end (CLI, batch, the plugin's worker) gets one.

`load_predictor` resolves the spec (model_spec.resolve_model) and wraps the model; `PredictorCache` keeps the last
one for a long-lived process (the plugin's worker), so a second run with the same choice loads nothing.
"""
from __future__ import annotations

import os
import threading

from . import model_spec
from .errors import InputError


def make_predictor(model, device: str = "auto", precision: str = "auto", mode: str = "analyst"):
    """model_core.Predictor(model, ...); a device, precision or mode it cannot honour is one InputError line."""
    from model_core import Predictor

    try:
        return Predictor(model, device=device, precision=precision, mode=mode)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def load_predictor(spec: str, *, device: str = "auto", precision: str = "auto", mode: str = "analyst",
                   weights: dict | None = None, allow_code: bool = False):
    """The Predictor for a model spec (see model_spec.resolve_model for the spec kinds and `allow_code`)."""
    model = model_spec.resolve_model(spec, weights=weights, allow_code=allow_code)
    model.eval()
    return make_predictor(model, device, precision, mode)


class PredictorCache:
    """The last Predictor, kept for the next run with the same choice (one model in memory at a time)."""

    def __init__(self):
        self._key = None
        self._predictor = None
        self._lock = threading.Lock()

    def get(self, spec: str, *, device: str = "auto", precision: str = "auto", mode: str = "analyst",
            weights: dict | None = None, allow_code: bool = False):
        spec = (spec or "").strip()
        stamp = os.path.getmtime(spec) if spec and os.path.exists(spec) else None  # a replaced file: a new model
        key = (spec, (device or "auto").strip().lower(), precision, mode, stamp, tuple(sorted((weights or {}).items())),
               allow_code)
        with self._lock:
            if key != self._key:
                self._key, self._predictor = None, None  # free the old model before loading the new one
                self._predictor = load_predictor(spec, device=key[1], precision=precision, mode=mode,
                                                 weights=weights, allow_code=allow_code)
                self._key = key
            return self._predictor
