"""The engine's choices and limits as the dock and the Processing algorithm show them.

The values, defaults and ranges are the engine's (pipeline/options.py, one place for each fact); only the words a
person reads are kept here. Imports neither qgis nor the engine's heavy modules, so both UIs and tests read it.
"""
from __future__ import annotations

import dataclasses

from .pipeline.options import DEVICES, LIMITS, MODES, SCOPES, SegmentOptions

#: how each engine scope is shown to the analyst
SCOPE_LABELS = {"extent": "The whole area: one answer for the area (default)",
                "tile": "Each tile on its own (every tile answers)"}
#: how each Predictor mode is shown (model_core decides what each means)
MODE_LABELS = {"analyst": "Probabilities at the tile's size (default)",
               "authors": "Authors' contract (RS2-SAM2 release: their resize and logit > 0.5)"}
#: how each device choice is shown
DEVICE_LABELS = {"auto": "Auto", "cuda": "CUDA (GPU)", "cpu": "CPU"}


def _labelled(values: tuple[str, ...], labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(value, labels.get(value, value)) for value in values]


def scopes() -> list[tuple[str, str]]:
    """[(scope, label)] in the engine's order; its first is the engine's default."""
    return _labelled(SCOPES, SCOPE_LABELS)


def modes() -> list[tuple[str, str]]:
    """[(mode, label)]; the first is the default."""
    return _labelled(MODES, MODE_LABELS)


def devices() -> list[tuple[str, str]]:
    """[(device, label)]; the first ("auto") is the default."""
    return _labelled(DEVICES, DEVICE_LABELS)


def limits(name: str) -> tuple[float, float]:
    """The inclusive range the engine accepts for the option `name` (a SegmentOptions field)."""
    return LIMITS[name]


def engine_defaults() -> dict:
    """Field -> default of the engine's SegmentOptions."""
    return {field.name: getattr(SegmentOptions(), field.name) for field in dataclasses.fields(SegmentOptions)}
