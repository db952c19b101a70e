"""Package a run's best checkpoint as the bundled demo model and record its metrics.

    python -m training.export_demo runs/demo_nano_stage4 [--last] [--presence-threshold T] [--out ...demo.pt]
    python -m training.export_demo runs/some_checkpoint.pt ...   # a checkpoint file (e.g. training.interpolate's)
    python -m training.export_demo --measure-only            # re-score the shipped file (e.g. after a rule change)

Writes the checkpoint with fp16 weights (load_model casts them back to fp32) and its train_meta, then evaluates the
exported file exactly as users and tests do and writes training/demo_metrics.json: the fixed 50-sample val subset
(`val50`, what tests/test_training_demo.py checks), the full val (per sentence kind) and test splits with the
checkpoint's own validation mix, val with every kind of sentence uniformly (level 2) and val with class-level
sentences only (level 0).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .datasets import build_dataset
from .evaluate import checkpoint_meta, evaluate_model, sentence_kind
from .train import export_checkpoint, final_checkpoint


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run", nargs="?", help="training run folder (its best.pt is exported), or a checkpoint file")
    p.add_argument("--measure-only", action="store_true", help="do not export: score the existing --out file")
    p.add_argument("--last", action="store_true", help="export the run's final weights (last.pt) instead of best.pt")
    p.add_argument("--presence-threshold", type=float, help="the presence head's decision threshold (chosen on val)")
    p.add_argument("--out", default=None)
    p.add_argument("--record", default=str(Path(__file__).resolve().parent / "demo_metrics.json"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import model_core

    out = Path(a.out) if a.out else Path(model_core.__file__).resolve().parent / "assets" / "demo.pt"
    if not a.measure_only:
        if not a.run:
            p.error("give the training run folder, or --measure-only")
        given = Path(a.run)
        if given.is_file() and a.last:
            p.error("--last picks a run folder's final weights; a checkpoint file is exported as it is")
        src = given if given.is_file() else given / "best.pt"
        if a.last:
            src = final_checkpoint(a.run, Path(a.run) / "final.pt")
        export_checkpoint(src, out, fp16=True, presence_threshold=a.presence_threshold)
    meta = checkpoint_meta(str(out))
    model = model_core.load_model(str(out)).eval()
    opts = {k: v for k, v in meta["val_options"].items() if k != "length"}
    res = {"checkpoint": str(out.name), "size_mb": round(out.stat().st_size / 2 ** 20, 2),
           "trained": {k: meta[k] for k in ("epoch", "step", "train_options", "interpolation") if k in meta},
           "model": {"preset": "nano", "input_size": model.input_size,
                     "parameters": sum(p.numel() for p in model.parameters())}}
    t0 = time.time()
    res["val50"] = evaluate_model(model, build_dataset("synthetic", "val", None, **opts), limit=50, device="cpu")
    val = build_dataset("synthetic", "val", None, **opts)
    res["val"] = evaluate_model(model, val, device="cpu", group_by=sentence_kind(val))  # + per sentence kind
    res["test"] = evaluate_model(model, build_dataset("synthetic", "test", None, **opts), device="cpu")
    hard = {**opts, "level": 2, "level_weights": None}
    res["val_level2_all_sentences"] = evaluate_model(model, build_dataset("synthetic", "val", None, **hard),
                                                     device="cpu")
    if opts.get("level", 2) != 0:
        easy = {**opts, "level": 0, "level_weights": None}
        res["val_level0_class_sentences"] = evaluate_model(
            model, build_dataset("synthetic", "val", None, **easy), device="cpu")
    res["val_options"] = opts
    res["eval_seconds"] = round(time.time() - t0, 1)
    Path(a.record).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
