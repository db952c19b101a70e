"""Teach a trained RS2-SAM2 model presence: is the referent in this tile at all?

    .venv/bin/python -m training.presence --model model_core/assets/demo.pt --out runs/presence/demo.pt
        [--train-mosaics 8] [--val-mosaics 3] [--steps 600]

The model stays frozen; only its presence head (model_core/presence.py) learns, from the class token and mask
statistics the frozen model computes, so features are extracted once and the head trains in seconds.
Samples come from mosaics of synthetic scenes (training/datasets/mosaic.py) seen as the engine sees a raster: fine
tiles at the model's input size and the coarse windows of its search (2x and 4x, shrunk to the input size).
Each window is paired with
- positives: the classes and colours it shows (singular and plural names);
- free negatives: classes it does not show;
- hard negatives: a colour no object of that class has in the window ("the red-roofed building" over grey roofs);
- vocabulary negatives: objects the generator never draws, from a list disjoint from the benchmark's
  (bench/raster_referring.py), so the benchmark's absent referents stay unseen.
Objects with only a sliver in the window (under ``min_pixels``) make their pair ambiguous: it is left out.
Train and validation use different seed streams; the test split (the benchmark's) is not touched.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_core.checkpoints import save_atomic

from .datasets.mosaic import build_mosaic
from .datasets.negatives import TRAIN_ABSENT, colour_text
from .datasets.vocabulary import NAMES, ROOF_COLOURS, VEHICLE_COLOURS


@dataclass
class Pair:
    window: np.ndarray  # uint8 (S, S, 3) at the model's input size
    text: str
    label: int


def _names(cls: str) -> list[str]:
    sing, plur = NAMES[cls]
    return [f"the {n}" for n in sing] + [f"the {n}" for n in plur if n not in sing]


def window_pairs(image, labels, objects, r, c, side, size, rng, min_pixels: int = 16, n_absent: int = 2):
    """The labelled (window, text) pairs of one window of a mosaic."""
    from PIL import Image

    crop = image[r:r + side, c:c + side]
    lab = labels[r:r + side, c:c + side]
    if side != size:
        crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
    ids, counts = np.unique(lab[lab > 0], return_counts=True)
    seen = {int(i): int(n) for i, n in zip(ids, counts, strict=True)}
    by_label = {o.label: o for o in objects}
    clear = {cls: set() for cls in NAMES}       # colours (or None) clearly shown, per class
    sliver = {cls: set() for cls in NAMES}
    for lid, n in seen.items():
        o = by_label.get(lid)
        if o is None:
            continue
        (clear if n >= min_pixels else sliver)[o.cls].add(o.colour)
    pairs = []
    for cls in NAMES:
        shown, partial = clear[cls], sliver[cls]
        text = str(rng.choice(_names(cls)))
        if shown:
            pairs.append(Pair(crop, text, 1))
        elif not partial:
            pairs.append(Pair(crop, text, 0))
        palette = ROOF_COLOURS if cls == "building" else VEHICLE_COLOURS if cls == "vehicle" else None
        if palette and (shown or partial):
            for colour in rng.permutation(list(palette))[:2]:
                if colour in shown:
                    pairs.append(Pair(crop, colour_text(cls, colour, rng), 1))
                elif colour not in partial:
                    pairs.append(Pair(crop, colour_text(cls, colour, rng), 0))
    for text in rng.choice(TRAIN_ABSENT, size=n_absent, replace=False):
        pairs.append(Pair(crop, str(text), 0))
    return pairs


def make_pairs(split: str, n_mosaics: int, size: int, seed: int, cells: int = 4) -> list[Pair]:
    rng = np.random.default_rng([seed, {"train": 0, "val": 1}[split]])
    pairs: list[Pair] = []
    excludes = [(), ("tank",), ("water",), ("vehicle",), ("tree",), ("tank", "water")]
    for i in range(n_mosaics):
        m = build_mosaic(seed, split, 500 + i, cells, exclude=excludes[i % len(excludes)])
        H = m.labels.shape[0]
        for side in (size, 2 * size, 4 * size):
            for r in range(0, H - side + 1, side):  # windows of each size tile the mosaic without overlap
                for c in range(0, H - side + 1, side):
                    pairs += window_pairs(m.image, m.labels, m.objects, r, c, side, size, rng)
    return pairs


@torch.no_grad()
def features(model, pairs: list[Pair], batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(class tokens (N, W), mask statistics (N, 4)) of the frozen model for every pair."""
    from model_core.presence import mask_statistics

    toks, stats = [], []
    for k in range(0, len(pairs), batch):
        chunk = pairs[k:k + batch]
        px = torch.from_numpy(np.stack([p.window for p in chunk])).permute(0, 3, 1, 2).float() / 255.0
        out = model(px, [p.text for p in chunk])
        toks.append(out["class_token"].float())
        stats.append(mask_statistics(out["pseudo_mask"], out["low_res_logits"]))
        if (k // batch) % 50 == 0:
            print(f"  features {k + len(chunk)}/{len(pairs)}", file=sys.stderr, flush=True)
    return torch.cat(toks), torch.cat(stats)


def train_head(head, tok, st, y, steps: int, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Full-batch AdamW on cached features, classes balanced."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-3)
    pos = float(y.sum())
    w = torch.where(y > 0, (len(y) - pos) / max(pos, 1.0), torch.ones_like(y))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(tok, st), y, weight=w)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def evaluate(prob: np.ndarray, y: np.ndarray) -> dict:
    """Tile-level accuracy of the presence decision at 0.5, and the ranking quality (ROC AUC)."""
    order = np.argsort(prob)
    ranks = np.empty(len(prob))
    ranks[order] = np.arange(1, len(prob) + 1)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    auc = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0) if n1 and n0 else float("nan")
    dec = prob >= 0.5
    return {"n": int(len(y)), "positives": n1, "auc": float(auc), "tpr": float(dec[y == 1].mean()),
            "fpr": float(dec[y == 0].mean())}


