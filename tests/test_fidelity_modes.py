"""Fidelity plumbing on small models: the memory-mapped release loader (meta build, layouts, strictness, buffers),
the predictor's authors' contract mode, and the boundary-loss default."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from model_core import PRESETS, build_model
from model_core.checkpoints import CheckpointError
from model_core.predictor import Predictor
from model_core.release import load_release, read_release_tensors
from model_core.rs2sam2_weights import export_official_state_dict
from tests.colour_model import ColourModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(11)
    return build_model("tiny").eval()


def _release(tmp_path, model, layout="safetensors", dtype=None):
    sd = {k: v.detach().clone().contiguous() for k, v in export_official_state_dict(model).items()}
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    d = tmp_path / f"release-{layout}"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "evf", "hidden_size": 1024, "out_dim": 256}))
    if layout == "safetensors":
        save_file(sd, str(d / "model.safetensors"))
    elif layout == "sharded":  # as save_pretrained(max_shard_size=...) writes it
        keys = list(sd)
        names = [f"model-0000{i + 1}-of-00003.safetensors" for i in range(3)]
        wm = {k: names[i % 3] for i, k in enumerate(keys)}
        for name in names:
            save_file({k: sd[k] for k in keys if wm[k] == name}, str(d / name))
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": wm}))
    else:
        torch.save(sd, d / "pytorch_model.bin")
    return d


@pytest.mark.parametrize("layout", ["safetensors", "sharded", "bin"])
def test_release_loads_memory_mapped_on_meta_build(tmp_path, tiny, layout):
    d = _release(tmp_path, tiny, layout)
    m = load_release(d, cfg=PRESETS["tiny"])
    ours, ref = m.state_dict(), tiny.state_dict()
    assert set(ours) == set(ref)
    for k in ref:
        assert torch.equal(ours[k], ref[k]), k
    # nothing left on meta; computed (non-persistent) buffers equal a normal build's
    assert not any(t.is_meta for t in list(m.parameters()) + list(m.buffers()))
    rb = dict(tiny.named_buffers())
    for n, b in m.named_buffers():
        assert torch.equal(b, rb[n]), n
    # trainability as built (freezing survives assign=True)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == \
           [n for n, p in tiny.named_parameters() if p.requires_grad]
    # the parameters are the mapped file's tensors, not copies (safetensors: zero copy)
    if layout != "bin":
        sd, _, _ = read_release_tensors(d)
        assert all(not t.is_meta for t in sd.values())
    assert m.load_report.loaded == len(ref) and not m.training
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(m(x, ["a red roof"])["logits"], tiny(x, ["a red roof"])["logits"],
                                   atol=1e-6, rtol=0)
    # the mapping is copy-on-write: changing a loaded weight (training) never writes to the release files
    with torch.no_grad():
        m.text_proj.weight.add_(1.0)
    again = load_release(d, cfg=PRESETS["tiny"])
    assert torch.equal(again.text_proj.weight, tiny.text_proj.weight)


def test_release_bf16_file_is_cast_and_errors_are_listed(tmp_path, tiny):
    d = _release(tmp_path, tiny, "sharded", dtype=torch.bfloat16)
    m = load_release(d, cfg=PRESETS["tiny"])
    assert all(p.dtype == torch.float32 for p in m.parameters())
    # a shard named in the index is missing
    shard = sorted(d.glob("model-00002*"))[0]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="model-00002"):
        load_release(d, cfg=PRESETS["tiny"])
    # strict: unmapped, missing and mis-shaped keys are all listed
    bad = tmp_path / "bad"
    bad.mkdir()
    sd = {k: v.detach().clone().contiguous() for k, v in export_official_state_dict(tiny).items()}
    sd["mask_linear.weight"] = torch.zeros(3, 3)
    del sd["text2one_linear.bias"]
    sd["visual_model.something_new.weight"] = torch.zeros(1)
    save_file(sd, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load_release(bad, cfg=PRESETS["tiny"])
    for k in ("mask_linear.weight", "boundary_head.bias", "visual_model.something_new.weight"):
        assert k in str(e.value)


# ------------------------------------------------------------------------------------------------ predictor modes
def _pil_pixels(img, size):
    from PIL import Image

    a = np.array(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def test_authors_mode_is_their_contract(tiny):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 200, 200, 3), dtype=np.uint8)
    p = Predictor(tiny, device="cpu", mode="authors")
    assert p.precision == "fp32" and p.mode == "authors" and not p.features_reusable
    S, s = tiny.input_size, tiny.union_encoder.cfg.image_size
    full = p.authors_outputs(img, ["a red roof"])
    assert full["final_logits"].shape == (1, 1, S, S) and full["final_mask"].shape == (1, S, S)
    ids, pad = tiny.tokenize(["a red roof"])
    with torch.no_grad():
        ref = tiny(_pil_pixels(img[0], S), input_ids=ids, text_pad=pad, union_pixels=_pil_pixels(img[0], s))
    np.testing.assert_array_equal(full["final_logits"], ref["logits"].numpy())
    np.testing.assert_array_equal(full["final_mask"], (ref["logits"][:, 0] > 0.5).float().numpy())
    # predict: their 0/1 mask; at the model's size for a tile of that size, nearest to the tile otherwise
    tile = rng.integers(0, 256, (1, S, S, 3), dtype=np.uint8)
    m = p.predict(tile, ["a red roof", "the river"])
    assert m.shape == (1, 2, S, S) and set(np.unique(m)) <= {0.0, 1.0}
    with torch.no_grad():
        ids, pad = tiny.tokenize(["the river"])
        r = tiny(_pil_pixels(tile[0], S), input_ids=ids, text_pad=pad, union_pixels=_pil_pixels(tile[0], s))
    np.testing.assert_array_equal(m[0, 1], (r["logits"][0, 0] > 0.5).float().numpy())
    assert p.predict(img, "a red roof").shape == (1, 1, 200, 200)


def test_analyst_mode_stays_default_and_bad_modes():
    p = Predictor(ColourModel(16), device="cpu")
    assert p.mode == "analyst"
    out = p.predict(np.zeros((1, 24, 20, 3), np.uint8), "black")
    assert out.shape == (1, 1, 24, 20) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="mode"):
        Predictor(ColourModel(16), device="cpu", mode="paper")
    with pytest.raises(TypeError, match="analyst"):
        Predictor(ColourModel(16), device="cpu", mode="authors")


# ------------------------------------------------------------------------------------------------ losses
def test_boundary_loss_default_reaches_the_mask_logits():
    """Default: the boundary term is on the probability map, so its gradient reaches the mask logits; the authors'
    "hard" mode thresholds first and only trains the text weight w."""
    from model_core.losses import RS2SAM2Loss

    assert PRESETS["paper"].loss.boundary_on == "soft"
    torch.manual_seed(0)
    target = (torch.rand(2, 32, 32) > 0.5).long()
    for on, reaches in (("soft", True), ("hard", False)):
        cfg = PRESETS["paper"].loss
        cfg.boundary_on = on
        cfg.ce_weight = cfg.dice_weight = 0.0  # the boundary term alone
        logits = torch.randn(2, 1, 32, 32, requires_grad=True)
        w = torch.randn(2, requires_grad=True)
        total, parts = RS2SAM2Loss(cfg)({"logits": logits, "boundary_weight": w}, target)
        total.backward()
        assert parts["boundary"] > 0
        g = 0.0 if logits.grad is None else float(logits.grad.abs().sum())
        assert (g > 0) == reaches, (on, g)
        assert float(w.grad.abs().sum()) > 0


def test_cli_mode_option():
    from rs2sam2_qgis.pipeline.cli import _parser
    from rs2sam2_qgis.pipeline.errors import InputError
    from rs2sam2_qgis.pipeline.predictors import make_predictor

    a = _parser().parse_args(["segment", "r.tif", "roofs", "-o", "o.gpkg", "--mode", "authors"])
    assert a.mode == "authors"
    assert _parser().parse_args(["segment", "r.tif", "roofs", "-o", "o.gpkg"]).mode == "analyst"
    assert make_predictor(ColourModel(16), "cpu", "auto").mode == "analyst"
    with pytest.raises(InputError, match="analyst"):
        make_predictor(ColourModel(16), "cpu", "auto", "authors")
