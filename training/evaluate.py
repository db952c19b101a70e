"""Evaluate a model on a referring data set: Pr@0.5..0.9, oIoU, mIoU per split (`rs2sam2 eval`).

    rs2sam2 eval --model demo --dataset synthetic --split val --limit 50 --json
    rs2sam2 eval --model ckpt.pt --dataset rrsisd --data-root /data/rrsisd --split val,test --out results/
    rs2sam2 eval --model ckpt.pt --dataset refsegrs --data-root /data/RefSegRS --split test --authors

The model is loaded with model_core.load_model (`demo` = the bundled model_core/assets/demo.pt) and run through
the model protocol (`predict_masks`, `logits_to_prob`): each image is stretched to the model's input size, the
logits are resized (bilinear) to the scoring size, turned into probabilities and thresholded. Scoring happens at
the ground-truth mask's own size unless `--score-size 1024` (the authors' convention) is given; `--authors`
means `--score-size 1024 --prob-rule two_class` (foreground where logit > 0.5, which is also the default
rule of RS2-SAM2 models). Metric definitions: training/metrics.py.
Output: a Markdown table (stdout, and `<out>/metrics.md`), `<out>/metrics.json`; with `--json` only one JSON
object on stdout (the split's metrics, or {split: metrics} for several splits).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import build_dataset
from .datasets.common import resize_image
from .metrics import RefMetrics, score_pair, to_markdown

DEMO_NAME = "demo"


def demo_checkpoint_path() -> Path:
    import model_core

    return Path(model_core.__file__).resolve().parent / "assets" / "demo.pt"


def resolve_model_path(spec: str) -> Path:
    p = Path(spec)
    if p.exists():
        return p
    if spec == DEMO_NAME:
        demo = demo_checkpoint_path()
        if not demo.exists():
            raise FileNotFoundError(f"the demo checkpoint {demo} is missing (git lfs? a partial checkout?)")
        return demo
    raise FileNotFoundError(f"model {spec!r}: no such file (give a checkpoint path or 'demo')")


def checkpoint_meta(spec: str) -> dict:
    """The `train_meta` a training run attached to the checkpoint (data set and options it was trained and
    validated with, its validation metrics), or {}."""
    try:
        ck = torch.load(resolve_model_path(spec), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - foreign checkpoint kinds carry no meta
        return {}
    return ck.get("train_meta", {}) if isinstance(ck, dict) else {}


def load(spec: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    import model_core

    model = model_core.load_model(str(resolve_model_path(spec)))
    return model.to(device).eval()


def _to_prob(model, logits: torch.Tensor, prob_rule: str | None) -> torch.Tensor:
    """The model's own rule (its trained probability), or ``prob_rule`` to measure another one."""
    from model_core.decision import prob_from_logits

    if prob_rule is not None:
        return prob_from_logits(logits, prob_rule)
    fn = getattr(model, "logits_to_prob", None)
    return fn(logits) if callable(fn) else torch.sigmoid(logits)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset, *, limit: int | None = None, batch_size: int = 8,
                   threshold: float = 0.5, score_size: int | None = None, prob_rule: str | None = None,
                   device: str | torch.device | None = None, autocast_dtype=None, progress: bool = False,
                   keep_ious: bool = False, group_by=None) -> dict:
    """Metrics of `model` (segmentation-model protocol) on `dataset` (its `raw(i)` samples, first `limit`).
    `group_by(i)` -> a group name adds `by_group`: the same metrics per group (e.g. `sentence_kind(dataset)`)."""
    was_training = model.training
    model.eval()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    s = int(model.input_size)
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    metrics = RefMetrics()
    it = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"eval {getattr(dataset, 'split', '')}", unit="batch", leave=False, file=sys.stderr)
    for start in it:
        samples = [dataset.raw(i) for i in range(start, min(n, start + batch_size))]
        pixels = torch.from_numpy(np.stack([resize_image(im, s) for im, _, _, _ in samples]))
        pixels = pixels.to(dev).permute(0, 3, 1, 2).float().div_(255.0)
        texts = [t for _, _, t, _ in samples]
        if autocast_dtype is not None and dev.type == "cuda":
            with torch.autocast("cuda", dtype=autocast_dtype):
                logits = model.predict_masks(pixels, texts)
        else:
            logits = model.predict_masks(pixels, texts)
        if logits.ndim == 3:
            logits = logits[:, None]
        logits = logits.float()
        for k, (_, gt, _, sid) in enumerate(samples):
            size = gt.shape if score_size is None else (score_size, score_size)
            lg = logits[k:k + 1]
            if tuple(lg.shape[-2:]) != tuple(size):
                lg = F.interpolate(lg, size=size, mode="bilinear", align_corners=False)
            prob = _to_prob(model, lg, prob_rule)[0, 0].cpu().numpy()
            pred, g = score_pair(prob, gt, threshold=threshold, score_size=score_size)
            metrics.add(pred, g, sid)
    model.train(was_training)
    out = metrics.summary()
    if group_by is not None:
        out["by_group"] = metrics.by(group_by)
    if keep_ious:
        out["ious"] = metrics.ious().tolist()
    return out


