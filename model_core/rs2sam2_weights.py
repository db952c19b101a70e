"""Weights of other formats for the RS2-SAM2 family: the authors' key layout, open_clip towers (clip backend) and
BEiT-3 (beit3 backend). The authors' release folder itself is read by release.py; stock SAM2 by sam2_weights.py.

The authors' layout: keys as in official_state_dict.json, mapped by `official_key_map(model)`; what they ship that
we drop on purpose is `OFFICIAL_UNUSED`, with the reason.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from .checkpoints import CheckpointError, LoadReport, need_file, read_state_dict, resolve_open_clip_file, strict_fill
from .sam2_weights import SAM2_UNUSED, is_added_to_sam_part, is_sam_part, stock_sam2_name

# Prefixes of the authors' checkpoint keys we drop on purpose, with the reason.
OFFICIAL_UNUSED: dict[str, str] = {
    **{"visual_model." + k: v for k, v in SAM2_UNUSED.items()},
    "meo_linear.": "defined in their EvfSamModel but never called in forward",
    "visual_model.image_encoder.trunk.blocks.47.Space_Adapter.lvfusion_module.":
        "text-update path of the last Hiera block: its updated text is discarded, so we do not build it",
    "visual_model.image_encoder.trunk.blocks.47.Space_Adapter.text_out_linear.":
        "text-update path of the last Hiera block: its updated text is discarded, so we do not build it",
}

# Prefixes of the authors' keys in raw DeepSpeed / zero_to_fp32 files, stripped when present.
OFFICIAL_PREFIXES = ("module.evf_model.", "evf_model.")

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

_OFFICIAL_OUTSIDE_SAM = {
    "mask_prompt.attn.": "vmtoken.multihead_attn.",
    "mask_prompt.proj.": "mask_linear.",
    "mask_prompt.score.": "mask_product.",
    "sparse_prompt.0.": "text_hidden_fcs.0.0.",
    "sparse_prompt.2.": "text_hidden_fcs.0.2.",
    "text_proj.": "text_feat_linear.",
    "boundary_head.": "text2one_linear.",
}


# ================================================================================================ the authors' layout
def _official_name(k: str) -> str | None:
    """Our key -> the authors' key (None if it has no counterpart)."""
    if k.startswith("union_encoder.backend.beit3."):
        return "mm_extractor.beit3." + k[len("union_encoder.backend.beit3."):]
    if k.startswith("mask_decoder.text_attn."):
        return "visual_model.sam_mask_decoder.vlfusion_module.multihead_attn." + k[len("mask_decoder.text_attn."):]
    if is_sam_part(k):
        if is_added_to_sam_part(k):
            for a, b in _ADAPTER_RENAMES:
                if a in k:
                    return "visual_model." + k.replace(a, b)
            return None
        return "visual_model." + stock_sam2_name(k)
    for a, b in _OFFICIAL_OUTSIDE_SAM.items():
        if k.startswith(a):
            return b + k[len(a):]
    return None


def official_key_map(model) -> dict[str, str]:
    """{authors' key: our key} for every tensor of `model` that has a counterpart in the authors' checkpoint.

    Needs a beit3-backend model (the authors' union encoder); for the `paper` preset it covers exactly the keys of
    official_state_dict.json minus those under OFFICIAL_UNUSED."""
    out = {}
    for k in model.state_dict().keys():
        theirs = _official_name(k)
        if theirs is None:
            raise CheckpointError(f"our tensor {k!r} has no counterpart in the authors' checkpoint layout "
                                  f"(is this a beit3-backend model?)")
        out[theirs] = k
    return out


def official_unused(model) -> dict[str, str]:
    """OFFICIAL_UNUSED adapted to the model's depth (the last block's text-update path)."""
    n = len(model.image_encoder.trunk.blocks)
    out = {k: v for k, v in OFFICIAL_UNUSED.items() if ".blocks.47." not in k}
    if not model.cfg.fusion.update_text_in_last_block:
        for k, v in OFFICIAL_UNUSED.items():
            if ".blocks.47." in k:
                out[k.replace(".blocks.47.", f".blocks.{n - 1}.")] = v
    return out


def strip_official_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' keys without the DeepSpeed wrappers' prefixes (OFFICIAL_PREFIXES)."""
    out = {}
    for k, v in sd.items():
        for p in OFFICIAL_PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


def has_official_keys(keys: Sequence[str]) -> bool:
    """A state dict under the authors' key names (their union encoder or their SAM2 wrapper)."""
    pattern = "^(" + "|".join(re.escape(p) for p in OFFICIAL_PREFIXES) + ")"
    return any(re.sub(pattern, "", k).startswith(("mm_extractor.", "visual_model."))
               for k in keys if isinstance(k, str))


def export_official_state_dict(model) -> dict[str, torch.Tensor]:
    """Our tensors under the authors' key names (the mapped subset; OFFICIAL_UNUSED keys are not produced)."""
    sd = model.state_dict()
    return {t: sd[o] for t, o in official_key_map(model).items()}


# ================================================================================================ backends
def open_clip_key_map(model) -> dict[str, str]:
    pre = "union_encoder.backend.clip."
    return {k[len(pre):]: k for k in model.state_dict().keys() if k.startswith(pre)}


def beit3_key_map(model) -> dict[str, str]:
    pre = "union_encoder.backend."
    return {k[len(pre):]: k for k in model.state_dict().keys() if k.startswith(pre + "beit3.")}


def load_open_clip_weights(model, path) -> LoadReport:
    """open_clip weights (file, or a local dir / 'local-dir:DIR' with open_clip_model.safetensors or
    open_clip_pytorch_model.bin) -> the clip backend's towers."""
    p = resolve_open_clip_file(path)
    if not hasattr(model.union_encoder.backend, "clip"):
        raise CheckpointError("open_clip weights need a clip-backend model (e.g. preset 'clip-b' or 'nano')")
    sd = read_state_dict(p)
    return strict_fill(model, sd, open_clip_key_map(model), kind="open_clip", path=str(p))


def load_beit3_weights(model, path, spm: str | Path | None = None) -> LoadReport:
    """BEiT-3 weights as microsoft/unilm ships them -> the beit3 backend (keys other than beit3.* are task heads
    of that release and are dropped, as the authors' non-strict load does); `spm` sets the tokenizer file."""
    if not hasattr(model.union_encoder.backend, "beit3"):
        raise CheckpointError("BEiT-3 weights need a beit3-backend model (e.g. preset 'paper' or 'tiny')")
    sd = read_state_dict(path)
    report = strict_fill(model, sd, beit3_key_map(model), kind="beit3", path=str(path), allow_unmapped=True)
    if spm is not None:
        set_spm(model, spm)
    return report


def set_spm(model, spm) -> None:
    """Make the sentencepiece file `spm` the model's tokenizer (built from it on first use)."""
    p = need_file(Path(spm), "sentencepiece tokenizer file")
    model.cfg.union.spm_path = str(p.resolve())
    model.union_encoder.cfg.spm_path = str(p.resolve())
    model.union_encoder.set_tokenizer(None)
