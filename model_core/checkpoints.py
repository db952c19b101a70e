"""Checkpoints: five kinds, all loaded offline (nothing here touches the network).

1. "sam2": an official SAM2 .pt (`{"model": state_dict}` as facebookresearch ships) -> the SAM2 part of a model
   (Hiera trunk, FPN neck, prompt encoder, mask decoder, no_mem_embed). The adapters and the decoder's text
   attention are ours and stay as they are.
2. "open_clip": open_clip weights (a .safetensors/.bin/.pt state dict, or a local dir with open_clip_config.json +
   open_clip_model.safetensors | open_clip_pytorch_model.bin) -> the clip backend's towers.
3. "beit3": BEiT-3 weights as microsoft/unilm ships them (.pth, {"model": {"beit3.*": ...}}) -> the beit3 backend;
   pass `spm=` the beit3.spm tokenizer file.
4. "official": the authors' released RS2-SAM2 directory (config.json + model.safetensors | sharded safetensors with
   model.safetensors.index.json | pytorch_model.bin; keys as in official_state_dict.json), via
   `official_key_map(model)` and `OFFICIAL_UNUSED`. Strict: every key of theirs mapped or dropped on purpose,
   every key of ours filled, shapes equal; otherwise a CheckpointError lists the rest.
5. "rs2sam2": our own format ({"format", "config", "state_dict", "tokenizer"}): the file alone rebuilds the model.

`load_model(path)` detects the kind. Kinds 1-3 fill only part of a model, so they need `base=` (a preset name, a
ModelConfig or a model). `load_weights(model, path)` fills an existing model.
"""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

import torch
import torch.nn as nn

FORMAT = "rs2sam2-model-core/1"
ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_PATH = ASSETS / "demo.pt"

# Prefixes of the SAM2 (video model) state dict that our image-only model drops on purpose.
SAM2_UNUSED: Dict[str, str] = {
    "memory_attention.": "SAM2 video memory attention: not used for single images",
    "memory_encoder.": "SAM2 video memory encoder: not used for single images",
    "maskmem_tpos_enc": "temporal position encoding of the video memory: not used",
    "no_mem_pos_enc": "video-memory position encoding: not used (only no_mem_embed is added)",
    "no_obj_ptr": "video object pointer: not used",
    "obj_ptr_proj.": "video object-pointer projection: not used",
    "mask_downsample.": "downsampler for mask inputs of the video model: not used",
}

# Prefixes of the authors' checkpoint keys we drop on purpose, with the reason.
OFFICIAL_UNUSED: Dict[str, str] = {
    **{"visual_model." + k: v for k, v in SAM2_UNUSED.items()},
    "meo_linear.": "defined in their EvfSamModel but never called in forward",
    "visual_model.image_encoder.trunk.blocks.47.Space_Adapter.lvfusion_module.":
        "text-update path of the last Hiera block: its updated text is discarded, so we do not build it",
    "visual_model.image_encoder.trunk.blocks.47.Space_Adapter.text_out_linear.":
        "text-update path of the last Hiera block: its updated text is discarded, so we do not build it",
}

# Strip these prefixes of the authors' keys when present (raw DeepSpeed/zero_to_fp32 files).
_OFFICIAL_STRIP = ("module.evf_model.", "evf_model.")


class CheckpointError(RuntimeError):
    pass


@dataclass
class LoadReport:
    kind: str
    path: str
    loaded: int = 0
    dropped: Dict[str, str] = field(default_factory=dict)  # their key -> reason
    kept: List[str] = field(default_factory=list)  # our keys the file does not cover (by design)

    def __str__(self):
        return (f"{self.kind} checkpoint {self.path}: {self.loaded} tensors loaded, {len(self.dropped)} dropped "
                f"on purpose, {len(self.kept)} of ours not covered by this kind of file")