def sentence_kind(dataset):
    """group_by for the synthetic set: the kind of each sample's sentence (class, colour, size, position, ...)."""
    if not hasattr(dataset, "expression"):
        raise ValueError(f"--by-kind needs the synthetic data set (its sentences carry a kind); got "
                         f"{getattr(dataset, 'name', type(dataset).__name__)}")
    return lambda i: dataset.expression(i)[1].kind


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rs2sam2 eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEMO_NAME, help="checkpoint path, or 'demo' (default)")
    p.add_argument("--dataset", default="synthetic", help="synthetic | rrsisd | refsegrs | risbench | gis")
    p.add_argument("--data-root", default=None, help="data set folder (not for synthetic)")
    p.add_argument("--split", default="val", help="split(s), comma-separated: val,test")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples of each split")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    p.add_argument("--score-size", type=int, default=None,
                   help="score at N x N (authors: 1024); default: at the ground-truth mask's own size")
    p.add_argument("--prob-rule", choices=["model", "two_class", "sigmoid"], default="model",
                   help="logits -> probability: the rule the model was trained with (default; RS2-SAM2: two_class, "
                        "sigmoid(2x - 1), i.e. the authors' logit > 0.5), or another one to compare")
    p.add_argument("--authors", action="store_true", help="the authors' convention: --score-size 1024 "
                   "--prob-rule two_class")
    p.add_argument("--level", type=int, default=None, help="synthetic: sentence curriculum level (0-2)")
    p.add_argument("--seed", type=int, default=None, help="synthetic: generator seed")
    p.add_argument("--scene-size", type=int, default=None, help="synthetic: scene side in pixels")
    p.add_argument("--density", type=float, default=None, help="synthetic: object density")
    p.add_argument("--by-kind", action="store_true",
                   help="synthetic: also the metrics per sentence kind (class, colour, size, position, relation, combo)")
    p.add_argument("--out", default=None, help="write metrics.json and metrics.md into this folder")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.authors:
        args.score_size = args.score_size or 1024
        args.prob_rule = "two_class"
    from model_core.predictor import resolve_device

    device, _why = resolve_device(args.device)
    try:
        model = load(args.model, device)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    options = {}
    if args.dataset == "synthetic":
        # defaults: the synthetic options the checkpoint was validated with (scene size, density, sentence level)
        meta = checkpoint_meta(args.model)
        if meta.get("dataset") == "synthetic":
            options = {k: v for k, v in (meta.get("val_options") or {}).items()
                       if k in ("scene_size", "density", "level", "level_weights", "seed", "refs_per_scene")}
        for key in ("level", "seed", "scene_size", "density"):
            if getattr(args, key) is not None:
                options[key] = getattr(args, key)
    results = {}
    t0 = time.time()
    for split in splits:
        try:
            ds = build_dataset(args.dataset, split, size=None, root=args.data_root, **options)
            group_by = sentence_kind(ds) if args.by_kind else None
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results[split] = evaluate_model(model, ds, limit=args.limit, batch_size=args.batch_size, group_by=group_by,
                                        threshold=args.threshold, score_size=args.score_size,
                                        prob_rule=None if args.prob_rule == "model" else args.prob_rule,
                                        device=device, autocast_dtype=torch.bfloat16 if device.type == "cuda"
                                        else None, progress=not args.json and sys.stderr.isatty())
    conv = (f"scored at {args.score_size}x{args.score_size}" if args.score_size else
            "scored at each mask's own size") + f", threshold {args.threshold}, prob rule {args.prob_rule}"
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"model": args.model, "dataset": args.dataset, "convention": conv, "limit": args.limit,
                "seconds": round(time.time() - t0, 1)}
        (out / "metrics.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        (out / "metrics.md").write_text(to_markdown(results, f"{args.dataset} ({conv})"))
    if args.json:
        print(json.dumps(results[splits[0]] if len(splits) == 1 else results))
    else:
        print(to_markdown(results, f"{args.model} on {args.dataset} ({conv})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
