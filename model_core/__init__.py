"""model_core: referring segmentation models in pure PyTorch (no QGIS, no GIS): the RS2-SAM2 and RSRefSeg families.

Public API: PRESETS, build_model(preset, **overrides), load_model(path), save_model(model, path), Predictor.
Importing the package registers both families (model_core/families.py).
"""
from __future__ import annotations

import torch.nn as nn

from .checkpoints import load_model, save_model
from .config import ModelConfig
from .families import PRESETS, family_of
from .model import RS2SAM2
from .predictor import Predictor
from .rsrefseg import RSRefSeg


def build_model(preset="nano", **overrides) -> nn.Module:
    """Build a model with random weights from a preset name (or a config), with config overrides:
    build_model("nano", sam={"image_size": 512}) or build_model("nano", **{"hiera.embed_dim": 48}).
    The config's family (model_core/families.py) builds it."""
    cfg = preset if hasattr(preset, "to_dict") else PRESETS[preset]
    if overrides:
        cfg = cfg.replace(**overrides)
    return family_of(cfg).model_class(cfg)


__all__ = ["PRESETS", "ModelConfig", "RS2SAM2", "RSRefSeg", "build_model", "load_model", "save_model", "Predictor"]
