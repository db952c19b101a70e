"""The loss of a fine-tune with negatives: masks learn from positives only, presence from every sample.

As SAM3 trains its presence token (../shared/RASTER_REFERRING.md): on a negative (a sentence about something the
image does not show) the mask loss is switched off and only presence learns (target 0); positives add the model's
own mask loss and presence target 1. The presence head reads the multimodal class token and the model's mask
statistics, so its gradient also reaches the model: presence trains jointly with it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def joint_loss(model, out: dict, target: torch.Tensor, present: torch.Tensor,
               presence_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """(total, parts): the model's mask loss over the positives (zero without any) + presence_weight x BCE."""
    if "presence_logits" not in out:
        raise ValueError("negatives need a model with a presence head (heads.presence)")
    present = present.to(out["presence_logits"].device, torch.float32)
    pos = present > 0.5
    presence = F.binary_cross_entropy_with_logits(out["presence_logits"].float(), present)
    parts = {"presence": float(presence.detach()), "positives": float(pos.float().mean())}
    if pos.any():
        mask_loss, mask_parts = model.loss({k: v[pos] for k, v in out.items()}, target[pos])
    else:  # a batch of negatives only: the mask loss weighs 0 (computed so that every step logs the same parts)
        mask_loss, mask_parts = model.loss(out, target)
        mask_loss = 0.0 * mask_loss
    total = presence_weight * presence + mask_loss
    parts.update(mask_parts)
    parts["total"] = float(total.detach())
    return total, parts