# ================================================================================================ key maps
_ADAPTER_RENAMES = [
    (".cross_adapter.fc1.", ".Space_Adapter.D_fc1."),
    (".cross_adapter.fc2.", ".Space_Adapter.D_fc2."),
    (".cross_adapter.text_in.", ".Space_Adapter.text_in_linear."),
    (".cross_adapter.text_out.", ".Space_Adapter.text_out_linear."),
    (".cross_adapter.visual_attn.", ".Space_Adapter.vlfusion_module.multihead_attn."),
    (".cross_adapter.text_attn.", ".Space_Adapter.lvfusion_module.multihead_attn."),
    (".mlp_adapter.fc1.", ".MLP_Adapter.D_fc1."),
    (".mlp_adapter.fc2.", ".MLP_Adapter.D_fc2."),
]


def _is_sam_part(k: str) -> bool:
    return k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder.")) or k == "no_mem_embed"


def _is_new_in_sam_part(k: str) -> bool:
    """Our additions inside the SAM2 part (not in a stock SAM2 checkpoint)."""
    return (".cross_adapter." in k or ".mlp_adapter." in k or k.startswith("mask_decoder.text_attn.")
            or k.rsplit(".", 1)[-1].startswith("lora_"))  # LoRA tensors (RSRefSeg)


def _to_sam2_name(k: str) -> Optional[str]:
    """Our key -> key in a stock SAM2 state dict (None if ours is not a stock SAM2 tensor)."""
    if not _is_sam_part(k) or _is_new_in_sam_part(k):
        return None
    if k.startswith("prompt_encoder."):
        return "sam_prompt_encoder." + k[len("prompt_encoder."):]
    if k.startswith("mask_decoder."):
        return "sam_mask_decoder." + k[len("mask_decoder."):]
    return k


def _to_official_name(k: str) -> Optional[str]:
    """Our key -> the authors' key (None if it has no counterpart)."""
    if k.startswith("union_encoder.backend.beit3."):
        return "mm_extractor.beit3." + k[len("union_encoder.backend.beit3."):]
    if k.startswith("mask_decoder.text_attn."):
        return "visual_model.sam_mask_decoder.vlfusion_module.multihead_attn." + k[len("mask_decoder.text_attn."):]
    if _is_sam_part(k):
        if _is_new_in_sam_part(k):
            for a, b in _ADAPTER_RENAMES:
                if a in k:
                    return "visual_model." + k.replace(a, b)
            return None
        return "visual_model." + _to_sam2_name(k)
    simple = {
        "mask_prompt.attn.": "vmtoken.multihead_attn.",
        "mask_prompt.proj.": "mask_linear.",
        "mask_prompt.score.": "mask_product.",
        "sparse_prompt.0.": "text_hidden_fcs.0.0.",
        "sparse_prompt.2.": "text_hidden_fcs.0.2.",
        "text_proj.": "text_feat_linear.",
        "boundary_head.": "text2one_linear.",
    }
    for a, b in simple.items():
        if k.startswith(a):
            return b + k[len(a):]
    return None


def official_key_map(model) -> Dict[str, str]:
    """{authors' key: our key} for every tensor of `model` that has a counterpart in the authors' checkpoint.

    Needs a beit3-backend model (the authors' union encoder); for the `paper` preset it covers exactly the keys of
    official_state_dict.json minus those under OFFICIAL_UNUSED."""
    out = {}
    for k in model.state_dict().keys():
        theirs = _to_official_name(k)
        if theirs is None:
            raise CheckpointError(f"our tensor {k!r} has no counterpart in the authors' checkpoint layout "
                                  f"(is this a beit3-backend model?)")
        out[theirs] = k
    return out


def official_unused(model) -> Dict[str, str]:
    """OFFICIAL_UNUSED adapted to the model's depth (the last block's text-update path)."""
    n = len(model.image_encoder.trunk.blocks)
    out = {k: v for k, v in OFFICIAL_UNUSED.items() if ".blocks.47." not in k}
    if not model.cfg.fusion.update_text_in_last_block:
        for k, v in OFFICIAL_UNUSED.items():
            if ".blocks.47." in k:
                out[k.replace(".blocks.47.", f".blocks.{n - 1}.")] = v
    return out


def sam2_key_map(model) -> Dict[str, str]:
    """{stock SAM2 key: our key} for the SAM2 part."""
    return {t: k for k in model.state_dict().keys() if (t := _to_sam2_name(k)) is not None}


