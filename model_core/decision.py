"""Logits -> probabilities by the rule a model family was trained with, so that the analyst's threshold 0.5 is the
decision the model learned (and not a shifted one).

- "two_class": RS2-SAM2's losses (model_core/losses.py) read a logit x as the two classes [1 - x, x], so the
  trained probability is softmax([1 - x, x])[1] = sigmoid(2x - 1); > 0.5 exactly where x > 0.5, the authors' decision.
- "sigmoid": a family trained with binary cross-entropy on x (RSRefSeg) has probability sigmoid(x).

Each family names its rule in its class attribute ``prob_rule``; ``rule=`` overrides it only to measure another
rule (``rs2sam2 eval --prob-rule``).
"""
from __future__ import annotations

import torch

PROB_RULES = ("two_class", "sigmoid")


def prob_from_logits(logits: torch.Tensor, rule: str) -> torch.Tensor:
    """Probabilities from mask logits under ``rule`` (one of PROB_RULES)."""
    if rule == "two_class":
        return torch.sigmoid(2.0 * logits - 1.0)
    if rule == "sigmoid":
        return torch.sigmoid(logits)
    raise ValueError(f"unknown prob rule {rule!r} (use {' or '.join(PROB_RULES)})")
