"""training.interpolate (WiSE-FT): the checkpoint on the line between a model and its fine-tune."""
from __future__ import annotations

import torch

import model_core
from training.interpolate import interpolate


def test_interpolation_ends_are_the_two_models_and_the_middle_is_their_mean(tmp_path):
    torch.manual_seed(0)
    start = model_core.build_model("nano", sam={"image_size": 64})
    tuned = model_core.build_model("nano", sam={"image_size": 64})
    model_core.save_model(start, str(tmp_path / "a.pt"))
    model_core.save_model(tuned, str(tmp_path / "b.pt"))
    sa, sb = start.state_dict(), tuned.state_dict()
    for alpha, expect in ((0.0, lambda k: sa[k]), (1.0, lambda k: sb[k]), (0.5, lambda k: (sa[k] + sb[k]) / 2)):
        path = interpolate(tmp_path / "a.pt", tmp_path / "b.pt", alpha, tmp_path / f"m{alpha}.pt")
        got = model_core.load_model(str(path)).state_dict()
        k = next(k for k, v in sa.items() if v.is_floating_point() and not torch.equal(v, sb[k]))
        assert torch.allclose(got[k], expect(k), atol=1e-6)
        assert torch.load(path, weights_only=True)["train_meta"]["interpolation"]["alpha"] == alpha
