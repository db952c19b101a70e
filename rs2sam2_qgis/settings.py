"""The plugin's persistent settings (QgsSettings, section "rs2sam2/").

Segmentation defaults are *not* stored here: they come from the engine's SegmentOptions (one place for each fact);
only what the analyst changed is remembered.
"""
from __future__ import annotations

import dataclasses

from qgis.core import QgsSettings

PREFIX = "rs2sam2/"
HISTORY_SIZE = 20

# Names of the weight files the model settings dialog manages (key -> label).
WEIGHT_KEYS = {
    "sam2": "SAM2 checkpoint (.pt)",
    "clip": "CLIP / SigLIP weights (open_clip .safetensors/.bin)",
    "beit3": "BEiT-3 weights (.pth)",
    "beit3_spm": "BEiT-3 sentencepiece model (beit3.spm)",
    "rs2sam2": "RS2-SAM2 checkpoint (file or save_pretrained folder)",
}


def _settings() -> QgsSettings:
    return QgsSettings()


def get(key: str, default=None, type_=None):
    s = _settings()
    if type_ is None:
        return s.value(PREFIX + key, default)
    value = s.value(PREFIX + key, None)
    if value is None or value == "":
        return default
    try:
        if type_ is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return type_(value)
    except (TypeError, ValueError):
        return default


def set(key: str, value) -> None:  # noqa: A001 - module namespace, read as settings.set
    _settings().setValue(PREFIX + key, value)


def remove(key: str) -> None:
    _settings().remove(PREFIX + key)


def history() -> list[str]:
    value = _settings().value(PREFIX + "query_history", [])
    if isinstance(value, str):
        value = [value] if value else []
    return [str(v) for v in (value or [])]


def add_to_history(queries: list[str]) -> list[str]:
    """Most recent first, unique, at most HISTORY_SIZE entries."""
    items = history()
    for query in queries:
        query = query.strip()
        if not query:
            continue
        if query in items:
            items.remove(query)
        items.insert(0, query)
    items = items[:HISTORY_SIZE]
    _settings().setValue(PREFIX + "query_history", items)
    return items


def weight_path(key: str) -> str:
    return str(get(f"weights/{key}", "") or "")


def set_weight_path(key: str, path: str) -> None:
    set(f"weights/{key}", path)


def _light_options_module():
    """pipeline/options.py without running pipeline/__init__.py (which imports rasterio/pyogrio: those must not be
    imported inside the QGIS executables, see worker.py). options.py needs only the standard library."""
    import importlib
    import sys
    import types
    from pathlib import Path

    name = __package__ + "._pipeline_light"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(Path(__file__).resolve().parent / "pipeline")]
        sys.modules[name] = package
    return importlib.import_module(name + ".options")


def weight_paths() -> dict:
    """{weight key: path} of the weights chosen in the model settings dialog (only those set)."""
    return {key: path for key in WEIGHT_KEYS if (path := weight_path(key))}


def engine_defaults() -> dict:
    """Field -> default of the engine's SegmentOptions (read without importing the engine's heavy modules)."""
    SegmentOptions = _light_options_module().SegmentOptions  # noqa: N806

    defaults = {}
    for field in dataclasses.fields(SegmentOptions):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            defaults[field.name] = field.default_factory()  # type: ignore[misc]
    return defaults


#: how each engine scope is shown to the analyst (the values themselves are the engine's: pipeline/options.SCOPES)
SCOPE_LABELS = {"extent": "The whole area: one answer for the area (default)",
                "tile": "Each tile on its own (every tile answers)"}


def engine_scopes() -> list[tuple[str, str]]:
    """[(scope, label)] in the engine's order; its first is the engine's default."""
    return [(s, SCOPE_LABELS.get(s, s)) for s in _light_options_module().SCOPES]
