"""RSRefSeg family: parts, LoRA, gradients, split prediction, checkpoints, tokenizer, training (rsrefseg-tiny)."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from model_core import PRESETS, Predictor, build_model, load_model, save_model
from model_core.lora import LoRALinear, LoRAMultiheadAttention, apply_lora, is_lora_name
from model_core.rsrefseg import RSRefSeg, SiglipSpmTokenizer, text_filters
from model_core.rsrefseg_config import RSRefSegConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("rsrefseg-tiny").eval()


def test_presets_and_config_roundtrip():
    assert {"rsrefseg", "rsrefseg-tiny"} <= set(PRESETS)
    full = PRESETS["rsrefseg"]
    assert full.family == "rsrefseg" and full.towers.clip_model == "ViT-SO400M-14-SigLIP-384"
    assert full.towers.image_size // full.towers.patch_size == 27 and full.prompter.sparse_grid == 7
    assert full.lora.r == 16 and full.loss.bce_weight == 5.0 and full.loss.dice_weight == 0.0
    assert full.hiera.stages == (2, 6, 36, 4)  # hiera-L
    cfg = PRESETS["rsrefseg-tiny"].replace(lora={"r": 2}, **{"prompter.sparse_grid": 3})
    assert cfg.lora.r == 2 and cfg.prompter.sparse_grid == 3
    assert RSRefSegConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError):
        cfg.replace(lora={"rank": 3})


def test_shapes_through_every_part(tiny):
    cfg = tiny.cfg
    S, B = tiny.input_size, 2
    x = torch.rand(B, 3, S, S)
    with torch.no_grad():
        f = tiny.encode_images(x)
        g = tiny.grid
        E = tiny.towers.embed_dim
        assert g == (7, 7) and f["visual"].shape == (B, 49, E)
        emb = S // cfg.sam.backbone_stride
        assert f["image_embed"].shape == (B, cfg.sam.dim, emb, emb)
        assert f["high_res_0"].shape == (B, cfg.sam.dim // 8, 4 * emb, 4 * emb)
        assert f["high_res_1"].shape == (B, cfg.sam.dim // 4, 2 * emb, 2 * emb)
        ids, pad = tiny.tokenize(["red roof", "the long white storage tank"])
        words, sent = tiny.towers.encode_text(ids)
        assert words.shape == (B, ids.shape[1], E) and sent.shape == (B, E)
        scale, bias = tiny.towers.scale_bias()
        assert float(bias) == pytest.approx(-10.0)  # the towers' own SigLIP-style bias
        local, glob, G = text_filters(f["visual"], words, pad, sent, scale, bias)
        assert local.shape == glob.shape == (B, 49, E) and G.shape == (B, 49)
        xcat = torch.cat([local, glob, f["visual"]], -1).transpose(1, 2).reshape(B, 3 * E, *g)
        tokens = tiny.prompter(xcat, tiny.prompt_encoder.pe_layer(g))
        assert tokens.shape == (B, cfg.prompter.sparse_grid ** 2, cfg.sam.dim)
        out = tiny.decode_features(f, ["red roof", "the long white storage tank"])
    assert out["logits"].shape == (B, 1, S, S)
    assert out["low_res_logits"].shape == (B, 1, 4 * emb, 4 * emb)
    assert out["sentence_logits"].shape == (B, 1, *g)


def test_text_filters_match_the_definition():
    torch.manual_seed(1)
    V, W, s = torch.randn(1, 4, 8), torch.randn(1, 3, 8), torch.randn(1, 8)
    pad = torch.tensor([[False, False, True]])
    scale, bias = torch.tensor(10.0), torch.tensor(-2.0)
    local, glob, G = text_filters(V, W, pad, s, scale, bias)
    cos = nn.functional.cosine_similarity
    a = torch.stack([torch.sigmoid(scale * cos(V[0], W[0, j][None], dim=-1) + bias) for j in range(2)])  # (2,4)
    exp_local = (V[0] + (a[:, :, None] * V[0][None]).mean(0)) / 2
    assert torch.allclose(local[0], exp_local, atol=1e-6)
    g = scale * cos(V[0], s, dim=-1) + bias
    assert torch.allclose(G[0], g, atol=1e-5)
    assert torch.allclose(glob[0], torch.sigmoid(g)[:, None] * V[0], atol=1e-6)


def test_lora_modules_start_as_identity_and_keep_base_keys():
    torch.manual_seed(0)
    lin = nn.Linear(6, 5)
    ref = nn.Linear(6, 5)
    ref.load_state_dict(lin.state_dict())
    LoRALinear.convert(lin, r=2, alpha=4)
    assert set(lin.state_dict()) == {"weight", "bias", "lora_A", "lora_B"}
    x = torch.randn(3, 6)
    assert torch.equal(lin(x), ref(x))
    with torch.no_grad():
        lin.lora_B.normal_()
    delta = (x @ lin.lora_A.T @ lin.lora_B.T) * 2.0
    assert torch.allclose(lin(x), ref(x) + delta, atol=1e-6)

    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    ref = nn.MultiheadAttention(8, 2, batch_first=True)
    ref.load_state_dict(mha.state_dict())
    root = nn.Sequential(mha)
    assert apply_lora(root, lambda n, m: True, r=2, alpha=2) == ["0"]
    assert isinstance(mha, LoRAMultiheadAttention)
    assert {k for k in mha.state_dict() if not is_lora_name(k)} == set(ref.state_dict())
    q = torch.randn(2, 5, 8)
    mask = torch.tensor([[False] * 4 + [True], [False] * 5])
    assert torch.allclose(mha(q, q, q, key_padding_mask=mask)[0], ref(q, q, q, key_padding_mask=mask)[0], atol=1e-6)
    with torch.no_grad():
        mha.lora_B.normal_()
        ref.in_proj_weight += mha.lora_B @ mha.lora_A
    assert torch.allclose(mha(q, q, q)[0], ref(q, q, q)[0], atol=1e-5)


def test_gradients_reach_exactly_lora_and_prompt_path():
    torch.manual_seed(0)
    m = build_model("rsrefseg-tiny").train()
    names = dict(m.named_parameters())
    lora = {n for n in names if is_lora_name(n)}
    assert any(n.startswith("image_encoder.trunk.") for n in lora)
    assert any(n.startswith("towers.clip.visual.") for n in lora)
    assert any(n.startswith("towers.clip.transformer.") for n in lora)  # text tower
    prompt_path = {n for n in names if n.startswith(("prompter.", "prompt_encoder.mask_downscaling.",
                                                     "mask_decoder."))} - set(m.inert_parameter_names())
    trainable = {n for n, _ in m.trainable_parameters()}
    assert trainable == lora | prompt_path
    S = m.input_size
    out = m(torch.rand(2, 3, S, S), ["a red roof", "water"])
    loss, parts = m.loss(out, (torch.rand(2, S, S) > 0.5).float())
    assert set(parts) == {"bce", "total"} and parts["total"] == pytest.approx(5 * parts["bce"], rel=1e-5)
    loss.backward()
    for n, p in names.items():
        if n in trainable:
            assert p.grad is not None, n  # (lora_A's gradient is exactly zero while B = 0, but it is reached)
        else:
            assert p.grad is None, n
    assert any(float(names[n].grad.abs().sum()) > 0 for n in lora if n.endswith("lora_B"))
    groups = m.param_groups(1e-4)
    assert sum(len(g["params"]) for g in groups) == len(trainable)


def test_decode_of_encode_equals_predict(tiny):
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (3, 200, 200, 3), dtype=np.uint8)
    pred = Predictor(tiny, device="cpu", batch_size=2)
    assert pred.features_reusable
    texts = ["red roof", "the white tanks"]
    p = pred.predict(tiles, texts)
    assert p.shape == (3, 2, 200, 200) and p.dtype == np.float32
    feats = pred.encode(tiles)
    assert len(feats) == 3 and feats.kind == "model"
    assert np.array_equal(pred.decode(feats, texts), p)
    # per-tile features (as the cache holds them), and a bytes round trip, decode to the same
    split = [pred.features_from_bytes(f.to_bytes()) for f in feats.split()]
    assert np.array_equal(pred.decode(split, texts), p)
    # model level
    with torch.no_grad():
        x = torch.rand(2, 3, tiny.input_size, tiny.input_size)
        a = tiny.predict_masks(x, texts)
        b = tiny.decode_features(tiny.encode_images(x), texts)["logits"]
    assert torch.equal(a, b)


def test_rs2sam2_predictor_split_is_exact_too():
    torch.manual_seed(0)
    m = build_model("nano").eval()
    pred = Predictor(m, device="cpu", batch_size=3)
    assert not pred.features_reusable
    tiles = np.random.default_rng(1).integers(0, 256, (2, 100, 100, 3), dtype=np.uint8)
    feats = pred.encode(tiles)
    assert feats.kind == "pixels"
    assert np.array_equal(pred.decode(feats, ["a", "b"]), pred.predict(tiles, ["a", "b"]))


def test_save_load_roundtrip(tiny, tmp_path):
    path = save_model(tiny, tmp_path / "r.pt")
    m2 = load_model(path)
    assert isinstance(m2, RSRefSeg) and m2.cfg == tiny.cfg
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(m2.eval().predict_masks(x, ["roof"]), tiny.predict_masks(x, ["roof"]))
    assert [n for n, _ in m2.trainable_parameters()] == [n for n, _ in tiny.trainable_parameters()]


def test_sam2_and_open_clip_part_checkpoints(tiny, tmp_path):
    from model_core.checkpoints import detect_kind
    from model_core.rsrefseg import towers_key_map
    from model_core.sam2_weights import export_sam2_state_dict

    torch.manual_seed(3)
    src = build_model("rsrefseg-tiny")
    sam = export_sam2_state_dict(src)
    assert sam and not any("lora_" in k for k in sam)
    torch.save({"model": sam}, tmp_path / "sam2_tiny.pt")
    sd = src.state_dict()
    clip = {their: sd[our] for their, our in towers_key_map(src).items()}
    torch.save(clip, tmp_path / "clip.pt")
    assert detect_kind(tmp_path / "sam2_tiny.pt") == "sam2"
    assert detect_kind(tmp_path / "clip.pt") == "open_clip"
    m = load_model(tmp_path / "sam2_tiny.pt", base="rsrefseg-tiny")
    assert m.load_report.loaded == len(sam)
    assert torch.equal(m.image_encoder.trunk.blocks[0].attn.qkv.weight, src.image_encoder.trunk.blocks[0].attn.qkv.weight)
    m = load_model(tmp_path / "clip.pt", base="rsrefseg-tiny")
    assert m.load_report.loaded == len(clip)
    assert torch.equal(m.towers.clip.token_embedding.weight, src.towers.clip.token_embedding.weight)


def test_siglip_tokenizer_from_a_local_dir(tmp_path):
    from model_core.union_encoder import ASSETS

    with pytest.raises(FileNotFoundError, match="spiece.model"):
        SiglipSpmTokenizer.from_dir(tmp_path, 16)
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        SiglipSpmTokenizer.from_dir(None, 16)
    (tmp_path / "spiece.model").write_bytes((ASSETS / "tiny_spm.model").read_bytes())
    tok = SiglipSpmTokenizer.from_dir(tmp_path, 16)
    ids, pad = tok(["The Red, roof!", "a"])
    assert ids.shape == (2, 16)  # padded to the full context (SigLIP pools the last position)
    n0 = int((~pad[0]).sum())
    assert ids[0, n0 - 1] == 1 and bool((ids[0, n0:] == 1).all())  # eos then pad (both 1)
    long_ids, long_pad = tok(["word " * 50])
    assert long_ids.shape == (1, 16) and long_ids[0, -1] == 1 and not bool(long_pad.any())


def test_full_preset_builds_on_meta_with_its_sizes():
    from model_core.checkpoints import init_empty_parameters

    with init_empty_parameters():
        m = RSRefSeg(PRESETS["rsrefseg"])
    assert m.grid == (27, 27) and m.towers.embed_dim == 1152 and m.input_size == 1024
    assert m.towers.context_length == 64
    assert len(m.image_encoder.trunk.blocks) == 48
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        m.tokenize(["roof"])


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    m = build_model("rsrefseg-tiny").train()
    S = m.input_size
    x = torch.rand(2, 3, S, S)
    y = torch.zeros(2, S, S)
    y[0, 40:140, 60:200] = 1
    y[1, 100:220, 20:90] = 1
    texts = ["the bright field", "a dark pond"]
    opt = torch.optim.AdamW(m.param_groups(1e-3), weight_decay=0.05)
    losses = []
    for _ in range(20):
        loss, _ = m.loss(m(x, texts), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_text_cache_encodes_each_distinct_text_once(tiny):
    calls = []
    orig = tiny.towers.encode_text

    def counting(ids):
        calls.append(ids.shape[0])
        return orig(ids)

    tiny.towers.encode_text = counting
    try:
        x = torch.rand(4, 3, tiny.input_size, tiny.input_size)
        texts = ["red roof", "the long white storage tank", "red roof", "the long white storage tank"]
        with torch.no_grad():
            f = tiny.encode_images(x)
            ref = tiny.decode_features(f, texts)["logits"]
            ref_rev = tiny.decode_features(f, texts[::-1])["logits"]
            cache = {}
            a = tiny.decode_features(f, texts, text_cache=cache)["logits"]
            b = tiny.decode_features(f, texts[::-1], text_cache=cache)["logits"]
    finally:
        del tiny.towers.encode_text
    assert calls == [4, 4, 1, 1]  # batched without a cache; with one, each distinct text once (alone), then reused
    assert torch.allclose(a, ref, atol=1e-5) and torch.allclose(b, ref_rev, atol=1e-5)
