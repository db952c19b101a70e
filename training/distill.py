"""Distillation from a frozen teacher (learning without forgetting, Li & Hoiem 2016): keeps the masks a fine-tune's
starting model drew while the fine-tune teaches it something new.

Every colour fine-tune of the demo (stages 7f-7o, contrast pairs) drew cars smaller than the demo it started from
("the vehicles" -0.06 to -0.10 IoU on the val mosaics, the same polygons with fewer pixels), with the Hiera trunk
frozen or not: a contrast pair teaches "not this car" on a car, and every car's mask logits drift down. Here the
student's mask logits are pulled towards the teacher's probabilities on the samples that teach nothing new (the
positives that are not contrast pairs) where the teacher drew the target right (IoU >= ``min_iou``): the teacher
also reads "red" roofs as orange in the generator's own colour sentences, and a pull there taught that confusion
back (stage 7p: colours read right 0.64 / 0.77 after 1,000 steps, where 7f without a teacher read 0.97 / 0.93).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class Teacher:
    """A frozen model and the weight of its distillation term."""

    def __init__(self, model: torch.nn.Module, weight: float, min_iou: float = 0.5):
        if weight <= 0:
            raise ValueError(f"train.distill.weight must be > 0 (got {weight})")
        if not 0.0 <= min_iou <= 1.0:
            raise ValueError(f"train.distill.min_iou must be in [0, 1] (got {min_iou})")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.weight = float(weight)
        self.min_iou = float(min_iou)

    @classmethod
    def from_config(cls, spec: dict | None, device: torch.device) -> Teacher | None:
        """``train.distill: {teacher: checkpoint, weight: 1.0, min_iou: 0.5}``, or None without one."""
        if not spec:
            return None
        if not spec.get("teacher"):
            raise ValueError("train.distill needs a teacher checkpoint (train.distill.teacher)")
        import model_core

        return cls(model_core.load_model(spec["teacher"]).to(device), float(spec.get("weight", 1.0)),
                   float(spec.get("min_iou", 0.5)))

    def loss(self, student_logits: torch.Tensor, pixels: torch.Tensor, texts: list[str], target: torch.Tensor,
             keep: torch.Tensor) -> torch.Tensor:
        """Mean per-pixel BCE of the student's mask logits against the teacher's probabilities, over the samples
        ``keep`` marks whose ``target`` the teacher draws at IoU >= ``min_iou`` (zero, still in the graph, without
        any)."""
        zero = 0.0 * student_logits.sum()
        if not bool(keep.any()):
            return zero
        idx = keep.nonzero().flatten()
        with torch.no_grad():
            teacher = self.model(pixels[idx], [texts[int(i)] for i in idx])["logits"].float()
            drawn, truth = teacher > 0, target[idx] > 0.5
            inter = (drawn & truth).flatten(1).sum(1)
            union = (drawn | truth).flatten(1).sum(1)
            right = inter >= self.min_iou * union.clamp(min=1)
        if not bool(right.any()):
            return zero
        return F.binary_cross_entropy_with_logits(student_logits[idx[right]].float(), torch.sigmoid(teacher[right]))
