"""Interpolate the weights of a model and its fine-tune (WiSE-FT, Wortsman et al. 2022).

    .venv/bin/python -m training.interpolate model_core/assets/demo.pt runs/demo_nano_stage5/best.pt \
        --alpha 0.5 --out runs/stage5_wise50.pt

A fine-tune on a broader world can lose some of what the start model knew about its own world; the straight line
between the two weight sets (same architecture, one basin since one starts from the other) often keeps most of both.
Writes a model_core checkpoint: floating weights (1 - alpha) x start + alpha x fine-tune in fp32, everything else
(config, integer buffers, train_meta) from the fine-tune, the interpolation recorded in train_meta. Choose alpha on
val.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from model_core.checkpoints import save_atomic


def interpolate(start: str, tuned: str, alpha: float, out: str) -> Path:
    """Write (1 - alpha) x start + alpha x tuned (floating tensors) as a checkpoint at ``out``."""
    a = torch.load(start, map_location="cpu", weights_only=True)
    b = torch.load(tuned, map_location="cpu", weights_only=True)
    if set(a["state_dict"]) != set(b["state_dict"]):
        raise ValueError("the two checkpoints hold different weights: not one architecture")
    sd = {}
    for k, vb in b["state_dict"].items():
        va = a["state_dict"][k]
        sd[k] = (torch.lerp(va.float(), vb.float(), float(alpha)) if vb.is_floating_point() else vb)
    ck = {**b, "state_dict": sd}
    ck["train_meta"] = {**b.get("train_meta", {}),
                        "interpolation": {"start": str(start), "tuned": str(tuned), "alpha": float(alpha)}}
    return save_atomic(ck, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("start", help="the model the fine-tune started from")
    ap.add_argument("tuned", help="the fine-tuned model")
    ap.add_argument("--alpha", type=float, required=True, help="0 = start, 1 = fine-tune")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    path = interpolate(a.start, a.tuned, a.alpha, a.out)
    print(json.dumps({"out": str(path), "alpha": a.alpha}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
