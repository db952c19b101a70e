"""Referring-segmentation metrics exactly as the field defines them (RS2-SAM2 test.py; MODEL.md, contract sec. 6).

Per sample (one sentence): I = |pred AND gt|, U = |pred OR gt|, IoU = I / U, and IoU = 0 when U == 0 (an empty
ground truth predicted empty counts 0, as in the authors' code).
- Pr@X (X in 0.5 .. 0.9): share of samples with IoU >= X;
- oIoU: sum of I over the split / sum of U over the split;
- mIoU: mean of the per-sample IoU.
Values are fractions in [0, 1] (the papers print them x 100; `to_markdown` does too).

Where the scoring happens: by default at the ground-truth mask's own size (the prediction is resized to it).
`score_size=1024` reproduces the authors' convention: the prediction at 1024 x 1024 and the ground truth
nearest-resized to 1024 x 1024 (so 800 x 800 RRSIS-D and 512 x 512 RefSegRS masks are upsampled before counting).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def iou_of(i: int, u: int) -> float:
    return float(i) / float(u) if u > 0 else 0.0


@dataclass
class RefMetrics:
    """Accumulates per-sample I and U; `summary()` gives Pr@X, oIoU, mIoU and n."""

    inter: list[int] = field(default_factory=list)
    union: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, pred: np.ndarray, gt: np.ndarray, sample_id: str | None = None) -> float:
        i, u = intersection_union(pred, gt)
        return self.add_counts(i, u, sample_id)

    def add_counts(self, i: int, u: int, sample_id: str | None = None) -> float:
        if i < 0 or u < i:
            raise ValueError(f"invalid counts I={i}, U={u}")
        self.inter.append(int(i))
        self.union.append(int(u))
        self.ids.append(sample_id if sample_id is not None else str(len(self.ids)))
        return iou_of(i, u)

    def ious(self) -> np.ndarray:
        return np.array([iou_of(i, u) for i, u in zip(self.inter, self.union)], dtype=np.float64)

    def by(self, key) -> dict[str, dict]:
        """summary() per group: `key(index)` names the group of the index-th sample (e.g. its sentence kind)."""
        groups: dict[str, RefMetrics] = {}
        for k, (i, u, sid) in enumerate(zip(self.inter, self.union, self.ids)):
            groups.setdefault(str(key(k)), RefMetrics()).add_counts(i, u, sid)
        return {name: groups[name].summary() for name in sorted(groups)}

    def summary(self) -> dict:
        n = len(self.inter)
        ious = self.ious()
        out = {f"pr@{t}": (float((ious >= t).mean()) if n else 0.0) for t in THRESHOLDS}
        total_u = sum(self.union)
        out["oIoU"] = float(sum(self.inter)) / total_u if total_u > 0 else 0.0
        out["mIoU"] = float(ious.mean()) if n else 0.0
        out["n"] = n
        return out


def score_pair(prob: np.ndarray, gt: np.ndarray, threshold: float = 0.5, score_size: int | None = None):
    """Binarise a probability map and bring prediction and ground truth to the scoring size.

    prob: float HxW (any size; resized bilinearly to the scoring size before thresholding).
    gt: bool H'xW'. score_size None: score at gt's size; an int: both at score_size x score_size (gt nearest).
    Returns (pred bool, gt bool) of one shape.
    """
    gt = np.asarray(gt, bool)
    size = gt.shape if score_size is None else (int(score_size), int(score_size))
    p = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
    if tuple(p.shape[-2:]) != tuple(size):
        p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
    pred = (p[0, 0] > threshold).numpy()
    if gt.shape != tuple(size):
        g = torch.from_numpy(gt.astype(np.uint8))[None, None].float()
        gt = (F.interpolate(g, size=size, mode="nearest")[0, 0] > 0.5).numpy()
    return pred, gt


def to_markdown(results: dict[str, dict], title: str | None = None) -> str:
    """One row per split (then one per group of its `by_group`, if any): Pr@0.5..0.9, oIoU, mIoU in percent (as the
    papers print them), and n."""
    head = "| split | " + " | ".join(f"Pr@{t}" for t in THRESHOLDS) + " | oIoU | mIoU | n |"
    sep = "|---" * (len(THRESHOLDS) + 4) + "|"
    rows = []

    def row(label, m):
        vals = [f"{100 * m[f'pr@{t}']:.2f}" for t in THRESHOLDS] + [f"{100 * m['oIoU']:.2f}",
                                                                      f"{100 * m['mIoU']:.2f}", str(m["n"])]
        rows.append(f"| {label} | " + " | ".join(vals) + " |")

    for split, m in results.items():
        row(split, m)
        for group, gm in (m.get("by_group") or {}).items():
            row(f"{split}: {group}", gm)
    lines = ([f"### {title}", ""] if title else []) + [head, sep] + rows
    return "\n".join(lines) + "\n"