def write_with_head(src, dst, head, report: dict, threshold: float = 0.5) -> Path:
    """The source checkpoint with the head added: config says so (with its decision ``threshold``), its weights
    stored in the source's float dtype beside the frozen ones (which are copied unchanged), the report in
    train_meta."""
    ck = torch.load(src, map_location="cpu", weights_only=True)
    ck["config"].setdefault("heads", {}).update(presence=True, presence_threshold=float(threshold))
    dtype = next(v.dtype for v in ck["state_dict"].values() if v.is_floating_point())
    ck["state_dict"].update({f"presence_head.{k}": v.detach().to(dtype) for k, v in head.state_dict().items()})
    ck["train_meta"] = {**ck.get("train_meta", {}), "presence": json.loads(json.dumps(report))}
    return save_atomic(ck, dst)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="model_core/assets/demo.pt")
    ap.add_argument("--out", required=True, help="checkpoint to write (the model with its trained presence head)")
    ap.add_argument("--train-mosaics", type=int, default=8)
    ap.add_argument("--val-mosaics", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=2401)
    ap.add_argument("--features", help="file caching the frozen model's features (reused when it exists)")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="the presence decision written into the checkpoint (calibrate it on held-out mosaics with "
                         "absent referents: bench/raster_referring.py --split val)")
    a = ap.parse_args(argv)

    from model_core import load_model
    from model_core.presence import PresenceHead

    model = load_model(a.model).float().eval()
    width = model.cfg.union.width
    size = model.input_size
    cache = Path(a.features) if a.features else None
    if cache is not None and cache.exists():  # the frozen model's features of an earlier run with the same data
        blob = torch.load(cache, weights_only=True)
    else:
        train = make_pairs("train", a.train_mosaics, size, a.seed)
        val = make_pairs("val", a.val_mosaics, size, a.seed)
        print(f"{len(train)} train pairs ({sum(p.label for p in train)} positive), {len(val)} val pairs",
              file=sys.stderr)
        (t_tok, t_st), (v_tok, v_st) = features(model, train), features(model, val)
        blob = {"t_tok": t_tok, "t_st": t_st, "v_tok": v_tok, "v_st": v_st}
        blob["yt"] = torch.tensor([p.label for p in train], dtype=torch.float32)
        blob["yv"] = torch.tensor([p.label for p in val], dtype=torch.float32)
        if cache is not None:
            torch.save(blob, cache)
    t_tok, t_st, yt = blob["t_tok"], blob["t_st"], blob["yt"]
    v_tok, v_st, yv = blob["v_tok"], blob["v_st"], blob["yv"].numpy()
    head = PresenceHead(width)
    losses = train_head(head, t_tok, t_st, yt, a.steps)
    with torch.no_grad():
        pv = torch.sigmoid(head(v_tok, v_st)).numpy()
    report = {"train": {"pairs": len(yt), "positives": int(yt.sum()), "final_loss": losses[-1]},
              "val": evaluate(pv, yv), "val_pseudo_peak": evaluate(v_st[:, 0].numpy(), yv),
              "command": " ".join(sys.argv)}
    report["threshold"] = a.threshold
    write_with_head(a.model, a.out, head, report, a.threshold)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
