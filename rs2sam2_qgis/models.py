"""Model choice -> model_core.Predictor, cached between runs (torch is imported here, on the first run only).

A model spec is one string, the same in the dock, the Processing algorithm and qgis_process:
  - "demo"                    model_core.load_model("demo") (small, CPU-friendly)
  - a preset name             model_core.build_model(preset), then the part weights chosen in the model settings
                              dialog (SAM2 .pt; CLIP/SigLIP or BEiT-3 + beit3.spm, by the preset's union backend)
                              via model_core.load_model(path, base=model); parts without weights stay random
  - a path                    model_core.load_model(path): any checkpoint kind model_core detects
  - "py:module:callable"      a Python callable returning a model that follows the model protocol
                              (for your own models and for tests; the module must be importable)
"""
from __future__ import annotations

import importlib
import os
import threading

DEMO = "demo"
PY_PREFIX = "py:"

_cache: dict = {}
_lock = threading.Lock()


class ModelSpecError(ValueError):
    """The model choice cannot be resolved (message says what to do)."""


def describe(spec: str) -> str:
    spec = (spec or "").strip()
    if spec == DEMO:
        return "demo model"
    if spec.startswith(PY_PREFIX):
        return f"model from {spec[len(PY_PREFIX):]}"
    if os.path.sep in spec or spec.endswith((".pt", ".pth", ".safetensors", ".bin", ".ckpt")):
        return f"checkpoint {os.path.basename(spec.rstrip(os.path.sep))}"
    return f"preset {spec}"


def preset_names() -> list[str]:
    """Names of model_core's presets (imports model_core, hence torch)."""
    import model_core

    return sorted(getattr(model_core, "PRESETS", {}) or {})


PART_KINDS = {"sam2": "sam2", "clip": "open_clip", "beit3": "beit3"}


def _apply_part_weights(model, spec: str, weights: dict):
    import model_core

    backend = getattr(getattr(getattr(model, "cfg", None), "union", None), "backend", None)
    for key, kind in PART_KINDS.items():
        path = (weights or {}).get(key)
        if not path:
            continue
        if key == "clip" and backend not in (None, "clip"):
            continue
        if key == "beit3" and backend not in (None, "beit3"):
            continue
        extra = {"spm": weights["beit3_spm"]} if key == "beit3" and weights.get("beit3_spm") else {}
        try:
            model = model_core.load_model(path, base=model, kind=kind, **extra)
        except Exception as exc:  # noqa: BLE001 - strict loaders explain what does not fit
            from .pipeline.model_files import first_line

            raise ModelSpecError(f"the {key} weights {path} do not fit preset '{spec}' ({first_line(exc)}); choose "
                                 f"the {key} weights this preset was made for in Model settings") from None
    return model


def build(spec: str, weights: dict | None = None):
    """The nn.Module for `spec` (no caching); `weights`: part weight paths for presets (settings.WEIGHT_KEYS)."""
    spec = (spec or "").strip()
    if not spec:
        raise ModelSpecError("no model chosen: pick 'demo', a preset or a checkpoint file")
    if spec.startswith(PY_PREFIX):
        target = spec[len(PY_PREFIX):]
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise ModelSpecError(f"'{spec}': write py:module:callable")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelSpecError(f"cannot load model factory '{target}': {exc}") from exc
        return factory()
    import model_core

    from .pipeline.model_files import load_model_file

    if spec == DEMO:
        return load_model_file(DEMO)
    presets = getattr(model_core, "PRESETS", {}) or {}
    if spec in presets:
        return _apply_part_weights(model_core.build_model(spec), spec, weights or {})
    if os.path.exists(spec):
        return load_model_file(spec)
    known = ", ".join(["demo", *sorted(presets)])
    raise ModelSpecError(f"model '{spec}' is neither a preset ({known}) nor an existing checkpoint file")


def get_predictor(spec: str, device: str = "auto", weights: dict | None = None, mode: str = "analyst"):
    """A cached model_core.Predictor for (spec, device, weights, mode); thread-safe. `mode`: "analyst"
    (probabilities at the tile's size) or "authors" (the RS2-SAM2 authors' contract; model_core decides)."""
    spec = (spec or "").strip()
    # a checkpoint replaced at the same path is a new model
    stamp = os.path.getmtime(spec) if spec and os.path.exists(spec) else None
    key = (spec, (device or "auto").strip().lower(), stamp, tuple(sorted((weights or {}).items())), mode)
    with _lock:
        predictor = _cache.get(key)
        if predictor is None:
            from model_core import Predictor

            model = build(spec, weights)
            model.eval()
            predictor = Predictor(model, device=key[1], mode=mode)
            _cache.clear()  # keep one model in memory at a time
            _cache[key] = predictor
        return predictor


def clear_cache() -> None:
    with _lock:
        _cache.clear()
