"""Stock SAM2 checkpoints (`{"model": state_dict}` as facebookresearch ships them) into the SAM2 part of a model.

Every family here builds SAM2's image encoder, prompt encoder, mask decoder and no_mem_embed under SAM2's own names,
so one key map serves them all; what a family adds inside that part (adapters, text attention, LoRA) is not in such
a file and keeps its weights.
"""
from __future__ import annotations

import torch

from .checkpoints import LoadReport, read_state_dict, strict_fill

# Prefixes of the SAM2 (video model) state dict that our image-only models drop on purpose.
SAM2_UNUSED: dict[str, str] = {
    "memory_attention.": "SAM2 video memory attention: not used for single images",
    "memory_encoder.": "SAM2 video memory encoder: not used for single images",
    "maskmem_tpos_enc": "temporal position encoding of the video memory: not used",
    "no_mem_pos_enc": "video-memory position encoding: not used (only no_mem_embed is added)",
    "no_obj_ptr": "video object pointer: not used",
    "obj_ptr_proj.": "video object-pointer projection: not used",
    "mask_downsample.": "downsampler for mask inputs of the video model: not used",
}


def is_sam_part(k: str) -> bool:
    """Our key lies in the SAM2 part of a model."""
    return k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder.")) or k == "no_mem_embed"


def is_added_to_sam_part(k: str) -> bool:
    """Our additions inside the SAM2 part (not in a stock SAM2 checkpoint)."""
    return (".cross_adapter." in k or ".mlp_adapter." in k or k.startswith("mask_decoder.text_attn.")
            or k.rsplit(".", 1)[-1].startswith("lora_"))  # LoRA tensors (RSRefSeg)


def stock_sam2_name(k: str) -> str | None:
    """Our key -> key in a stock SAM2 state dict (None if ours is not a stock SAM2 tensor)."""
    if not is_sam_part(k) or is_added_to_sam_part(k):
        return None
    if k.startswith("prompt_encoder."):
        return "sam_prompt_encoder." + k[len("prompt_encoder."):]
    if k.startswith("mask_decoder."):
        return "sam_mask_decoder." + k[len("mask_decoder."):]
    return k


def sam2_key_map(model) -> dict[str, str]:
    """{stock SAM2 key: our key} for the SAM2 part."""
    return {t: k for k in model.state_dict().keys() if (t := stock_sam2_name(k)) is not None}


def load_sam2_weights(model, path) -> LoadReport:
    """Official SAM2 checkpoint -> the SAM2 part of `model` (strict on the SAM2 part; what a family adds there is
    not in such a file and stays as it is)."""
    sd = read_state_dict(path)
    return strict_fill(model, sd, sam2_key_map(model), kind="sam2", path=str(path), unused=SAM2_UNUSED)


def export_sam2_state_dict(model) -> dict[str, torch.Tensor]:
    """The SAM2 part under stock SAM2 key names."""
    sd = model.state_dict()
    return {t: sd[o] for t, o in sam2_key_map(model).items()}