def open_clip_key_map(model) -> Dict[str, str]:
    pre = "union_encoder.backend.clip."
    return {k[len(pre):]: k for k in model.state_dict().keys() if k.startswith(pre)}


def beit3_key_map(model) -> Dict[str, str]:
    pre = "union_encoder.backend."
    return {k[len(pre):]: k for k in model.state_dict().keys() if k.startswith(pre + "beit3.")}


# ================================================================================================ strict fill
def _fmt_list(items: List[str], n: int = 30) -> str:
    head = "\n    ".join(items[:n])
    more = f"\n    ... and {len(items) - n} more" if len(items) > n else ""
    return "\n    " + head + more


def check_complete(kind: str, path, unmapped: list, missing: list, misshaped: list) -> None:
    """A strict load's verdict: one CheckpointError listing every unmapped, missing and mis-shaped key."""
    if not (unmapped or missing or misshaped):
        return
    msg = [f"cannot load {kind} checkpoint {path}:"]
    if unmapped:
        msg.append(f"  {len(unmapped)} key(s) of the file map to nothing in the model:{_fmt_list(unmapped)}")
    if missing:
        msg.append(f"  {len(missing)} key(s) of the model are missing from the file:{_fmt_list(missing)}")
    if misshaped:
        msg.append(f"  {len(misshaped)} key(s) have a different shape:{_fmt_list(misshaped)}")
    raise CheckpointError("\n".join(msg))


def strict_fill(model: nn.Module, src: Dict[str, torch.Tensor], key_map: Dict[str, str], *, kind: str,
                path: str, unused: Optional[Dict[str, str]] = None, required: Optional[Iterable[str]] = None,
                allow_unmapped: bool = False) -> LoadReport:
    """Copy src[their] into model[our] for every pair in key_map (their -> our).

    Errors (all listed at once): a key of src neither mapped nor under an `unused` prefix (unless allow_unmapped),
    a `required` key of ours not filled, a shape mismatch."""
    unused = unused or {}
    ours = model.state_dict()
    required = set(key_map.values()) if required is None else set(required)
    unmapped, misshaped, dropped = [], [], {}
    pairs = []
    for k in src:
        if k in key_map:
            o = key_map[k]
            if tuple(src[k].shape) != tuple(ours[o].shape):
                misshaped.append(f"{k} -> {o}: file {tuple(src[k].shape)} vs model {tuple(ours[o].shape)}")
            else:
                pairs.append((k, o))
            continue
        reason = next((r for p, r in unused.items() if k.startswith(p)), None)
        if reason is not None:
            dropped[k] = reason
        elif allow_unmapped:
            dropped[k] = "not part of this model"
        else:
            unmapped.append(k)
    filled = {o for _, o in pairs}
    missing = sorted(required - filled - {key_map[k] for k in src if k in key_map})
    check_complete(kind, path, unmapped, missing, misshaped)
    with torch.no_grad():
        for k, o in pairs:
            ours[o].copy_(src[k].to(dtype=ours[o].dtype))
    kept = sorted(set(ours) - filled)
    return LoadReport(kind=kind, path=str(path), loaded=len(pairs), dropped=dropped, kept=kept)


# ================================================================================================ file reading
def _need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        where = path.parent if path.parent != Path("") else Path.cwd()
        listing = ""
        if where.is_dir():
            names = sorted(p.name for p in where.iterdir())[:20]
            listing = f" (that folder holds: {', '.join(names) or 'nothing'})"
        raise FileNotFoundError(f"{what} not found: looked for {path.resolve()}{listing}")
    return path


def _torch_load(path: Path):
    """torch.load restricted to tensors and plain containers (weights_only); argparse.Namespace (the "args" entry of
    many research checkpoints) is allowed too. Memory-mapped when the file format allows it."""
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e) and "zip" not in str(e):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)


def read_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """A tensor dict from .safetensors or a torch file ({"model": sd} / {"state_dict": sd} / sd)."""
    path = _need_file(Path(path), "checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = _torch_load(path)
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "module"):
            if key in obj and isinstance(obj[key], dict) and "format" not in obj:
                return obj[key]
    return obj


def _strip_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for p in _OFFICIAL_STRIP:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


