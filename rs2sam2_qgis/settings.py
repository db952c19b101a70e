"""The plugin's persistent settings (QgsSettings, section "rs2sam2/").

Segmentation defaults are *not* stored here: they come from the engine's SegmentOptions (choices.py shows them);
only what the analyst changed is remembered.
"""
from __future__ import annotations

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


#: the model code ("py:module:callable") a person typed in Model settings > Your own model (model_choice.py)
CUSTOM_MODEL_KEY = "custom_model"


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


def weight_paths() -> dict:
    """{weight key: path} of the weights chosen in the model settings dialog (only those set)."""
    return {key: path for key in WEIGHT_KEYS if (path := weight_path(key))}


def custom_model() -> str:
    """The py: spec typed in Model settings > Your own model ("" when none)."""
    return str(get(CUSTOM_MODEL_KEY, "", str) or "").strip()


def set_custom_model(spec: str) -> None:
    set(CUSTOM_MODEL_KEY, (spec or "").strip())
