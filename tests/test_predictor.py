import numpy as np
import pytest
import torch

from model_core.predictor import Predictor
from tests.colour_model import ColourModel


def _tiles(h=64, w=64):
    a = np.zeros((2, h, w, 3), np.uint8)
    a[0, 10:30, 5:25] = (255, 0, 0)      # red square in tile 0
    a[1, 40:60, 30:50] = (0, 0, 255)     # blue square in tile 1
    return a


def test_batch_of_two_tiles_by_two_texts_shape_range_and_values():
    p = Predictor(ColourModel(64), device="cpu")
    out = p.predict(_tiles(), ["the red roofs", "blue pools"], batch_size=3)
    assert out.shape == (2, 2, 64, 64) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    red, blue = out[:, 0] > 0.5, out[:, 1] > 0.5
    assert red[0, 10:30, 5:25].all() and red[0].sum() == 400 and red[1].sum() == 0
    assert blue[1, 40:60, 30:50].all() and blue[1].sum() == 400 and blue[0].sum() == 0
    again = p.predict(list(_tiles()), ["the red roofs", "blue pools"], batch_size=1)
    np.testing.assert_array_equal(out, again)  # deterministic, batch size does not matter
    assert str(p.device) == "cpu" and p.model_name == "colour-test" and p.input_size == 64


def test_resizes_tiles_to_input_size_and_logits_back():
    model = ColourModel(32, out_stride=2)  # logits come out at 16x16
    p = Predictor(model, device="cpu")
    tiles = np.zeros((1, 96, 80, 3), np.uint8)
    tiles[0, :48] = (255, 0, 0)
    out = p.predict(tiles, "red")
    assert out.shape == (1, 1, 96, 80)
    assert (out[0, 0, :40] > 0.5).all() and (out[0, 0, 56:] < 0.5).all()


def test_logits_to_prob_is_used_when_present():
    model = ColourModel(16)
    model.logits_to_prob = lambda x: (x > 0.5).float()
    out = Predictor(model, device="cpu").predict(np.zeros((1, 16, 16, 3), np.uint8), "black")
    assert set(np.unique(out)) == {1.0}


def test_device_auto_reports_what_ran_and_bad_inputs():
    p = Predictor(ColourModel(16))
    assert p.device.type == ("cuda" if torch.cuda.is_available() else "cpu") and p.device_reason
    with pytest.raises(ValueError):
        p.predict(np.zeros((1, 16, 16, 4), np.uint8), "red")
    with pytest.raises(ValueError):
        p.predict(np.zeros((1, 16, 16, 3), np.float32), "red")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            Predictor(ColourModel(16), device="cuda")


def test_cpu_bf16_autocast_runs():
    p = Predictor(ColourModel(16), device="cpu", precision="bf16")
    out = p.predict(np.full((1, 16, 16, 3), 255, np.uint8), ["white", "red"])
    assert out.shape == (1, 2, 16, 16) and (out[0, 0] > 0.5).all() and (out[0, 1] < 0.5).all()
