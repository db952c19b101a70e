"""Does a checkpoint generalise to a look it never saw, and does it know when the referent is absent?

    .venv/bin/python -m training.generalization --model model_core/assets/demo.pt --model runs/x/best.pt \
        [--n 500] [--out runs/generalization.json]

Every model is scored on the same samples (the first model's val options, from its train_meta):
- ``val``: mIoU on the standard val mix in the generator's own look (as demo_metrics.json);
- ``held_out``: mIoU on the held-out style family (styles.HELD_OUT; same sentence mix, val seeds), beside two
  text-blind brightness baselines on those samples: Otsu's threshold per image (the brighter class is the
  foreground) and the best single global threshold of brightness (either polarity, chosen on these very samples,
  so an upper bound for any fixed threshold);
- ``presence_val`` / ``presence_held_out``: val samples with 50% negatives (negatives.py): ROC AUC of the model's
  presence and its true / false positive rates at the model's own threshold (``heads.presence_threshold``) and at
  0.3-0.9 (to choose a threshold on val).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .datasets import build_dataset
from .datasets.common import resize_image
from .datasets.styles import HELD_OUT
from .evaluate import checkpoint_meta, evaluate_model
from .presence import evaluate as presence_metrics

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def brightness_baselines(dataset, n: int) -> dict:
    """mIoU of Otsu per image and of the best global brightness threshold over the first n samples."""
    hist_fg, hist_bg, otsu = np.zeros((n, 256)), np.zeros((n, 256)), []
    for i in range(n):
        image, gt, _, _ = dataset.raw(i)
        b = np.clip(image.astype(np.float32) @ LUMA, 0, 255).astype(np.uint8)
        hist_fg[i] = np.bincount(b[gt], minlength=256)
        hist_bg[i] = np.bincount(b[~gt], minlength=256)
        t = otsu_threshold(b)
        pred = b > t
        union = (pred | gt).sum()
        otsu.append((pred & gt).sum() / union if union else 0.0)
    # pixels above t, per sample, for every t: I and U of "brighter than t" (and the complement for "darker")
    fg_above = hist_fg[:, ::-1].cumsum(1)[:, ::-1]
    bg_above = hist_bg[:, ::-1].cumsum(1)[:, ::-1]
    n_fg = hist_fg.sum(1, keepdims=True)
    bright = fg_above / np.maximum(n_fg + bg_above, 1)
    n_bg = hist_bg.sum(1, keepdims=True)
    dark = (n_fg - fg_above) / np.maximum(n_fg + (n_bg - bg_above), 1)
    best_bright, best_dark = bright.mean(0), dark.mean(0)
    k = int(np.argmax(np.maximum(best_bright, best_dark)))
    polarity = "brighter" if best_bright[k] >= best_dark[k] else "darker"
    return {"otsu_mIoU": float(np.mean(otsu)), "global_threshold_mIoU": float(max(best_bright[k], best_dark[k])),
            "global_threshold": {"value": k, "foreground": polarity}}


def otsu_threshold(b: np.ndarray) -> int:
    """Otsu's threshold of a uint8 image (foreground: values above it)."""
    hist = np.bincount(b.ravel(), minlength=256).astype(np.float64)
    w0 = hist.cumsum()
    mu = (hist * np.arange(256)).cumsum()
    w1 = w0[-1] - w0
    between = (mu[-1] * w0 - mu * w0[-1]) ** 2 / np.maximum(w0 * w1, 1e-9)
    return int(np.argmax(between))


@torch.no_grad()
def presence_scores(model, dataset, n: int, batch: int = 25) -> dict:
    """Presence AUC and rates at the model's threshold on the first n samples of a set with negatives."""
    probs, labels = [], []
    s = int(model.input_size)
    for start in range(0, n, batch):
        idx = range(start, min(n, start + batch))
        samples = [dataset.raw(i) for i in idx]
        px = torch.from_numpy(np.stack([resize_image(im, s) for im, _, _, _ in samples]))
        _, pres = model.predict_masks_and_presence(px.permute(0, 3, 1, 2).float() / 255.0,
                                                   [t for _, _, t, _ in samples])
        probs.append(pres.float().numpy())
        labels += [float(dataset.expression(i)[1].kind != "absent") for i in idx]
    prob, y = np.concatenate(probs), np.asarray(labels)
    thr = float(getattr(model, "presence_threshold", 0.5))
    res = presence_metrics(prob, y)
    dec = prob >= thr
    res.update(threshold=thr, tpr_at_threshold=float(dec[y == 1].mean()), fpr_at_threshold=float(dec[y == 0].mean()))
    res["tpr_fpr_by_threshold"] = {f"{t:.1f}": [float((prob[y == 1] >= t).mean()), float((prob[y == 0] >= t).mean())]
                                   for t in np.arange(0.3, 0.95, 0.1)}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="checkpoint (repeat to compare)")
    ap.add_argument("--n", type=int, default=500, help="samples per set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="JSON file to write")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    import model_core

    opts = {k: v for k, v in checkpoint_meta(a.model[0])["val_options"].items()
            if k not in ("length", "families", "native_share", "negatives")}
    held = {**opts, "families": [HELD_OUT], "native_share": 0.0}
    sets = {"val": build_dataset("synthetic", "val", None, **opts),
            "held_out": build_dataset("synthetic", "val", None, **held)}
    neg = {"presence_val": build_dataset("synthetic", "val", None, **opts, negatives=0.5),
           "presence_held_out": build_dataset("synthetic", "val", None, **held, negatives=0.5)}
    report = {"command": " ".join([".venv/bin/python -m training.generalization", *(argv or sys.argv[1:])]),
              "val_options": opts, "held_out_family": HELD_OUT, "n": a.n,
              "held_out_baselines": brightness_baselines(sets["held_out"], a.n), "models": {}}
    for path in a.model:
        t0 = time.time()
        model = model_core.load_model(path).float().eval()
        res = {name: evaluate_model(model, ds, limit=a.n, batch_size=25, device="cpu") for name, ds in sets.items()}
        res.update({name: presence_scores(model, ds, a.n) for name, ds in neg.items()})
        res["seconds"] = round(time.time() - t0, 1)
        report["models"][path] = res
        print(f"{path}: val mIoU {res['val']['mIoU']:.4f}, held-out mIoU {res['held_out']['mIoU']:.4f}, "
              f"presence AUC {res['presence_val']['auc']:.3f} / {res['presence_held_out']['auc']:.3f}",
              file=sys.stderr, flush=True)
    text = json.dumps(report, indent=1)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
