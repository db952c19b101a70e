"""Checkpoint loaders: files made here in the official layouts with random weights (small configs)."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model_core import PRESETS, build_model, load_model, save_model
from model_core.checkpoints import DEMO_PATH, CheckpointError, detect_kind, init_empty_parameters, load_weights
from model_core.rs2sam2_weights import OFFICIAL_UNUSED, export_official_state_dict, official_key_map, official_unused
from model_core.sam2_weights import export_sam2_state_dict
from model_core.model import RS2SAM2
from tests.ci import cannot_run


pytestmark = pytest.mark.usefixtures("one_torch_thread")


REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "official_state_dict.json"


def _assert_same(a: dict, b: dict):
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------------------------ SAM2 .pt
def _small_sam2():
    from sam2.build_sam import build_sam2

    return build_sam2("configs/sam2/sam2_hiera_t.yaml", ckpt_path=None, device="cpu", mode="eval",
                      hydra_overrides_extra=[
                          "++model.image_size=256", "++model.image_encoder.trunk.embed_dim=32",
                          "++model.image_encoder.trunk.num_heads=1", "++model.image_encoder.trunk.stages=[1,1,2,1]",
                          "++model.image_encoder.trunk.global_att_blocks=[3]",
                          "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
                          "++model.image_encoder.trunk.window_spec=[8,4,4,4]",
                          "++model.image_encoder.neck.backbone_channel_list=[256,128,64,32]",
                          "++model.image_encoder.neck.d_model=64"])


def _tiny_like_sam2():
    # the stock decoder of that SAM2 build: MLP 2048, IoU head 256
    return build_model("tiny", sam={"decoder_mlp_dim": 2048, "iou_head_hidden_dim": 256, "decoder_heads": 8})


def test_sam2_checkpoint_loads_bit_exact(tmp_path):
    torch.manual_seed(3)
    sam = _small_sam2()
    sd = sam.state_dict()
    f = tmp_path / "sam2_small.pt"
    torch.save({"model": sd}, f)
    assert detect_kind(f) == "sam2"
    m = load_model(f, base=_tiny_like_sam2())
    exported = export_sam2_state_dict(m)
    used = {k: v for k, v in sd.items() if k in exported}
    _assert_same(exported, used)
    dropped = set(sd) - set(exported)
    assert dropped and all(k.startswith(("memory_", "maskmem", "no_mem_pos", "no_obj", "obj_ptr", "mask_downsample"))
                           for k in dropped)
    # adapters stay as built (not in a SAM2 file)
    assert any(".cross_adapter." in k for k in m.load_report.kept)


def test_sam2_checkpoint_wrong_shape_and_missing(tmp_path):
    torch.manual_seed(3)
    sd = _small_sam2().state_dict()
    bad = dict(sd)
    bad["sam_mask_decoder.iou_token.weight"] = torch.zeros(1, 65)
    del bad["image_encoder.trunk.blocks.0.attn.qkv.weight"]
    bad["some_unknown.weight"] = torch.zeros(1)
    f = tmp_path / "bad.pt"
    torch.save({"model": bad}, f)
    with pytest.raises(CheckpointError) as e:
        load_weights(_tiny_like_sam2(), f)
    msg = str(e.value)
    assert "sam_mask_decoder.iou_token.weight" in msg and "(1, 65)" in msg
    assert "image_encoder.trunk.blocks.0.attn.qkv.weight" in msg and "missing" in msg
    assert "some_unknown.weight" in msg


# ------------------------------------------------------------------------------------------------ open_clip
def test_open_clip_file_and_dir(tmp_path):
    from model_core.union_encoder import build_open_clip

    torch.manual_seed(4)
    cfg = PRESETS["nano"]
    clip = build_open_clip(cfg.union)  # open_clip's own CLIP class from its bundled config (+ nano overrides)
    sd = clip.state_dict()
    f = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(f))
    assert detect_kind(f) == "open_clip"
    m = load_model(f, base="nano")
    got = {k[len("union_encoder.backend.clip."):]: v for k, v in m.state_dict().items()
           if k.startswith("union_encoder.backend.clip.")}
    _assert_same(got, sd)
    d = tmp_path / "clipdir"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    torch.save(sd, d / "open_clip_pytorch_model.bin")
    m2 = load_model(f"local-dir:{d}", base="nano")
    _assert_same({k: v for k, v in m2.state_dict().items() if "backend.clip." in k},
                 {k: v for k, v in m.state_dict().items() if "backend.clip." in k})
    sd2 = dict(sd)
    sd2["ln_final.weight"] = torch.zeros(3)
    torch.save(sd2, d / "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="ln_final.weight"):
        load_model(d, base="nano")


# ------------------------------------------------------------------------------------------------ BEiT-3
def test_beit3_unilm_checkpoint(tmp_path):
    from torchscale.architecture.config import EncoderConfig
    from torchscale.model.BEiT3 import BEiT3

    torch.manual_seed(5)
    u = PRESETS["tiny"].union
    b = BEiT3(EncoderConfig(img_size=u.image_size, patch_size=u.patch_size, vocab_size=u.vocab_size, multiway=True,
                            layernorm_embedding=False, normalize_output=True, no_output_layer=True,
                            encoder_embed_dim=u.width, encoder_attention_heads=u.heads,
                            encoder_ffn_embed_dim=u.ffn_dim, encoder_layers=u.layers,
                            max_source_positions=u.max_text_positions))
    sd = {"beit3." + k: v for k, v in b.state_dict().items()}
    f = tmp_path / "beit3_tiny.pth"
    torch.save({"model": sd}, f)
    spm = Path(__file__).resolve().parents[1] / "model_core" / "assets" / "tiny_spm.model"
    assert detect_kind(f) == "beit3"
    m = load_model(f, base="tiny", spm=spm)
    got = {"beit3." + k[len("union_encoder.backend.beit3."):]: v for k, v in m.state_dict().items()
           if k.startswith("union_encoder.backend.beit3.")}
    _assert_same(got, sd)
    ids, pad = m.tokenize(["the red roof", "a"])
    assert ids[0, 0] == 0 and ids[0, (~pad[0]).sum() - 1] == 2 and ids[1, -1] == 3 and pad[1, -1]


# ------------------------------------------------------------------------------------------------ authors' release
def _official_sd(m):
    sd = {k: v.clone() for k, v in export_official_state_dict(m).items()}
    # parts of their checkpoint we drop on purpose (one representative tensor each)
    n = len(m.image_encoder.trunk.blocks) - 1
    sd["meo_linear.weight"] = torch.randn(m.cfg.sam.dim, m.cfg.union.width)
    sd["visual_model.memory_attention.layers.0.norm1.weight"] = torch.randn(4)
    sd["visual_model.maskmem_tpos_enc"] = torch.randn(7, 1, 1, 4)
    sd[f"visual_model.image_encoder.trunk.blocks.{n}.Space_Adapter.text_out_linear.weight"] = torch.randn(2, 2)
    return sd


@pytest.mark.parametrize("layout", ["safetensors", "sharded", "bin"])
def test_official_release_roundtrip(tmp_path, layout):
    torch.manual_seed(6)
    src = build_model("tiny")
    sd = _official_sd(src)
    d = tmp_path / "release"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "evf", "hidden_size": 1024, "out_dim": 256}))
    if layout == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(d / "model.safetensors"))
    elif layout == "sharded":
        keys = sorted(sd)
        half = len(keys) // 2
        shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
        wm = {}
        for name, ks in shards.items():
            save_file({k: sd[k].contiguous() for k in ks}, str(d / name))
            wm.update({k: name for k in ks})
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    else:
        torch.save(sd, d / "pytorch_model.bin")
    import shutil
    shutil.copy(Path(__file__).resolve().parents[1] / "model_core" / "assets" / "tiny_spm.model",
                d / "sentencepiece.bpe.model")
    assert detect_kind(d) == "official"
    m = load_model(d, base="tiny")
    _assert_same(export_official_state_dict(m), export_official_state_dict(src))
    filled = build_model("tiny")  # the copying path: an existing model filled from the same directory
    load_weights(filled, d)
    _assert_same(export_official_state_dict(filled), export_official_state_dict(src))
    assert set(m.load_report.dropped) == {k for k in sd if k not in official_key_map(m)}
    x = torch.rand(1, 3, 256, 256)
    src.eval(), m.eval()
    with torch.no_grad():
        # weights equal bit for bit; memory-mapped tensors are only 8-byte aligned, which may change the rounding
        # of a few matmuls (as the authors' own from_pretrained: golden README), hence ~1e-7 and not bitwise
        torch.testing.assert_close(src(x, ["a red roof"])["logits"], m(x, ["a red roof"])["logits"],
                                   atol=1e-6, rtol=0)


def test_official_release_errors(tmp_path):
    torch.manual_seed(6)
    m = build_model("tiny")
    sd = _official_sd(m)
    sd["mask_linear.weight"] = torch.zeros(3, 3)
    del sd["text2one_linear.bias"]
    sd["visual_model.something_new.weight"] = torch.zeros(1)
    d = tmp_path / "bad"
    d.mkdir()
    save_file({k: v.contiguous() for k, v in sd.items()}, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load_model(d, base="tiny")
    msg = str(e.value)
    for k in ("mask_linear.weight", "boundary_head.bias", "visual_model.something_new.weight"):
        assert k in msg, msg
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(empty, base="tiny")


def test_paper_preset_matches_official_state_dict():
    if not REF.is_file():
        cannot_run(f"official_state_dict.json not present (looked for {REF})")
    ref = json.loads(REF.read_text())
    theirs = {k: tuple(s) for k, s, *_ in ref["params"]}
    theirs.update({k: tuple(s) for k, s, *_ in ref["buffers"]})
    assert len(theirs) == 2853
    with init_empty_parameters():
        m = RS2SAM2(PRESETS["paper"])
    km = official_key_map(m)
    unused = official_unused(m)
    assert unused == OFFICIAL_UNUSED
    expected = {k for k in theirs if not any(k.startswith(p) for p in unused)}
    assert set(km) == expected
    ours = m.state_dict()
    assert {k: tuple(ours[v].shape) for k, v in km.items()} == {k: theirs[k] for k in expected}
    assert set(km.values()) == set(ours)
    # everything dropped is something their forward never uses
    dropped = set(theirs) - expected
    assert dropped <= set(ref["unused_in_forward"])


# ------------------------------------------------------------------------------------------------ own format
@pytest.mark.parametrize("preset", ["tiny", "nano"])
def test_own_format_roundtrip(tmp_path, preset):
    torch.manual_seed(7)
    m = build_model(preset, name="custom-" + preset)
    f = save_model(m, tmp_path / "m.pt")
    assert detect_kind(f) == "rs2sam2"
    m2 = load_model(f)
    assert m2.cfg == m.cfg and m2.name == "custom-" + preset
    _assert_same(m.state_dict(), m2.state_dict())
    assert [n for n, _ in m.trainable_parameters()] == [n for n, _ in m2.trainable_parameters()]
    x = torch.rand(1, 3, m.input_size, m.input_size)
    m.eval(), m2.eval()
    with torch.no_grad():
        assert torch.equal(m.predict_masks(x, ["a red roof"]), m2.predict_masks(x, ["a red roof"]))


def test_missing_files_say_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.pt")):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="base="):
        f = tmp_path / "b.pth"
        torch.save({"model": {"beit3.text_embed.weight": torch.zeros(2, 2)}}, f)
        load_model(f)
    if not DEMO_PATH.is_file():
        with pytest.raises(FileNotFoundError, match="demo.pt"):
            load_model("demo")
    else:
        assert load_model("demo").input_size > 0
