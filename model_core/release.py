"""The authors' released RS2-SAM2 directory (Hugging Face `ReeF2025/RS2-SAM2`, sub-folders `rrsisd/` and `refseg/`).

A release directory (official_contract.md section 0) holds `config.json`, the weights as their
`save_pretrained` writes them (`model.safetensors`, or shards + `model.safetensors.index.json`, or
`pytorch_model.bin` / shards + `pytorch_model.bin.index.json`; keys exactly as official_state_dict.json, no prefix)
and the XLM-R slow-tokenizer files (`sentencepiece.bpe.model` = the beit3.spm copy, `tokenizer_config.json`,
`special_tokens_map.json`, `added_tokens.json` with "[SEG]").

`load_release(dir)`:
- builds the `paper` preset with its parameters on the meta device (no random init, no allocation; buffers, all
  computed ones, are built for real and stay as built),
- opens the weights memory-mapped (safetensors `safe_open`, `torch.load(mmap=True)`), checks strictly (every key
  of theirs mapped or dropped on purpose with a reason, every tensor of ours present, shapes equal; otherwise one
  CheckpointError lists all problems), and hands the mapped tensors to the model with
  `load_state_dict(..., assign=True)`: no second copy, so the resident memory stays near one copy of the weights
  (3.74 GB fp32) and pages come in as the forward touches them,
- checks that no parameter, buffer or tensor attribute is left on the meta device,
- attaches the directory's tokenizer (`ReleaseTokenizer`: transformers' slow XLMRobertaTokenizer ids, the authors'
  pad = unk = 3).

Note: a memory-mapped model keeps its weight files open (on Windows the folder cannot be deleted while QGIS holds
the model). Tensors are copy-on-write: training such a model does not modify the files.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoints import (
    CheckpointError,
    LoadReport,
    check_complete,
    format_key_list,
    init_empty_parameters,
    load_torch_file,
    need_file,
    strict_fill,
)
from .families import PRESETS, family_of
from .rs2sam2_weights import official_key_map, official_unused, set_spm, strip_official_prefixes
from .union_encoder import XLMRTokenizer

__all__ = ["load_release", "load_official_weights", "is_release_dir", "read_release_tensors", "assign_strict",
           "ReleaseTokenizer", "release_tokenizer", "find_release_spm", "WEIGHT_LAYOUTS", "RELEASE_LAYOUT"]

# In the order transformers' from_pretrained looks for them.
WEIGHT_LAYOUTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin.index.json",
                  "pytorch_model.bin")
SPM_NAMES = ("sentencepiece.bpe.model", "beit3.spm", "tokenizer.model")


# ================================================================================================ weights
def _torch_load_mmap(path: Path) -> dict[str, torch.Tensor]:
    obj = load_torch_file(path)  # memory-mapped; legacy (non-zip) torch files cannot be: one plain copy
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "module"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
    return obj


def _safetensors_mmap(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a .safetensors file as a view of its memory map (zero copy on CPU)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def read_release_tensors(d) -> tuple[dict[str, torch.Tensor], str, str]:
    """(tensors by the authors' key, memory-mapped; the file read (or index); layout name) of a release directory
    (or of one weight file)."""
    d = Path(d)
    if d.is_file():
        sd = _safetensors_mmap(d) if d.suffix == ".safetensors" else _torch_load_mmap(d)
        return sd, str(d), d.name
    for name in WEIGHT_LAYOUTS:
        p = d / name
        if not p.is_file():
            continue
        if name.endswith(".index.json"):
            weight_map = json.loads(p.read_text())["weight_map"]
            sd: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                f = need_file(d / shard, f"weight shard named in {name}")
                part = _safetensors_mmap(f) if f.suffix == ".safetensors" else _torch_load_mmap(f)
                sd.update(part)
            missing = sorted(set(weight_map) - set(sd))
            if missing:
                raise CheckpointError(f"{p}: {len(missing)} key(s) of the index are in none of its shards:"
                                      f"{format_key_list(missing)}")
            return sd, str(p), name
        sd = _safetensors_mmap(p) if name.endswith(".safetensors") else _torch_load_mmap(p)
        return sd, str(p), name
    found = ", ".join(sorted(q.name for q in d.iterdir())) if d.is_dir() else "nothing"
    raise FileNotFoundError(f"no weights in {d.resolve()}: looked for {', '.join(WEIGHT_LAYOUTS)} "
                            f"(found: {found})")


def assign_strict(model: nn.Module, src: dict[str, torch.Tensor], key_map: dict[str, str], *, kind: str, path: str,
                  unused: dict[str, str] | None = None) -> LoadReport:
    """Strict load by assignment: src[their] becomes model[our] for every pair of key_map (their -> our), without a
    copy (a dtype cast, if the file's dtype differs, makes the one copy). Checks as checkpoints.strict_fill: a key
    of src neither mapped nor under an `unused` prefix, a key of the model not in src, a shape mismatch: all listed
    in one CheckpointError, before anything is changed."""
    unused = unused or {}
    ours = model.state_dict(keep_vars=True)
    unmapped, misshaped, dropped = [], [], {}
    new_sd: dict[str, torch.Tensor] = {}
    for k, v in src.items():
        if k in key_map:
            o = key_map[k]
            if o not in ours:
                unmapped.append(f"{k} -> {o} (not a tensor of this model)")
            elif tuple(v.shape) != tuple(ours[o].shape):
                misshaped.append(f"{k} -> {o}: file {tuple(v.shape)} vs model {tuple(ours[o].shape)}")
            else:
                new_sd[o] = v
            continue
        reason = next((r for p, r in unused.items() if k.startswith(p)), None)
        if reason is not None:
            dropped[k] = reason
        else:
            unmapped.append(k)
    missing = sorted(set(ours) - set(new_sd) - {key_map[k] for k in src if k in key_map})
    check_complete(kind, path, unmapped, missing, misshaped)
    for o, v in list(new_sd.items()):
        want = ours[o].dtype
        if v.dtype != want:
            new_sd[o] = v.to(dtype=want)
    model.load_state_dict(new_sd, strict=True, assign=True)
    _check_no_meta(model)
    return LoadReport(kind=kind, path=str(path), loaded=len(new_sd), dropped=dropped, kept=[])


def _check_no_meta(model: nn.Module):
    left: list[str] = []
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            left.append(n)
    for mn, mod in model.named_modules():
        for an, v in vars(mod).items():
            if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter) and v.is_meta:
                left.append(f"{mn}.{an}" if mn else an)
    if left:
        raise CheckpointError(f"{len(left)} tensor(s) were not materialised after the load:{format_key_list(left)}")


def build_paper_on_meta(cfg=None):
    """The `paper` preset (or cfg) with its parameters on the meta device; buffers are built for real."""
    cfg = cfg if cfg is not None else PRESETS["paper"]
    with init_empty_parameters():
        model = family_of(cfg).model_class(cfg)
    return model


def _check_config_json(d: Path):
    cj = d / "config.json"
    if not cj.is_file():
        return
    c = json.loads(cj.read_text())
    scale = c.get("mm_extractor_scale", "large")
    if scale != "large" or c.get("hidden_size", 1024) != 1024 or c.get("out_dim", 256) != 256:
        raise CheckpointError(f"{cj}: only the authors' released configuration (BEiT-3 large, hidden_size 1024, "
                              f"out_dim 256) is supported, got mm_extractor_scale={scale!r}, "
                              f"hidden_size={c.get('hidden_size')}, out_dim={c.get('out_dim')}")


def load_release(path, cfg=None, tokenizer: bool = True):
    """The authors' release directory (or one of its weight files) -> an eval-mode `paper` model whose parameters
    are views of the memory-mapped files; model.load_report says what was loaded and dropped."""
    import time

    path = Path(path)
    d = path if path.is_dir() else path.parent
    _check_config_json(d)
    t0 = time.perf_counter()
    if cfg is None:
        cfg = PRESETS["paper"]
        cfg.name = "rs2sam2-official"
    model = build_paper_on_meta(cfg)
    sd, src, layout = read_release_tensors(path)
    sd = strip_official_prefixes(sd)
    report = assign_strict(model, sd, official_key_map(model), kind="official", path=src,
                           unused=official_unused(model))
    report.kept = []
    model.load_report = report
    model.release_layout = layout
    if tokenizer:
        tok = release_tokenizer(d, max_tokens=cfg.union.max_text_positions - 2)
        if tok is not None:
            model.cfg.union.spm_path = str(tok.path)
            model.union_encoder.cfg.spm_path = str(tok.path)
            model.union_encoder.set_tokenizer(tok)
    model.load_seconds = time.perf_counter() - t0
    return model.eval()


def is_release_dir(path: Path) -> bool:
    """A folder in the release layout: config.json or one of WEIGHT_LAYOUTS."""
    return any((path / n).is_file() for n in ("config.json", *WEIGHT_LAYOUTS))


RELEASE_LAYOUT = "the authors' RS2-SAM2 release (config.json + model.safetensors | index | pytorch_model.bin)"


def load_official_weights(model, path) -> LoadReport:
    """The release directory (or one of its weight files) -> an existing beit3-backend model, strictly, by copy;
    the directory's tokenizer becomes the model's."""
    path = Path(path)
    sd, src, _ = read_release_tensors(path)
    report = strict_fill(model, strip_official_prefixes(sd), official_key_map(model), kind="official", path=src,
                         unused=official_unused(model), required=set(model.state_dict().keys()))
    d = path if path.is_dir() else path.parent
    tok = release_tokenizer(d, max_tokens=model.union_encoder.cfg.max_text_positions - 2)
    if tok is not None:  # the slow XLM-R tokenizer's ids, incl. the directory's added tokens
        set_spm(model, tok.path)
        model.union_encoder.set_tokenizer(tok)
    return report


# ================================================================================================ tokenizer
def find_release_spm(d) -> Path | None:
    d = Path(d)
    for name in SPM_NAMES:
        if (d / name).is_file():
            return d / name
    return None


class ReleaseTokenizer(XLMRTokenizer):
    """transformers' slow `XLMRobertaTokenizer` as the authors use it, without transformers:

    - text is first split on the added tokens (the specials <s> <pad> </s> <unk> <mask>, and those of the
      directory's added_tokens.json / tokenizer_config.json, e.g. the authors' "[SEG]"), leftmost-longest, with
      their lstrip/rstrip flags (<mask> strips spaces on its left); an added token gives its own id,
    - every other segment is encoded by sentencepiece; piece id p -> p + 1 (fairseq offset), sentencepiece's
      unk (0) -> 3,
    - <s> (0) + ids + </s> (2); a batch is right-padded with 3 and padding = (id == 3) (the authors' pad = unk),
      so a genuine <unk> inside a caption is masked like padding, as theirs.
    """

    def __init__(self, spm_path=None, max_tokens: int | None = None, proto: bytes | None = None,
                 added: dict[str, tuple[int, bool, bool]] | None = None):
        super().__init__(spm_path, max_tokens=max_tokens, proto=proto)
        n = self.sp.get_piece_size()
        specials = {"<s>": (0, False, False), "<pad>": (1, False, False), "</s>": (2, False, False),
                    "<unk>": (3, False, False), "<mask>": (n + self.OFFSET, True, False)}
        self.added: dict[str, tuple[int, bool, bool]] = {**specials, **(added or {})}

    def _split(self, text: str) -> list[tuple[str, bool]]:
        """[(segment, is_added_token)], leftmost-longest match of the added tokens, then lstrip/rstrip."""
        toks = sorted(self.added, key=len, reverse=True)
        parts: list[list] = []
        i = start = 0
        while i < len(text):
            hit = next((t for t in toks if text.startswith(t, i)), None)
            if hit is None:
                i += 1
                continue
            if i > start:
                parts.append([text[start:i], False])
            parts.append([hit, True])
            i = start = i + len(hit)
        if start < len(text):
            parts.append([text[start:], False])
        for k, (seg, is_tok) in enumerate(parts):
            if not is_tok:
                continue
            _, lstrip, rstrip = self.added[seg]
            if rstrip and k + 1 < len(parts) and not parts[k + 1][1]:
                parts[k + 1][0] = parts[k + 1][0].lstrip()
            if lstrip and k > 0 and not parts[k - 1][1]:
                parts[k - 1][0] = parts[k - 1][0].rstrip()
        return [(s, t) for s, t in parts if s]

    def full_ids(self, text: str) -> list[int]:
        ids = [self.BOS]
        for seg, is_tok in self._split(text):
            if is_tok:
                ids.append(self.added[seg][0])
            else:
                ids.extend(p + self.OFFSET if p != 0 else self.UNK for p in self.sp.encode(seg, out_type=int))
        ids.append(self.EOS)
        return ids


def _added_tokens(d: Path) -> dict[str, tuple[int, bool, bool]]:
    out: dict[str, tuple[int, bool, bool]] = {}
    at = d / "added_tokens.json"
    if at.is_file():
        for content, idx in json.loads(at.read_text()).items():
            out[content] = (int(idx), False, False)
    tc = d / "tokenizer_config.json"
    if tc.is_file():
        dec = json.loads(tc.read_text()).get("added_tokens_decoder") or {}
        for idx, spec in dec.items():
            if isinstance(spec, dict) and "content" in spec:
                out[spec["content"]] = (int(idx), bool(spec.get("lstrip", False)), bool(spec.get("rstrip", False)))
    return out


def release_tokenizer(d, max_tokens: int | None = None) -> ReleaseTokenizer | None:
    """The tokenizer of a release directory (None when it ships no sentencepiece file)."""
    d = Path(d)
    spm = find_release_spm(d)
    if spm is None:
        return None
    tok = ReleaseTokenizer(spm, max_tokens=max_tokens)
    extra = _added_tokens(d)
    # the fixed specials keep the ids of the slow tokenizer's fairseq table; files only add tokens or set flags
    for content, spec in extra.items():
        tok.added[content] = spec
    return tok