# ================================================================================================ loaders
def load_sam2_weights(model, path) -> LoadReport:
    """Official SAM2 checkpoint -> the SAM2 part of `model` (strict on the SAM2 part; adapters and the decoder
    text attention are not in such a file and stay as they are)."""
    sd = read_state_dict(path)
    km = sam2_key_map(model)
    return strict_fill(model, sd, km, kind="sam2", path=str(path), unused=SAM2_UNUSED)


OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors",
                   "pytorch_model.bin")


def open_clip_folder(path) -> Path:
    """The folder of open_clip weights given as a file, a folder or open_clip's 'local-dir:FOLDER'."""
    p = Path(str(path).removeprefix("local-dir:"))
    return p if p.is_dir() else p.parent


def resolve_open_clip_file(path) -> Path:
    """open_clip weights given as a file, a folder or 'local-dir:FOLDER' -> the weight file (a folder's first of
    OPEN_CLIP_FILES)."""
    p = Path(str(path).removeprefix("local-dir:"))
    if not p.is_dir():
        return p
    for name in OPEN_CLIP_FILES:
        if (p / name).is_file():
            return p / name
    raise FileNotFoundError(f"no open_clip weights in {p.resolve()}: looked for {', '.join(OPEN_CLIP_FILES)}")


def load_open_clip_weights(model, path) -> LoadReport:
    """open_clip weights (file, or a local dir / 'local-dir:DIR' with open_clip_model.safetensors or
    open_clip_pytorch_model.bin) -> the clip backend's towers."""
    p = resolve_open_clip_file(path)
    if getattr(model, "family", None) == "rsrefseg":
        from .rsrefseg import load_towers_weights

        return load_towers_weights(model, path)
    if not hasattr(model.union_encoder.backend, "clip"):
        raise CheckpointError("open_clip weights need a clip-backend model (e.g. preset 'clip-b' or 'nano')")
    sd = read_state_dict(p)
    return strict_fill(model, sd, open_clip_key_map(model), kind="open_clip", path=str(p))


def load_beit3_weights(model, path, spm: Optional[Union[str, Path]] = None) -> LoadReport:
    """BEiT-3 weights as microsoft/unilm ships them -> the beit3 backend (keys other than beit3.* are task heads
    of that release and are dropped, as the authors' non-strict load does); `spm` sets the tokenizer file."""
    if not hasattr(model.union_encoder.backend, "beit3"):
        raise CheckpointError("BEiT-3 weights need a beit3-backend model (e.g. preset 'paper' or 'tiny')")
    sd = read_state_dict(path)
    report = strict_fill(model, sd, beit3_key_map(model), kind="beit3", path=str(path), allow_unmapped=True)
    if spm is not None:
        set_spm(model, spm)
    return report


def set_spm(model, spm):
    p = _need_file(Path(spm), "sentencepiece tokenizer file")
    model.cfg.union.spm_path = str(p.resolve())
    model.union_encoder.cfg.spm_path = str(p.resolve())
    model.union_encoder.set_tokenizer(None)


def load_official_weights(model, path) -> LoadReport:
    """The authors' released directory (or one of its weight files) -> a beit3-backend model, strictly."""
    from .release import read_release_tensors  # one reader of release layouts (release.py imports this module)

    sd, src, _ = read_release_tensors(path)
    sd = _strip_official(sd)
    return strict_fill(model, sd, official_key_map(model), kind="official", path=src,
                       unused=official_unused(model), required=set(model.state_dict().keys()))


def export_official_state_dict(model) -> Dict[str, torch.Tensor]:
    """Our tensors under the authors' key names (the mapped subset; OFFICIAL_UNUSED keys are not produced)."""
    sd = model.state_dict()
    return {t: sd[o] for t, o in official_key_map(model).items()}


def export_sam2_state_dict(model) -> Dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {t: sd[o] for t, o in sam2_key_map(model).items()}


# ================================================================================================ own format
def _tokenizer_blob(model) -> Optional[bytes]:
    ue = getattr(model, "union_encoder", None)
    if ue is None:
        return None
    if ue.cfg.backend != "beit3":
        return None
    tok = ue._tokenizer
    if tok is not None and getattr(tok, "proto", None) is not None:
        return tok.proto
    from .union_encoder import resolve_asset

    p = resolve_asset(ue.cfg.spm_path)
    return p.read_bytes() if p is not None and p.is_file() else None


