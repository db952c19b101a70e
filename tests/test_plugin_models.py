"""Model choice -> model (rs2sam2_qgis.models): specs, presets filled with the part weights chosen in the model
settings dialog (through model_core.load_model(path, base=...)), clear errors."""
from __future__ import annotations

import pytest
import torch

from rs2sam2_qgis import models


def test_specs_resolve_or_explain():
    model = models.build("py:colour_model:ColourModel")
    assert model.name == "colour-test"
    with pytest.raises(models.ModelSpecError, match="neither a preset"):
        models.build("no-such-model")
    with pytest.raises(models.ModelSpecError, match="py:module:callable"):
        models.build("py:colour_model")
    assert models.describe("demo") == "demo model" and models.describe("/x/model.pt") == "checkpoint model.pt"


def test_preset_takes_the_sam2_weights_from_settings(tmp_path):
    from model_core.sam2_weights import sam2_key_map

    torch.manual_seed(0)
    donor = models.build("nano")
    key_map = sam2_key_map(donor)  # {stock SAM2 key: our key}
    ours = donor.state_dict()
    path = tmp_path / "sam2_nano.pt"
    torch.save({"model": {stock: ours[our].clone() for stock, our in key_map.items()}}, path)

    torch.manual_seed(1)
    model = models.build("nano", {"sam2": str(path), "beit3": "/not/used/by/a/clip/preset.pth"})
    filled = model.state_dict()
    some = next(iter(key_map.values()))
    assert torch.equal(filled[some], ours[some])

    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {"junk": torch.zeros(1)}}, bogus)
    with pytest.raises(models.ModelSpecError, match="do not fit preset 'nano'"):
        models.build("nano", {"sam2": str(bogus)})
