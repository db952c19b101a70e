"""Presence: is the referent in this image at all?

Referring models trained on closed-world sets (every RRSIS image holds its referent) always answer something. Over
a raster most tiles hold nothing the sentence means, so the model must also say *whether* the referent is there,
as SAM3's presence token does. ``PresenceHead`` reads the union encoder's multimodal class token (image and text
attended together) and four statistics of the model's own masks (pseudo-mask and mask: peak and mean), and is
trained from negatives: a tile paired with a sentence about something not in it.
"""
from __future__ import annotations

import torch
import torch.nn as nn

#: mask statistics the head reads beside the class token
N_STATS = 4


def mask_statistics(pseudo_prob: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """(B, 4): pseudo-mask peak and mean probability, mask peak and mean of sigmoid(logit)."""
    p = pseudo_prob.float().flatten(1)
    m = torch.sigmoid(mask_logits.float()).flatten(1)
    return torch.stack([p.amax(1), p.mean(1), m.amax(1), m.mean(1)], dim=1)


class PresenceHead(nn.Module):
    def __init__(self, width: int, hidden: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width + N_STATS, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, class_token: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """class token (B, W) + statistics (B, 4) -> presence logit (B,)."""
        x = torch.cat([self.norm(class_token.float()), stats.float()], dim=1)
        return self.mlp(x.to(self.mlp[0].weight.dtype)).squeeze(1).float()