def save_model(model, path) -> Path:
    """Our format: config + state dict (+ the sentencepiece model of a beit3 backend): the file alone rebuilds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": FORMAT, "config": model.cfg.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    tok = _tokenizer_blob(model)
    if tok is not None:
        blob["tokenizer_spm"] = torch.frombuffer(bytearray(tok), dtype=torch.uint8)
    if hasattr(model, "checkpoint_extras"):  # other families (RSRefSeg: its tokenizer file)
        blob.update(model.checkpoint_extras())
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def _load_own(path: Path, obj=None):
    from .config import ModelConfig
    from .model import RS2SAM2
    from .union_encoder import XLMRTokenizer

    if obj is None:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if obj["config"].get("family") == "rsrefseg":
        from .rsrefseg_config import RSRefSegConfig

        cfg = RSRefSegConfig.from_dict(obj["config"])
        model = _construct(cfg, empty=True)
        model.load_report = strict_fill(model, obj["state_dict"], {k: k for k in model.state_dict()},
                                        kind="rs2sam2", path=str(path), required=set(model.state_dict()))
        model.restore_extras(obj)
        return model
    cfg = ModelConfig.from_dict(obj["config"])
    model = _construct(cfg, empty=True)
    sd = obj["state_dict"]
    report = strict_fill(model, sd, {k: k for k in model.state_dict()}, kind="rs2sam2", path=str(path),
                         required=set(model.state_dict()))
    if "tokenizer_spm" in obj:
        ue = model.union_encoder
        limit = cfg.union.max_text_positions - 2
        mt = min(cfg.union.max_text_tokens, limit) if cfg.union.max_text_tokens else limit
        ue.set_tokenizer(XLMRTokenizer(proto=bytes(obj["tokenizer_spm"].numpy().tobytes()), max_tokens=mt))
    model.load_report = report
    return model


@contextlib.contextmanager
def init_empty_parameters():
    """Create parameters on the meta device while modules are built (their random init then costs nothing);
    buffers stay real. Same idea as accelerate's init_empty_weights."""
    orig = nn.Module.register_parameter

    def register(module, name, param):
        orig(module, name, param)
        if param is not None:
            p = module._parameters[name]
            module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = orig


def _construct(cfg, empty: bool = False):
    """Build a model; empty=True skips random initialisation of parameters (they are created on the meta device and
    materialised uninitialised) when a strict load will overwrite every tensor."""
    from .model import RS2SAM2

    if getattr(cfg, "family", "rs2sam2") == "rsrefseg":
        from .rsrefseg import RSRefSeg as RS2SAM2  # noqa: N814  (the RSRefSeg family)
    if not empty:
        return RS2SAM2(cfg)
    with init_empty_parameters():
        model = RS2SAM2(cfg)
    return _materialise(model)


def _materialise(model):
    for mod in model.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_meta:
                mod._parameters[name] = nn.Parameter(torch.empty_like(p, device="cpu"), requires_grad=p.requires_grad)
    return model


# ================================================================================================ detection
def detect_kind(path) -> str:
    """'official' | 'rs2sam2' | 'sam2' | 'open_clip' | 'beit3' from the file/dir contents (not its name)."""
    p = str(path)
    if p.startswith("local-dir:"):
        return "open_clip"
    path = Path(p)
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return "open_clip"
        if (path / "config.json").is_file():
            return "official"
        for n in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
            if (path / n).is_file():
                return "official"
        raise CheckpointError(f"cannot tell what kind of checkpoint directory {path.resolve()} is: expected the "
                              "authors' release (config.json + model.safetensors | index | pytorch_model.bin) or an "
                              "open_clip dir (open_clip_config.json)")
    _need_file(path, "checkpoint")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
    else:
        obj = _torch_load(path)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return "rs2sam2"
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            keys = list(obj["model"].keys())
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            keys = list(obj["state_dict"].keys())
        else:
            keys = list(obj.keys()) if isinstance(obj, dict) else []
    return _kind_from_keys(keys, path)


