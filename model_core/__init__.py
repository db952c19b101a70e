"""model_core: RS2-SAM2 in pure PyTorch (no QGIS, no GIS).

Public API: PRESETS, build_model(preset, **overrides), load_model(path), save_model(model, path), Predictor.
"""
from __future__ import annotations

import importlib.util as _ilu

from .config import PRESETS, ModelConfig
from .model import RS2SAM2
from .checkpoints import load_model, save_model


def build_model(preset="nano", **overrides) -> RS2SAM2:
    """Build a model with random weights from a preset name (or a config), with config overrides:
    build_model("nano", sam={"image_size": 512}) or build_model("nano", **{"hiera.embed_dim": 48}).
    The config's family picks the class: RS2SAM2, or RSRefSeg for the rsrefseg presets."""
    cfg = preset if hasattr(preset, "to_dict") else PRESETS[preset]
    if overrides:
        cfg = cfg.replace(**overrides)
    if getattr(cfg, "family", "rs2sam2") == "rsrefseg":
        from .rsrefseg import RSRefSeg

        return RSRefSeg(cfg)
    return RS2SAM2(cfg)


if _ilu.find_spec(__name__ + ".predictor") is not None:
    from .predictor import Predictor  # noqa: F401  (written by the engine side)

__all__ = ["PRESETS", "ModelConfig", "RS2SAM2", "build_model", "load_model", "save_model", "Predictor"]
