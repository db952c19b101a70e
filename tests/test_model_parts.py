"""Shapes through every part for both union-encoder backends, gradients, freezing, the dense prompt path, losses."""
import pytest
import torch

from model_core import PRESETS, build_model
from model_core.losses import boundary_loss, dice_loss_sum, edge_map, weighted_ce

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TEXTS = ["the red building on the left", "a small pond"]


@pytest.fixture(scope="module", params=["tiny", "nano"])
def model(request):
    torch.manual_seed(0)
    return build_model(request.param)


def _inputs(m, n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    S = m.input_size
    return torch.rand(n, 3, S, S, generator=g), TEXTS[:n]


def test_parts_shapes(model):
    m = model
    cfg = m.cfg
    x, texts = _inputs(m)
    ids, pad = m.tokenize(texts)
    assert ids.shape == pad.shape and ids.dtype == torch.long
    u = m.union_encoder(m.union_encoder.preprocess(x), ids, pad)
    W = cfg.union.width
    g = cfg.union.image_size // cfg.union.patch_size
    assert u.grid == (g, g)
    assert u.cls.shape == (2, 1, W) and u.visual.shape == (2, g * g, W) and u.text.shape == (2, ids.shape[1], W)
    prob, logit = m.mask_prompt(u.cls, u.visual, u.grid)
    assert prob.shape == (2, 1, g, g) and float(prob.min()) >= 0 and float(prob.max()) <= 1
    S, D = cfg.sam.image_size, cfg.sam.dim
    mask_in = m.mask_prompt.to_mask_input(prob, m.prompt_encoder.mask_input_size)
    assert mask_in.shape[-2:] == (S // 4, S // 4)
    t = m.text_proj(u.text)
    feats = m.image_encoder(x, t, pad)["backbone_fpn"]
    assert [f.shape[-1] for f in feats] == [S // 4, S // 8, S // 16] and all(f.shape[1] == D for f in feats)
    out = m(x, texts)
    assert out["logits"].shape == (2, 1, S, S)
    assert out["low_res_logits"].shape == (2, 1, S // 4, S // 4)
    assert out["boundary_weight"].shape == (2,)
    assert torch.isfinite(out["logits"]).all()


def test_text_changes_output(model):
    m = model.eval()
    x, _ = _inputs(m, 1)
    with torch.no_grad():
        a = m(x, ["the red building on the left"])["logits"]
        b = m(x, ["a long road"])["logits"]
    assert not torch.allclose(a, b)


def test_gradients_reach_exactly_trainable(model):
    m = model.train()
    m.zero_grad(set_to_none=True)
    x, texts = _inputs(m)
    target = torch.zeros(2, m.input_size, m.input_size)
    target[:, 40:120, 60:200] = 1
    total, parts = m.loss(m(x, texts), target)
    total.backward()
    trainable = {n for n, _ in m.trainable_parameters()}
    got = {n for n, p in m.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
    assert got == trainable, (sorted(trainable - got)[:10], sorted(got - trainable)[:10])
    m.zero_grad(set_to_none=True)


def test_authors_freezing_tiny():
    m = build_model("tiny")
    names = dict(m.named_parameters())
    assert not names["image_encoder.trunk.blocks.0.attn.qkv.weight"].requires_grad
    assert not names["image_encoder.neck.convs.0.conv.weight"].requires_grad
    for n in ("image_encoder.trunk.blocks.0.cross_adapter.fc1.weight", "image_encoder.trunk.blocks.0.mlp_adapter.fc1.weight",
              "mask_decoder.text_attn.in_proj_weight", "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
              "prompt_encoder.mask_downscaling.0.weight", "union_encoder.backend.beit3.text_embed.weight",
              "mask_prompt.proj.weight", "sparse_prompt.0.weight", "text_proj.weight", "boundary_head.weight",
              "no_mem_embed"):
        assert names[n].requires_grad, n
    groups = m.param_groups(5e-5)
    fast = {id(p) for p in groups[0]["params"]}
    assert id(names["image_encoder.trunk.blocks.0.cross_adapter.fc1.weight"]) in fast
    assert id(names["mask_prompt.attn.in_proj_weight"]) in fast
    assert id(names["mask_decoder.text_attn.in_proj_weight"]) in fast
    assert id(names["sparse_prompt.0.weight"]) not in fast
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[1]["lr"] == pytest.approx(5e-5)


def test_pseudo_mask_drives_decoder(model, monkeypatch):
    m = model.eval()
    x, texts = _inputs(m, 1)
    outs = []
    for value in (0.0, 1.0):
        def fake(cls, visual, grid, v=value):
            p = torch.full((cls.shape[0], 1, *grid), v)
            return p, torch.logit(p.clamp(1e-4, 1 - 1e-4))
        monkeypatch.setattr(m.mask_prompt, "forward", fake)
        with torch.no_grad():
            outs.append(m(x, texts[:1])["low_res_logits"])
        monkeypatch.undo()
    assert (outs[0] - outs[1]).abs().max() > 1e-3


def test_sizes_come_from_config():
    m = build_model("nano", sam={"image_size": 128}, union={"image_size": 64, "clip_overrides": {
        "embed_dim": 128, "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 128, "layers": 1, "head_width": 32},
        "text_cfg": {"context_length": 16, "width": 128, "heads": 4, "layers": 1}}})
    assert m.input_size == 128 and m.union_encoder.grid == (4, 4)
    with torch.no_grad():
        out = m(torch.rand(1, 3, 128, 128), ["water"])
    assert out["logits"].shape == (1, 1, 128, 128) and out["pseudo_mask"].shape == (1, 1, 4, 4)


def test_losses():
    x = torch.randn(2, 1, 16, 16, requires_grad=True)
    t = (torch.rand(2, 16, 16) > 0.5).long()
    ce = weighted_ce(x, t)
    logp = torch.log_softmax(torch.stack([1 - x[:, 0], x[:, 0]], 1), 1)
    w = torch.tensor([0.9, 1.1])[t]
    ref = -(w * logp.gather(1, t[:, None])[:, 0]).sum() / w.sum()
    assert torch.allclose(ce, ref, atol=1e-6)
    assert dice_loss_sum(torch.full((1, 1, 4, 4), 50.0), torch.ones(1, 4, 4, dtype=torch.long)) < 1e-4
    e = edge_map(torch.tensor([[[0.0, 1.0], [1.0, 1.0]]]))
    assert e.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    wts = torch.ones(2, requires_grad=True)
    hard = boundary_loss(x, t, wts, on="hard")
    gx, gw = torch.autograd.grad(hard, [x, wts], allow_unused=True)
    assert gx is None or float(gx.abs().sum()) == 0.0  # authors' version never reaches the mask
    soft = boundary_loss(x, t, wts, on="soft")
    (gx,) = torch.autograd.grad(soft, [x])
    assert float(gx.abs().sum()) > 0


def test_hard_boundary_option_builds():
    m = build_model("nano", loss={"boundary_on": "hard"})
    assert m.cfg.loss.boundary_on == "hard"
    assert PRESETS["nano"].loss.boundary_on == "soft"


def test_pseudo_mask_supervision_is_off_by_default_and_reaches_the_union_encoder():
    from model_core.losses import pseudo_mask_loss

    # coverage target: a 4x4 target square inside one 8x8 patch of a 2x2 grid covers a quarter of it
    t = torch.zeros(1, 16, 16)
    t[0, 2:6, 2:6] = 1
    exact = torch.logit(torch.tensor([[[[0.25, 1e-6], [1e-6, 1e-6]]]]))
    wrong = torch.logit(torch.tensor([[[[1e-6, 0.25], [1e-6, 1e-6]]]]))
    assert pseudo_mask_loss(exact, t) < pseudo_mask_loss(wrong, t)
    m = build_model("nano", sam={"image_size": 64})
    assert m.cfg.loss.pseudo_weight == 0.0  # the authors train the pseudo-mask only through SAM2's decoder
    torch.manual_seed(0)
    x, target = torch.rand(2, 3, 64, 64), (torch.rand(2, 64, 64) > 0.8).float()
    _, parts = m.loss(m(x, TEXTS), target)
    assert "pseudo" not in parts
    sup = build_model("nano", sam={"image_size": 64}, loss={"pseudo_weight": 0.5})
    sup.load_state_dict(m.state_dict())
    out = sup(x, TEXTS)
    total, parts = sup.loss(out, target)
    assert parts["pseudo"] > 0 and abs(parts["total"] - (m.loss(out, target)[0].item() + 0.5 * parts["pseudo"])) < 1e-4
    joint = dict(sup.union_encoder.named_parameters())["backend.layers.0.attn.in_proj_weight"]
    (g,) = torch.autograd.grad(total, [joint])
    assert float(g.abs().sum()) > 0


def test_xlmr_tokenizer_quirks():
    from model_core.union_encoder import ASSETS, XLMRTokenizer

    tok = XLMRTokenizer(ASSETS / "tiny_spm.model")
    pieces = tok.sp.encode("the red roof", out_type=int)
    ids, pad = tok(["the red roof", "ж"])
    assert ids[0].tolist() == [0] + [p + 1 for p in pieces] + [2]  # <s>, pieces + fairseq offset 1, </s>
    assert not pad[0].any()
    # a genuine unknown piece becomes 3 (= pad id, as the authors' pad-token override): it is masked like padding
    assert 3 in ids[1].tolist() and pad[1][ids[1] == 3].all()
    assert ids[1, 0] == 0 and 2 in ids[1].tolist()


def test_hard_boundary_reproduces_authors_broadcast():
    torch.manual_seed(2)
    x = torch.randn(3, 1, 8, 8)
    t = (torch.rand(3, 8, 8) > 0.5).long()
    w = torch.randn(3)
    pred = (torch.sigmoid(x[:, 0]) > 0.5).float()
    theirs = torch.nn.functional.mse_loss(w.view(3, 1, 1, 1).expand(3, 1, 8, 8) * edge_map(pred),
                                          w.view(3, 1, 1, 1).expand(3, 1, 8, 8) * edge_map(t.float()))
    assert torch.allclose(boundary_loss(x, t, w, on="hard"), theirs, rtol=1e-5)
