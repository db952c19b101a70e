"""Checkpoint loading/saving (placeholder; full loaders follow)."""
from __future__ import annotations

from pathlib import Path

import torch

FORMAT = "rs2sam2-model-core/1"
ASSETS = Path(__file__).resolve().parent / "assets"


def save_model(model, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "config": model.cfg.to_dict(), "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)


def load_model(path):
    from .config import ModelConfig
    from .model import RS2SAM2

    if str(path) == "demo":
        path = ASSETS / "demo.pt"
        if not path.is_file():
            raise FileNotFoundError(f"the bundled demo checkpoint is missing: looked for {path}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = RS2SAM2(ModelConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["state_dict"], strict=True)
    return model