def _kind_from_keys(keys: List[str], path) -> str:
    ks = [k for k in keys if isinstance(k, str)]
    stripped = [re.sub(r"^(module\.evf_model\.|evf_model\.)", "", k) for k in ks]
    if any(k.startswith(("mm_extractor.", "visual_model.")) for k in stripped):
        return "official"
    if any(k.startswith("sam_mask_decoder.") for k in ks) and any(k.startswith("image_encoder.") for k in ks):
        return "sam2"
    if any(k.startswith("beit3.") for k in ks):
        return "beit3"
    if ("token_embedding.weight" in ks or "text.token_embedding.weight" in ks) and any(
            k.startswith("visual.") for k in ks):
        return "open_clip"
    raise CheckpointError(f"cannot tell what kind of checkpoint {Path(path).resolve()} is (first keys: {ks[:5]})")


def _base_model(base):
    from .config import PRESETS, ModelConfig

    if base is None:
        return None
    if isinstance(base, nn.Module):
        return base
    cfg = base if (isinstance(base, ModelConfig) or hasattr(base, "to_dict")) else PRESETS[base]
    return _construct(cfg)


def load_weights(model, path, kind: Optional[str] = None, **kw) -> LoadReport:
    """Fill an existing model from any supported checkpoint kind (detected unless given)."""
    kind = kind or detect_kind(path)
    if kind == "sam2":
        return load_sam2_weights(model, path)
    if kind == "open_clip":
        return load_open_clip_weights(model, path)
    if kind == "beit3":
        return load_beit3_weights(model, path, spm=kw.get("spm"))
    if kind == "official":
        rep = load_official_weights(model, path)
        _attach_release_tokenizer(model, Path(path))
        return rep
    if kind == "rs2sam2":
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        sd = obj["state_dict"]
        return strict_fill(model, sd, {k: k for k in model.state_dict()}, kind="rs2sam2", path=str(path),
                           required=set(model.state_dict()))
    raise ValueError(f"unknown checkpoint kind {kind!r}")


def _attach_release_tokenizer(model, path: Path):
    from .release import release_tokenizer

    d = path if path.is_dir() else path.parent
    ue = model.union_encoder.cfg
    tok = release_tokenizer(d, max_tokens=ue.max_text_positions - 2)
    if tok is not None:  # the slow XLM-R tokenizer's ids, incl. the directory's added tokens (release.py)
        set_spm(model, tok.path)
        model.union_encoder.set_tokenizer(tok)


def load_model(path, base=None, **kw):
    """Load a model from a checkpoint of any supported kind (see module docstring).

    "demo" resolves to the bundled demo checkpoint (model_core/assets/demo.pt). Whole-model kinds (our format, the
    authors' release) need nothing else; part kinds (sam2, open_clip, beit3) need `base` (preset name, ModelConfig
    or model) whose remaining parts keep their weights."""
    from .config import PRESETS

    if str(path) == "demo":
        if not DEMO_PATH.is_file():
            raise FileNotFoundError(f"the bundled demo checkpoint is missing: looked for {DEMO_PATH} "
                                    "(it is produced by the training package)")
        path = DEMO_PATH
    p = str(path)
    if not p.startswith("local-dir:") and not Path(p).exists():
        raise FileNotFoundError(f"checkpoint not found: looked for {Path(p).resolve()}")
    kind = kw.pop("kind", None) or detect_kind(path)
    if kind == "rs2sam2":
        return _load_own(Path(path))
    if kind == "official":
        if not isinstance(base, nn.Module):  # built on the meta device, weights memory-mapped and assigned
            from .release import load_release  # (model_core/release.py); base: None (paper), a preset or config

            return load_release(Path(path), cfg=PRESETS[base] if isinstance(base, str) else base)
        model = _base_model(base)
        model.load_report = load_weights(model, path, kind="official")
        return model
    if base is None:
        raise ValueError(f"{path} is a {kind} checkpoint, which fills only part of a model: pass base= a preset "
                         f"({', '.join(PRESETS)}), a ModelConfig or a model")
    model = _base_model(base)
    model.load_report = load_weights(model, path, kind=kind, **kw)
    return model
