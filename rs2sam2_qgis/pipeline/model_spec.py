"""The one model resolver of every front end (CLI, batch, the plugin's worker): a model spec, one string, -> a model.

A spec is one of
  - "demo"                    the bundled demo model (small, CPU-friendly)
  - a preset name             model_core.build_model(preset), then the part weights given in `weights` (SAM2 .pt;
                              CLIP/SigLIP or BEiT-3 + beit3.spm, by the preset's union backend) via
                              model_core.load_model(path, base=model); parts without weights stay random
  - a checkpoint file or a release folder   model_core.load_model(path): any checkpoint kind model_core detects
  - "py:module:callable"      a Python callable returning a model that follows the model protocol (your own models,
                              tests). It runs code, so it is accepted only with allow_code=True: where a person typed
                              it (the command line, the plugin's Model settings), never from a file or a project
                              that someone else could have written.
Importing this module imports neither torch nor model_core: the plugin checks specs inside QGIS's own process.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # torch is imported only when a model is resolved
    from torch import nn

DEMO = "demo"
CODE_PREFIX = "py:"
#: part weight key -> the model_core checkpoint kind that fills it
PART_KINDS = {"sam2": "sam2", "clip": "open_clip", "beit3": "beit3"}


class ModelSpecError(InputError):
    """The model spec cannot be resolved; the message says what to do."""


def is_code_spec(spec: str) -> bool:
    """True for a "py:module:callable" spec (it imports and runs code)."""
    return (spec or "").strip().startswith(CODE_PREFIX)


def refuse_code(spec: str) -> None:
    """Raises ModelSpecError for a py: spec (nothing is imported); used where a spec may come from someone else."""
    if is_code_spec(spec):
        raise ModelSpecError(f"model '{spec.strip()}' names Python code to run, which is accepted only where a person "
                             f"types it (the rs2sam2 command line, or the plugin's Model settings > Your own model), "
                             f"not from a model parameter, a Processing model or a project file; choose 'demo', a "
                             f"preset or a checkpoint file instead")


def describe(spec: str) -> str:
    """A short human name for a spec (for logs and messages)."""
    spec = (spec or "").strip()
    if spec == DEMO:
        return "demo model"
    if is_code_spec(spec):
        return f"model from {spec[len(CODE_PREFIX):]}"
    if os.path.sep in spec or spec.endswith((".pt", ".pth", ".safetensors", ".bin", ".ckpt")):
        return f"checkpoint {os.path.basename(spec.rstrip(os.path.sep))}"
    return f"preset {spec}"


def preset_names() -> list[str]:
    """Names of model_core's presets (imports model_core, hence torch)."""
    from model_core import PRESETS

    return sorted(PRESETS)


def _from_code(spec: str):
    target = spec[len(CODE_PREFIX):]
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelSpecError(f"'{spec}': write py:module:callable")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelSpecError(f"cannot load model factory '{target}': {exc}") from exc
    return factory()


def _with_part_weights(model, preset: str, weights: dict):
    from model_core import load_model

    from .model_files import first_line

    backend = getattr(getattr(getattr(model, "cfg", None), "union", None), "backend", None)
    for key, kind in PART_KINDS.items():
        path = weights.get(key)
        if not path or (key in ("clip", "beit3") and backend not in (None, key)):
            continue
        extra = {"spm": weights["beit3_spm"]} if key == "beit3" and weights.get("beit3_spm") else {}
        try:
            model = load_model(path, base=model, kind=kind, **extra)
        except Exception as exc:  # noqa: BLE001 - strict loaders explain what does not fit
            raise ModelSpecError(f"the {key} weights {path} do not fit preset '{preset}' ({first_line(exc)}); "
                                 f"choose the {key} weights this preset was made for in Model settings") from None
    return model


def resolve_model(spec: str, *, weights: dict | None = None, allow_code: bool = False) -> nn.Module:
    """The model (an nn.Module following the model protocol) for `spec`; see the module docstring.

    `weights`: part weight paths for a preset ({"sam2": path, "clip": ..., "beit3": ..., "beit3_spm": ...}).
    `allow_code`: accept a py: spec (only where a person typed it). Raises ModelSpecError (an InputError) with one
    line saying what to do; a bad checkpoint file raises InputError naming the file.
    """
    spec = (spec or "").strip()
    if not spec:
        raise ModelSpecError("no model chosen: give 'demo', a preset, a checkpoint file or a release folder")
    if is_code_spec(spec):
        if not allow_code:
            refuse_code(spec)
        return _from_code(spec)
    from model_core import PRESETS, build_model

    from .model_files import load_model_file

    if spec == DEMO:
        return load_model_file(DEMO)
    if spec in PRESETS:
        return _with_part_weights(build_model(spec), spec, dict(weights or {}))
    if os.path.exists(spec) or spec.startswith("local-dir:") or describe(spec).startswith("checkpoint"):
        return load_model_file(spec)  # a missing file: "model checkpoint not found: <path>"
    known = ", ".join([DEMO, *sorted(PRESETS)])
    raise ModelSpecError(f"model '{spec}' is neither a preset ({known}) nor an existing checkpoint file or release "
                         f"folder; or write py:module:callable for your own model code")
