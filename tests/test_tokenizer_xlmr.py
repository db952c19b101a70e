"""The release tokenizer gives the ids of transformers' slow XLMRobertaTokenizer, as the authors use it.

The authors (official_contract.md section 1): `AutoTokenizer.from_pretrained(release_dir, use_fast=False)` on the
beit3.spm copy (`sentencepiece.bpe.model`), "[SEG]" added, `pad_token` overwritten with the unk token (id 3);
captions encoded alone (<s> ... </s>), batches right-padded with 3 and padding = (id == 3).
A tiny sentencepiece BPE model is trained here (no download); transformers is a test-only dependency.
"""
import io

import pytest
import torch

import transformers  # test extra, installed by scripts/setup_env.sh: missing fails, never skips

CORPUS = [
    "the red roof of the large building", "two white storage tanks next to the harbour",
    "a small boat on the river near the bridge", "the long runway of the airport at the left",
    "green trees along the road", "the vehicle parked in front of the house", "many ships in the port",
    "a baseball field on the right", "the tennis court beside the swimming pool", "grey roofs and a chimney",
    "Large Buildings With Flat Roofs", "the stadium in the middle of the image", "golf field, ground track field",
    "overpass above the expressway", "the windmill at the top right corner", "dam, bridge, harbour, train station",
]

CAPTIONS = [
    "the red roof",
    "two white storage tanks next to the harbour\n",   # RefSegRS captions keep the line's newline
    "  leading and trailing spaces  ",
    "multiple   spaces\tand a tab",
    "UPPER case Roof",
    "unknown letters: ж 中文 ÿ",                          # pieces sentencepiece does not know -> unk (3)
    "ｆｕｌｌｗｉｄｔｈ ① ﬁ",                              # NFKC normalisation
    "a </s> inside",                                     # literal special tokens are split out as specials
    "x <mask> y",                                        # <mask> strips the spaces on its left
    "<s>start and <pad> and <unk>",
    "[SEG] the roof[SEG]",                               # the authors' added token
    "",
    "the",
]


def _train_spm(path):
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 4), model_writer=buf, vocab_size=150,
                                   model_type="bpe", character_coverage=1.0, minloglevel=2)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    """A release-style tokenizer dir as the authors' merge script saves it (tokenizer.save_pretrained)."""
    d = tmp_path_factory.mktemp("tok")
    spm_file = _train_spm(d / "tiny.spm")
    hf = transformers.XLMRobertaTokenizer(vocab_file=str(spm_file))
    hf.pad_token = hf.unk_token  # their quirk
    hf.add_tokens("[SEG]")
    out = d / "release"
    hf.save_pretrained(str(out))
    return out, hf


def test_ids_match_slow_xlmr_tokenizer(release_dir):
    from model_core.release import release_tokenizer

    d, hf = release_dir
    assert (d / "sentencepiece.bpe.model").is_file()
    hf2 = transformers.AutoTokenizer.from_pretrained(str(d), use_fast=False)  # as their inference loads it
    assert type(hf2).__name__ == "XLMRobertaTokenizer"
    ours = release_tokenizer(d)
    assert ours is not None
    for cap in CAPTIONS:
        want = hf2(cap).input_ids
        assert want == hf(cap).input_ids
        assert ours.encode(cap) == want, (cap, ours.encode(cap), want)
    # specials and offsets
    n = ours.sp.get_piece_size()
    assert hf2.convert_tokens_to_ids("<mask>") == n + 1 == ours.added["<mask>"][0]
    assert hf2.convert_tokens_to_ids("[SEG]") == n + 2 == ours.added["[SEG]"][0]
    assert hf2.pad_token_id == 3 == ours.pad_id
    assert 3 in ours.encode("unknown letters: ж")  # a genuine unk


def test_batch_padding_is_the_authors(release_dir):
    from model_core.release import release_tokenizer

    d, hf = release_dir
    ours = release_tokenizer(d)
    caps = ["the red roof", "two white storage tanks next to the harbour", "ж"]
    ids, pad = ours(caps)
    want = hf(caps, padding=True, return_tensors="pt").input_ids  # right padding with pad = unk = 3
    assert torch.equal(ids, want)
    assert torch.equal(pad, want == 3)  # their attention mask: id != 3 (a genuine <unk> counts as padding)
    assert pad[2].sum() >= 1 and not pad[0, :5].any()


def test_load_model_picks_the_directory_tokenizer(release_dir, tmp_path):
    """load_model(DIR) on a release directory uses its tokenizer files (tiny model in the release layout)."""
    import json
    import shutil

    from safetensors.torch import save_file

    from model_core import build_model, load_model
    from model_core.release import ReleaseTokenizer
    from model_core.rs2sam2_weights import export_official_state_dict

    d, hf = release_dir
    torch.manual_seed(1)
    src = build_model("tiny", union={"vocab_size": 160})
    rel = tmp_path / "rel"
    rel.mkdir()
    save_file({k: v.contiguous() for k, v in export_official_state_dict(src).items()}, str(rel / "model.safetensors"))
    (rel / "config.json").write_text(json.dumps({"model_type": "evf"}))
    for f in d.iterdir():
        shutil.copy(f, rel / f.name)
    m = load_model(rel, base=src.cfg)
    tok = m.union_encoder.tokenizer
    assert isinstance(tok, ReleaseTokenizer)
    ids, pad = m.tokenize(["x <mask> y [SEG]", "the red roof"])
    assert ids[0, : (~pad[0]).sum()].tolist() == hf("x <mask> y [SEG]").input_ids
