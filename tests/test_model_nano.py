"""Fast checks of the nano preset: the protocol training and the predictor rely on."""
import pytest
import torch

from model_core import PRESETS, build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return build_model("nano")


def test_presets_listed():
    assert {"paper", "clip-b", "tiny", "nano"} <= set(PRESETS)


def test_forward_shapes_and_loss(nano):
    S = nano.input_size
    assert S == PRESETS["nano"].sam.image_size
    x = torch.rand(2, 3, S, S)
    out = nano(x, ["the red roof", "a long road crossing the field"])
    assert out["logits"].shape == (2, 1, S, S)
    assert out["boundary_weight"].shape == (2,)
    g = nano.union_encoder.grid
    assert out["pseudo_mask"].shape == (2, 1, g[0], g[1])
    target = (torch.rand(2, S, S) > 0.5).float()
    total, parts = nano.loss(out, target)
    assert torch.isfinite(total) and set(parts) >= {"ce", "dice", "boundary"}
    total.backward()


def test_predict_masks_and_prob(nano):
    S = nano.input_size
    with torch.no_grad():
        logits = nano.predict_masks(torch.rand(1, 3, S, S), ["water"])
    assert logits.shape[:2] == (1, 1)
    p = nano.logits_to_prob(logits)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    assert torch.equal(p > 0.5, logits > 0.5)  # the trained rule decides as the authors' argmax


def test_param_groups_cover_trainable(nano):
    groups = nano.param_groups(1e-4)
    assert [g["lr"] for g in groups] == [2e-4, 1e-4]
    ids = {id(p) for g in groups for p in g["params"]}
    assert ids == {id(p) for _, p in nano.trainable_parameters()}
    assert len(groups[0]["params"]) > 0 and len(groups[1]["params"]) > 0


def test_cpu_bf16_autocast(nano):
    S = nano.input_size
    x = torch.rand(1, 3, S, S)
    nano.eval()
    with torch.no_grad():
        a = nano(x, ["a red roof"])["logits"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = nano(x, ["a red roof"])["logits"]
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    assert float((a - b).abs().max()) < 0.1


def test_lr_mult_moves_a_prefix_into_its_own_group(nano):
    """train.lr_mult: the parameters under a name prefix train at a multiple of their group's lr, every trainable
    parameter in exactly one group."""
    from training.train import build_optimizer

    prefix = "union_encoder.backend.clip.token_embedding"
    cfg = {"train": {"lr": 1e-4, "weight_decay": 0.01, "lr_mult": {prefix: 10}}}
    opt = build_optimizer(nano, cfg)
    names = {id(p): n for n, p in nano.named_parameters()}
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for _, p in nano.trainable_parameters())
    for g in opt.param_groups:
        under = {names[id(p)].startswith(prefix) for p in g["params"]}
        assert len(under) == 1
        if under == {True}:
            assert g["lr"] == pytest.approx(1e-3)
    assert any(names[id(p)].startswith(prefix) for g in opt.param_groups for p in g["params"])
    plain = build_optimizer(nano, {"train": {"lr": 1e-4, "weight_decay": 0.01}})
    assert [g["lr"] for g in plain.param_groups] == [2e-4, 1e-4]
