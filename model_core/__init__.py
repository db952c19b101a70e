"""model_core: RS2-SAM2 in pure PyTorch (no QGIS, no GIS).

Public API: PRESETS, build_model(preset, **overrides), load_model(path), save_model(model, path), Predictor.
"""
from __future__ import annotations

import importlib.util as _ilu

from .config import PRESETS, ModelConfig
from .model import RS2SAM2
from .checkpoints import load_model, save_model


def build_model(preset="nano", **overrides) -> RS2SAM2:
    """Build an RS2SAM2 with random weights from a preset name (or a ModelConfig), with config overrides:
    build_model("nano", sam={"image_size": 512}) or build_model("nano", **{"hiera.embed_dim": 48})."""
    cfg = preset if isinstance(preset, ModelConfig) else PRESETS[preset]
    if overrides:
        cfg = cfg.replace(**overrides)
    return RS2SAM2(cfg)


if _ilu.find_spec(__name__ + ".predictor") is not None:
    from .predictor import Predictor  # noqa: F401  (written by the engine side)

__all__ = ["PRESETS", "ModelConfig", "RS2SAM2", "build_model", "load_model", "save_model", "Predictor"]
