"""A model_core.Predictor for a ModelChoice: the one way every front end (CLI, batch local and Ray, the plugin's
worker) gets one.

`model_factory` resolves the choice's spec (model_spec.resolve_model) when called (a Ray actor calls it on its own
machine); `load_predictor` wraps the model; `PredictorCache` keeps the last one for a long-lived process (the
plugin's worker), so a second run with the same choice loads nothing.
"""
from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import model_spec
from .errors import InputError
from .request import ModelChoice

if TYPE_CHECKING:  # the engine imports torch only when a model is loaded
    from model_core import Predictor


def make_predictor(model, device: str = "auto", precision: str = "auto", mode: str = "analyst") -> Predictor:
    """model_core.Predictor(model, ...); a device, precision or mode it cannot honour is one InputError line."""
    from model_core import Predictor

    try:
        return Predictor(model, device=device, precision=precision, mode=mode)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def model_factory(choice: ModelChoice) -> Callable[[], Any]:
    """A picklable zero-argument callable that builds the chosen model."""
    if callable(choice.spec):
        return choice.spec
    return functools.partial(model_spec.resolve_model, choice.spec, weights=dict(choice.weights),
                             allow_code=choice.allow_code)


def load_predictor(choice: ModelChoice) -> Predictor:
    """The Predictor for `choice`."""
    model = model_factory(choice)()
    model.eval()
    return make_predictor(model, choice.device, choice.precision, choice.mode)


class PredictorCache:
    """The last Predictor, kept for the next run with the same choice (one model in memory at a time)."""

    def __init__(self):
        self._key = None
        self._predictor = None
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> Predictor:
        spec = choice.spec.strip()
        stamp = os.path.getmtime(spec) if spec and os.path.exists(spec) else None  # a replaced file: a new model
        key = (spec, choice.device.strip().lower(), choice.precision, choice.mode, stamp,
               tuple(sorted(choice.weights.items())), choice.allow_code)
        with self._lock:
            if key != self._key:
                self._key, self._predictor = None, None  # free the old model before loading the new one
                self._predictor = load_predictor(choice)
                self._key = key
            return self._predictor
