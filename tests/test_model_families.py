"""The model-family registry: a third family is new code plus one registration, with no edit to model_core.

The toy family below is defined here only (a config dataclass and a tiny nn.Module), registered, then built,
saved, loaded and refused exactly as the shipped families are.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from model_core import PRESETS, build_model, load_model, save_model
from model_core.checkpoints import CheckpointError, detect_kind, load_weights
from model_core.config import ConfigBase
from model_core.families import ModelFamily, family_of, get_family, register_family, unregister_family
from model_core.sam2_weights import export_sam2_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class ToyConfig(ConfigBase):
    family: str = "toy"
    name: str = "toy"
    width: int = 4
    input_size: int = 16


class ToyModel(nn.Module):
    """Mask logits = a 1x1 conv of the pixels, plus a per-text bias (the text's length, scaled)."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.name = cfg.name
        self.input_size = cfg.input_size
        self.mix = nn.Sequential(nn.Conv2d(3, cfg.width, 1), nn.ReLU(), nn.Conv2d(cfg.width, 1, 1))
        self.palette = None  # carried by our checkpoint format through the extras hooks

    def predict_masks(self, pixels: torch.Tensor, texts) -> torch.Tensor:
        bias = torch.tensor([len(t) / 10 for t in texts], dtype=pixels.dtype).view(-1, 1, 1, 1)
        return self.mix(pixels) + bias

    def checkpoint_extras(self) -> dict:
        return {} if self.palette is None else {"toy_palette": self.palette}

    def restore_extras(self, obj: dict) -> None:
        self.palette = obj.get("toy_palette")


TOY = ModelFamily(name="toy", config_class=ToyConfig, model_class=ToyModel,
                  presets={"toy-small": ToyConfig, "toy-wide": lambda: ToyConfig(name="toy-wide", width=8)})


@pytest.fixture
def toy_family():
    register_family(TOY)
    yield TOY
    unregister_family("toy")


def test_a_registered_family_builds_saves_and_loads(toy_family, tmp_path):
    assert {"toy-small", "toy-wide"} <= set(PRESETS) and PRESETS["toy-wide"].width == 8
    torch.manual_seed(0)
    m = build_model("toy-small", width=6)
    assert isinstance(m, ToyModel) and m.cfg.width == 6 and m.mix[0].out_channels == 6
    assert family_of(m) is family_of(m.cfg) is family_of(m.cfg.to_dict()) is get_family("toy")
    m.palette = torch.tensor([[255, 0, 0], [0, 255, 0]], dtype=torch.uint8)

    path = save_model(m, tmp_path / "toy.pt")
    assert detect_kind(path) == "rs2sam2"  # our own format, whatever the family
    back = load_model(path)
    assert isinstance(back, ToyModel) and back.cfg == m.cfg
    assert torch.equal(back.palette, m.palette)
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    px = torch.rand(2, 3, 16, 16)
    assert torch.equal(back.predict_masks(px, ["a", "the red roof"]), m.predict_masks(px, ["a", "the red roof"]))

    fresh = build_model(ToyConfig(width=6))
    report = load_weights(fresh, path)
    assert report.loaded == len(m.state_dict()) and torch.equal(fresh.mix[2].weight, m.mix[2].weight)


def test_a_family_reads_only_the_kinds_it_registered(toy_family, tmp_path):
    f = tmp_path / "sam2.pt"
    torch.save({"model": export_sam2_state_dict(build_model("nano"))}, f)
    assert detect_kind(f) == "sam2"
    with pytest.raises(CheckpointError, match="a sam2 checkpoint cannot fill a toy model"):
        load_weights(build_model("toy-small"), f)
    with pytest.raises(CheckpointError, match="cannot fill a toy model"):
        load_model(f, base="toy-small")


def test_a_checkpoint_of_an_unregistered_family_says_so(tmp_path):
    register_family(TOY)
    try:
        path = save_model(build_model("toy-small"), tmp_path / "toy.pt")
    finally:
        unregister_family("toy")
    assert "toy-small" not in PRESETS
    with pytest.raises(KeyError, match="unknown model family 'toy'"):
        load_model(path)


def test_registration_refuses_clashes(toy_family):
    with pytest.raises(ValueError, match="already registered"):
        register_family(TOY)
    with pytest.raises(ValueError, match=r"presets \['nano'\]"):
        register_family(ModelFamily(name="toy2", config_class=ToyConfig, model_class=ToyModel,
                                    presets={"nano": ToyConfig}))

    @dataclass
    class Untagged(ConfigBase):
        width: int = 4

    with pytest.raises(ValueError, match="needs a field `family: str = 'untagged'`"):
        register_family(ModelFamily(name="untagged", config_class=Untagged, model_class=ToyModel))
    with pytest.raises(ValueError, match="already the default family"):
        register_family(ModelFamily(name="toy3", config_class=Untagged, model_class=ToyModel, default=True))


def test_the_shipped_families():
    assert family_of(build_model("nano")).name == "rs2sam2"
    assert family_of(PRESETS["rsrefseg-tiny"]).name == "rsrefseg"
    # configs saved before the family key existed (the demo checkpoint's) are the default family's
    assert family_of({"name": "rs2sam2-nano"}).name == "rs2sam2"
    assert get_family("rs2sam2").release.kind == "official" and get_family("rsrefseg").release is None
    assert set(get_family("rsrefseg").weight_loaders) == {"sam2", "open_clip"}
    with pytest.raises(KeyError, match="of no registered model family"):
        family_of(nn.Linear(2, 2))
