"""Can a recipe teach two colour words apart? A short fine-tune (not a training run): each step shows red / orange
contrast pairs (datasets/contrast.py) and, with ``--mix`` > 0, that many samples of the shipped recipe (negatives,
zoom, style families) in the same batch; every 25 steps it scores held-out images it never trains on (a red and an
orange box at random places on plain ground, one named) by the answer's mass on the named box ("inside") and off it
("elsewhere"), both over the named box's area. A model that reads both words alike scores elsewhere ~1.

    .venv/bin/python -m training.colour_probe [--model demo] [--pairs 8] [--mix 0] [--negatives 0.3]
        [--presence-weight 1.0] [--steps 200] [--recipe training/configs/demo_nano_stage6b.yaml]

Nothing is written; the model file is not changed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .datasets import build_dataset
from .datasets.vocabulary import ROOF_COLOURS
from .presence_loss import joint_loss
from .train import collate, load_config

RED, ORANGE = ROOF_COLOURS["red"], ROOF_COLOURS["orange"]
#: the shipped demo's last training stage: the recipe the pairs are mixed with
SHIPPED_RECIPE = Path(__file__).resolve().parent / "configs" / "demo_nano_stage6b.yaml"


def recipe_options(config) -> dict:
    """The training set's options of a training config (its data.options and data.train)."""
    data = load_config(str(config))["data"]
    return {**(data.get("options") or {}), **(data.get("train") or {})}


def box_pairs(n: int, side: int, rng: np.random.Generator):
    """(pixels [n,3,S,S], masks [n,1,S,S], texts): a red and an orange box that do not touch, one of them named."""
    imgs, masks, texts = [], [], []
    grounds = [(120, 128, 90), (176, 156, 120), (128, 126, 120)]
    for _ in range(n):
        img = np.asarray(grounds[int(rng.integers(len(grounds)))], np.float32) + rng.normal(0, 6, (side, side, 3))
        boxes: list = []
        while len(boxes) < 2:
            r, c = int(rng.integers(0, side - 40)), int(rng.integers(0, side - 40))
            h, w = int(rng.integers(14, 40)), int(rng.integers(14, 40))
            if all(r + h < b[0] or b[0] + b[2] < r or c + w < b[1] or b[1] + b[3] < c for b in boxes):
                boxes.append((r, c, h, w))
        named = int(rng.integers(2))
        mask = np.zeros((side, side), np.float32)
        for k, ((r, c, h, w), col) in enumerate(zip(boxes, (RED, ORANGE))):
            img[r:r + h, c:c + w] = np.asarray(col) + rng.normal(0, 8, 3)
            if k == named:
                mask[r:r + h, c:c + w] = 1.0
        imgs.append(np.clip(img, 0, 255) / 255.0)
        masks.append(mask)
        texts.append(f"the {('red', 'orange')[named]}-roofed building")
    return (torch.tensor(np.stack(imgs), dtype=torch.float32).permute(0, 3, 1, 2),
            torch.tensor(np.stack(masks))[:, None], texts)


def red_orange_pairs(ds, count: int) -> list[int]:
    """Indices of contrast pairs that name red or orange roofs in a scene showing both."""
    out = []
    for i in range(len(ds)):
        scene, expr = ds.expression(i)
        roofs = {o.colour for o in scene.objects if o.cls == "building"}
        if expr.kind == "colour" and "roof" in expr.text and {"red", "orange"} <= roofs and \
                ("red" in expr.text or "orange" in expr.text):
            out.append(i)
            if len(out) == count:
                break
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--pairs", type=int, default=8, help="red / orange pairs per step")
    ap.add_argument("--mix", type=int, default=0, help="samples of the shipped recipe per step")
    ap.add_argument("--negatives", type=float, default=0.3, help="the recipe's share of negatives")
    ap.add_argument("--presence-weight", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default=str(SHIPPED_RECIPE), help="training config whose samples are mixed in")
    a = ap.parse_args(argv)

    from rs2sam2_qgis.pipeline.model_spec import resolve_model

    torch.manual_seed(a.seed)
    model = resolve_model(a.model, allow_code=True)
    model.apply_freezing()
    model.train()
    rng = np.random.default_rng(a.seed)
    held_out = box_pairs(16, model.input_size, np.random.default_rng(a.seed + 1))
    recipe = recipe_options(a.recipe)
    pairs = build_dataset("synthetic", "train", model.input_size,
                          **{**recipe, "negatives": 0.0, "zoom": 0.0, "contrast": 1.0})
    mix = build_dataset("synthetic", "train", model.input_size, **{**recipe, "negatives": a.negatives})
    order = red_orange_pairs(pairs, a.pairs * a.steps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr)

    def score() -> str:
        model.eval()
        with torch.no_grad():
            prob = torch.sigmoid(model(held_out[0], held_out[2])["logits"])
        model.train()
        target = held_out[1]
        inside, off = float((prob * target).sum() / target.sum()), float((prob * (1 - target)).sum() / target.sum())
        return f"inside {inside:.2f} elsewhere {off:.2f}"

    print(f"step 0: {score()}", flush=True)
    for step in range(a.steps):
        batch = [pairs[i] for i in order[step * a.pairs:(step + 1) * a.pairs]]
        batch += [mix[int(j)] for j in rng.integers(0, len(mix), a.mix)]
        for sample in batch:
            sample.setdefault("present", 1.0)
        b = collate(batch)
        out = model(b["image"], b["text"])
        loss, _ = joint_loss(model, out, b["mask"], torch.as_tensor(b["present"]), a.presence_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % 25 == 0:
            print(f"step {step + 1}: loss {float(loss.detach()):.3f} {score()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
