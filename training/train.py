"""Training loop (`rs2sam2 train --config file.yaml|json`).

- AdamW over the model's own parameter groups (`model.param_groups(lr)`: the authors' groups, adapters / fusion /
  pseudo-mask head faster than the rest); only `model.trainable_parameters()` receive gradients.
- LR: linear warm-up, then cosine, poly or constant (per optimizer step); gradient accumulation; optional clipping.
- AMP on CUDA (bf16 where supported, else fp16 with a GradScaler); fp32 on CPU.
- A checkpoint (`last.pt`) after every epoch (and every `save_every_steps` steps if set) holding model, optimizer,
  scheduler, scaler, RNG states (python, numpy, torch, CUDA), epoch, step and position in the epoch: `--resume`
  continues exactly (the epoch's sample order is a function of (seed, epoch), so a mid-epoch resume skips the
  batches already seen).
- Validation after every epoch (`evaluate_model`, first `val_limit` samples); the best by val mIoU (or
  `best_by: miou+oiou`, the authors' rule) is saved with model_core.save_model as `best.pt` (rebuilds from the
  file alone).
- Logs: `train.csv` (per `log_every` steps), `val.csv` (per epoch), TensorBoard if installed, tqdm progress.
- DDP when launched by torchrun with WORLD_SIZE > 1 (each rank a strided share of the epoch's order; rank 0 logs,
  validates and saves).

Config (YAML or JSON), every key optional except model.preset / model.init:

    model: {preset: nano, overrides: {}, init: null}       # init: a checkpoint to start from (load_model)
    data:  {name: synthetic, root: null, size: null,        # size: default model.input_size
            train: {level: 0}, val: {level: 0}}             # per-split data set options
    train: {epochs: 10, steps_per_epoch: null, batch_size: 8, accum: 1, lr: 1.0e-4, weight_decay: 0.01,
            warmup_steps: 100, schedule: cosine, poly_power: 0.9, min_lr_ratio: 0.0, clip_grad: null,
            milestone_epochs: [], gamma: 0.1,                   # schedule: multistep
            amp: auto, seed: 2401, num_workers: 0, threads: null, log_every: 10, save_every_steps: null,
            val_limit: 200, val_batch_size: 16, best_by: miou, max_minutes: null,
            group: 1,                                           # keep runs of N consecutive samples in one batch
            presence_weight: 1.0,                               # samples with `present` (negatives): presence_loss
            lr_mult: {},                                        # {parameter name prefix: lr multiplier}
            distill: null}                                      # {teacher, weight, min_iou}: training/distill.py
    out: runs/name
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from model_core.checkpoints import save_atomic

from .datasets import build_dataset
from .distill import Teacher
from .evaluate import checkpoint_meta, evaluate_model
from .presence_loss import joint_loss

DEFAULTS = {
    "model": {"preset": None, "overrides": {}, "init": None},
    "data": {"name": "synthetic", "root": None, "size": None, "options": {}, "train": {}, "val": {},
             "val_split": "val", "hflip": 0.0},
    "train": {"epochs": 10, "steps_per_epoch": None, "batch_size": 8, "accum": 1, "lr": 1.0e-4,
              "weight_decay": 0.01, "warmup_steps": 100, "schedule": "cosine", "poly_power": 0.9,
              "min_lr_ratio": 0.0, "clip_grad": None, "amp": "auto", "seed": 2401, "num_workers": 0,
              "threads": None, "log_every": 10, "save_every_steps": None, "val_limit": 200,
              "val_batch_size": 16, "best_by": "miou", "max_minutes": None, "device": "auto",
              "milestone_epochs": [], "gamma": 0.1, "group": 1, "presence_weight": 1.0, "lr_mult": {},
              "distill": None},
    "out": "runs/train",
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("overrides", "options"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        cfg = path_or_dict
    else:
        text = Path(path_or_dict).read_text()
        if str(path_or_dict).endswith((".yaml", ".yml")):
            import yaml

            cfg = yaml.safe_load(text)
        else:
            cfg = json.loads(text)
    cfg = _merge(DEFAULTS, cfg or {})
    if not cfg["model"].get("preset") and not cfg["model"].get("init"):
        raise ValueError("config needs model.preset (e.g. nano) or model.init (a checkpoint)")
    return cfg


# ---------------------------------------------------------------------------------------------------- pieces


# Sub-configs of a loaded model that say how it trains, not what it is: a fine-tune may change them.
TRAINING_OVERRIDES = frozenset({"loss", "train"})


def build_model_from_config(cfg: dict) -> torch.nn.Module:
    import model_core

    m = cfg["model"]
    if m.get("init"):
        model = model_core.load_model(m["init"])
        overrides = dict(m.get("overrides") or {})
        if overrides:  # a loaded model keeps its architecture: only how it trains (loss, freezing) may change
            if not set(overrides) <= TRAINING_OVERRIDES or not hasattr(model, "criterion"):
                raise ValueError(f"model.overrides with model.init may only set {sorted(TRAINING_OVERRIDES)} "
                                 f"(got {sorted(overrides)}); the architecture comes from the checkpoint")
            model.cfg = model.cfg.replace(**overrides)
            model.criterion = type(model.criterion)(model.cfg.loss)
            if "train" in overrides:
                model.apply_freezing()
        return model
    return model_core.build_model(m["preset"], **(m.get("overrides") or {}))


def set_trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """requires_grad exactly on model.trainable_parameters(); returns them."""
    trainable = list(model.trainable_parameters())
    ids = {id(p) for _, p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return trainable


def build_optimizer(model, cfg) -> torch.optim.Optimizer:
    """AdamW over the model's own parameter groups; ``train.lr_mult`` ({name prefix: multiplier}) moves the
    parameters under a prefix into a group of their own at that multiple of their group's lr (the first prefix that
    matches wins), e.g. a text tower that has to learn a distinction the rest of the model already sees."""
    t = cfg["train"]
    mult = {str(k): float(v) for k, v in (t.get("lr_mult") or {}).items()}
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for g in model.param_groups(float(t["lr"])):
        g["params"] = [p for p in g["params"] if p.requires_grad]
        g.setdefault("weight_decay", float(t["weight_decay"]))
        for prefix, m in mult.items():
            moved = [p for p in g["params"] if names.get(id(p), "").startswith(prefix)]
            if moved:
                g["params"] = [p for p in g["params"] if not names.get(id(p), "").startswith(prefix)]
                groups.append({**g, "params": moved, "lr": g["lr"] * m, "name": f"{g.get('name', 'group')}:{prefix}"})
        groups.append(g)
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))


def lr_lambda_factory(total_steps: int, warmup: int, schedule: str, power: float, min_ratio: float,
                      milestones: list[int] | None = None, gamma: float = 0.1):
    """LR multiplier per optimizer step: linear warm-up, then cosine / poly (to min_ratio), constant, or
    multistep (x gamma at each milestone step; the authors' RefSegRS recipe: x0.1 after epoch 49)."""
    total_steps = max(1, int(total_steps))
    warmup = max(0, int(warmup))
    milestones = sorted(int(m) for m in (milestones or []))

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        if schedule == "multistep":
            return gamma ** sum(step >= m for m in milestones)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if schedule == "cosine":
            k = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif schedule == "poly":
            k = (1.0 - progress) ** power
        else:
            raise ValueError(f"unknown schedule {schedule!r} (cosine, poly, constant, multistep)")
        return min_ratio + (1.0 - min_ratio) * k

    return f


def rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def collate(samples: list[dict]) -> dict:
    out = {"image": torch.stack([s["image"] for s in samples]), "mask": torch.stack([s["mask"] for s in samples]),
           "text": [s["text"] for s in samples], "id": [s["id"] for s in samples]}
    for flag in ("present", "contrast"):  # a set with negatives; one with contrast pairs
        if flag in samples[0]:
            out[flag] = torch.tensor([s[flag] for s in samples], dtype=torch.float32)
    return out


def epoch_order(n: int, seed: int, epoch: int, group: int = 1) -> list[int]:
    """The epoch's sample order, a function of (seed, epoch). `group` > 1 shuffles runs of `group` consecutive
    indices as blocks (synthetic: the sentences of one scene stay together, so a batch shows one image with
    several sentences and masks)."""
    g = torch.Generator().manual_seed(int(seed) * 1000 + int(epoch))
    group = max(1, int(group))
    if group == 1:
        return torch.randperm(n, generator=g).tolist()
    blocks = torch.randperm(n // group, generator=g)
    return (blocks[:, None] * group + torch.arange(group)).flatten().tolist()


def attach_meta(path, meta: dict) -> None:
    """Add `train_meta` (data set, its options, validation metrics) to a model_core checkpoint; load_model ignores
    it, `rs2sam2 eval` reads it for its synthetic-set defaults."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    ck["train_meta"] = json.loads(json.dumps(meta))
    save_atomic(ck, path)


def export_checkpoint(src, dst, fp16: bool = True, meta: dict | None = None,
                      presence_threshold: float | None = None) -> Path:
    """A model_core checkpoint, shrunk for shipping: floating weights stored as fp16 (load_model's
    load_state_dict casts them back into the fp32 model), optional extra train_meta, and optionally the presence
    head's decision threshold chosen on validation (``heads.presence_threshold``, what the engine gates with)."""
    ck = torch.load(src, map_location="cpu", weights_only=True)
    if presence_threshold is not None:
        if not ck["config"].get("heads", {}).get("presence"):
            raise ValueError(f"{src} has no presence head: a presence threshold means nothing for it")
        ck["config"]["heads"]["presence_threshold"] = float(presence_threshold)
    if fp16:
        ck["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
    if meta:
        ck["train_meta"] = {**ck.get("train_meta", {}), **json.loads(json.dumps(meta))}
    return save_atomic(ck, dst)


def final_checkpoint(run, dst) -> Path:
    """The run's weights at the end of its schedule (``last.pt``, a training state) as a model checkpoint at
    ``dst``: ``best.pt``'s architecture and train_meta, with the step, epoch and metrics of the run's last
    validation. For a fine-tune whose own-look val200 moves within noise while what it was run for (here, whole
    objects in zoomed views) only shows at its end."""
    import model_core

    run = Path(run)
    missing = [n for n in ("best.pt", "last.pt", "val.csv") if not (run / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{run} lacks {', '.join(missing)}: give the folder of a training run that validated "
                                f"at least once (its `out`)")
    model = model_core.load_model(str(run / "best.pt"))
    model.load_state_dict(torch.load(run / "last.pt", map_location="cpu", weights_only=False)["model"])
    meta = checkpoint_meta(str(run / "best.pt"))
    with open(run / "val.csv", newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    meta.update(epoch=int(last["epoch"]), step=int(last["step"]),
                val={k: float(v) for k, v in last.items() if k not in ("epoch", "step", "elapsed_min", "best")})
    model_core.save_model(model, str(dst))
    attach_meta(dst, meta)
    return Path(dst)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


class Trainer:
    """One training run; `run()` trains to the end (or `max_steps` optimizer steps, for tests)."""

    def __init__(self, cfg: dict, resume: str | None = None, quiet: bool = False):
        self.cfg = cfg
        t = cfg["train"]
        self.quiet = quiet
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        from model_core.predictor import resolve_device

        if self.world > 1 and torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device, _ = resolve_device(t.get("device", "auto"))
        if t.get("threads"):
            torch.set_num_threads(int(t["threads"]))
        seed_all(int(t["seed"]) + self.rank)
        self.out = Path(cfg["out"])
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg, indent=2))

        self.model = build_model_from_config(cfg).to(self.device)
        self.trainable = set_trainable(self.model)
        self.teacher = Teacher.from_config(t.get("distill"), self.device)
        size = cfg["data"].get("size") or int(self.model.input_size)
        d = cfg["data"]
        base_opts = dict(d.get("options") or {})
        transform = None
        if d.get("hflip"):
            from .datasets import HFlipSwap

            transform = HFlipSwap(float(d["hflip"]), seed=int(t["seed"]))
        self.train_set = build_dataset(d["name"], "train", size=size, root=d.get("root"),
                                       **{**base_opts, **(d.get("train") or {})}, transform=transform)
        self.val_set = None
        if d.get("val_split"):
            self.val_set = build_dataset(d["name"], d["val_split"], size=None, root=d.get("root"),
                                         **{**base_opts, **(d.get("val") or {})})
        self.micro_bs = int(t["batch_size"])
        self.accum = max(1, int(t["accum"]))
        n_micro = len(self.train_set) // (self.micro_bs * self.world)
        self.steps_per_epoch = n_micro // self.accum
        if t.get("steps_per_epoch"):
            self.steps_per_epoch = min(self.steps_per_epoch, int(t["steps_per_epoch"]))
        if self.steps_per_epoch < 1:
            raise ValueError("the training set is smaller than one optimizer step (batch_size x accum x ranks)")
        self.total_steps = self.steps_per_epoch * int(t["epochs"])

        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda_factory(
            self.total_steps, t["warmup_steps"], t["schedule"], float(t["poly_power"]), float(t["min_lr_ratio"]),
            [int(e) * self.steps_per_epoch for e in (t.get("milestone_epochs") or [])], float(t.get("gamma", 0.1))))
        amp = str(t.get("amp", "auto")).lower()
        self.amp_dtype = None
        if self.device.type == "cuda" and amp in ("auto", "bf16", "fp16", "true"):
            self.amp_dtype = (torch.bfloat16 if amp in ("auto", "true", "bf16") and torch.cuda.is_bf16_supported()
                              else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.epoch, self.step, self.batch_in_epoch = 0, 0, 0
        self.best = -1.0
        if resume:
            self.load_checkpoint(resume)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.tb = None
        if self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self.tb = None

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"kind": "rs2sam2-train-state", "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng_state(), "epoch": self.epoch, "step": self.step,
                "batch_in_epoch": self.batch_in_epoch, "best": self.best, "config": self.cfg}

    def save_checkpoint(self, path: Path) -> None:
        if self.rank != 0:
            return
        save_atomic(self.state(), path)

    def load_checkpoint(self, path: str) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / "last.pt"
        st = torch.load(p, map_location="cpu", weights_only=False)
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        set_rng_state(st["rng"])
        self.epoch, self.step, self.batch_in_epoch = st["epoch"], st["step"], st["batch_in_epoch"]
        self.best = st.get("best", -1.0)

    # ------------------------------------------------------------------ one step
    def _forward_loss(self, pixels: torch.Tensor, target: torch.Tensor, batch: dict):
        out = self.net(pixels, batch["text"])
        if "present" in batch:  # a set with negatives: masks from positives, presence from all
            loss, parts = joint_loss(_unwrap(self.net), out, target, batch["present"],
                                     float(self.cfg["train"]["presence_weight"]))
        else:
            loss, parts = _unwrap(self.net).loss(out, target)
        if self.teacher is not None:  # the starting model's masks kept where nothing new is taught
            keep = batch.get("present", torch.ones(len(batch["text"]))) > 0.5
            if "contrast" in batch:
                keep &= batch["contrast"] < 0.5
            distill = self.teacher.loss(out["logits"], pixels, batch["text"], target, keep.to(pixels.device))
            loss = loss + self.teacher.weight * distill
            parts = {**parts, "distill": float(distill.detach())}
        return loss, parts

    def train_step(self, batches: list[dict]) -> dict:
        """One optimizer step over `accum` micro-batches; returns the mean loss and its parts."""
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, parts_sum = 0.0, {}
        for b in batches:
            pixels = b["image"].to(self.device, non_blocking=True)
            target = b["mask"].to(self.device, non_blocking=True)
            if self.amp_dtype is not None:
                with torch.autocast("cuda", dtype=self.amp_dtype):
                    loss, parts = self._forward_loss(pixels, target, b)
            else:
                loss, parts = self._forward_loss(pixels, target, b)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {self.step}: {parts}")
            self.scaler.scale(loss / len(batches)).backward()
            total += float(loss.detach()) / len(batches)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) / len(batches)
        clip = self.cfg["train"].get("clip_grad")
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for _, p in self.trainable], float(clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return {"loss": total, **parts_sum}

    # ------------------------------------------------------------------ loop
    def _loader(self, order: list[int]):
        from torch.utils.data import DataLoader

        nw = int(self.cfg["train"].get("num_workers") or 0)
        return DataLoader(self.train_set, batch_size=self.micro_bs, sampler=order, num_workers=nw,
                          collate_fn=collate, drop_last=True, persistent_workers=False)

    def validate(self) -> dict | None:
        if self.val_set is None or self.rank != 0:
            return None
        t = self.cfg["train"]
        return evaluate_model(self.model, self.val_set, limit=t.get("val_limit"),
                              batch_size=int(t.get("val_batch_size", 16)), device=self.device,
                              autocast_dtype=self.amp_dtype)

    def _csv(self, name: str, row: dict) -> None:
        if self.rank != 0:
            return
        path = self.out / name
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def run(self, max_steps: int | None = None) -> dict:
        from tqdm import tqdm

        import model_core

        t = self.cfg["train"]
        seed = int(t["seed"])
        t_start = time.time()
        deadline = t_start + 60 * float(t["max_minutes"]) if t.get("max_minutes") else None
        history = []
        stop = False
        while self.epoch < int(t["epochs"]) and not stop:
            group = max(1, int(t.get("group") or 1))
            order = epoch_order(len(self.train_set), seed, self.epoch, group)
            order = [i for b in range(self.rank * group, len(order), self.world * group)
                     for i in order[b:b + group]]  # each rank a strided share of whole groups
            per_step = self.micro_bs * self.accum
            order = order[:self.steps_per_epoch * per_step]
            order = order[self.batch_in_epoch * per_step:]
            bar = tqdm(total=self.steps_per_epoch, initial=self.batch_in_epoch, desc=f"epoch {self.epoch}",
                       disable=self.quiet or self.rank != 0, file=sys.stderr, dynamic_ncols=True)
            pending, t_log, acc = [], time.time(), []
            for batch in self._loader(order):
                pending.append(batch)
                if len(pending) < self.accum:
                    continue
                res = self.train_step(pending)
                pending = []
                self.batch_in_epoch += 1
                acc.append(res)
                history.append(res["loss"])
                bar.update(1)
                bar.set_postfix(loss=f"{res['loss']:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                if self.step % int(t["log_every"]) == 0 and self.rank == 0:
                    mean = {k: float(np.mean([a[k] for a in acc])) for k in acc[0]}
                    row = {"step": self.step, "epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0],
                           **{k: round(v, 6) for k, v in mean.items()},
                           "sec_per_step": round((time.time() - t_log) / len(acc), 3),
                           "elapsed_min": round((time.time() - t_start) / 60, 2)}
                    self._csv("train.csv", row)
                    if self.tb:
                        for k, v in mean.items():
                            self.tb.add_scalar(f"train/{k}", v, self.step)
                    acc, t_log = [], time.time()
                if t.get("save_every_steps") and self.step % int(t["save_every_steps"]) == 0:
                    self.save_checkpoint(self.out / "last.pt")
                if (max_steps is not None and self.step >= max_steps) or (deadline and time.time() > deadline):
                    stop = True
                    break
            bar.close()
            if stop and self.batch_in_epoch < self.steps_per_epoch:
                # stopped inside the epoch: keep the exact position
                self.save_checkpoint(self.out / "last.pt")
                if deadline and max_steps is None:
                    self._end_of_epoch(model_core, t_start, partial=True)
                break
            self._end_of_epoch(model_core, t_start)
        if self.tb:
            self.tb.flush()
        return {"step": self.step, "epoch": self.epoch, "best": self.best, "losses": history}

    def _end_of_epoch(self, model_core, t_start, partial: bool = False) -> None:
        metrics = self.validate()
        if not partial:
            self.epoch += 1
            self.batch_in_epoch = 0
        if self.rank == 0 and metrics is not None:
            score = metrics["mIoU"] + (metrics["oIoU"] if self.cfg["train"]["best_by"] == "miou+oiou" else 0.0)
            improved = score > self.best
            if improved:
                self.best = score
                model_core.save_model(self.model, str(self.out / "best.pt"))
                d = self.cfg["data"]
                attach_meta(self.out / "best.pt", {
                    "dataset": d["name"], "train_options": {**(d.get("options") or {}), **(d.get("train") or {})},
                    "val_options": {**(d.get("options") or {}), **(d.get("val") or {})},
                    "val": {k: v for k, v in metrics.items()}, "val_limit": self.cfg["train"].get("val_limit"),
                    "epoch": self.epoch, "step": self.step})
                (self.out / "best.json").write_text(json.dumps({"epoch": self.epoch, "step": self.step,
                                                                **metrics}, indent=2))
            self._csv("val.csv", {"epoch": self.epoch, "step": self.step,
                                  "elapsed_min": round((time.time() - t_start) / 60, 2),
                                  **{k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items()},
                                  "best": int(improved)})
            if self.tb:
                for k, v in metrics.items():
                    self.tb.add_scalar(f"val/{k}", v, self.step)
            if not self.quiet:
                print(f"[train] epoch {self.epoch} step {self.step}: val mIoU {metrics['mIoU']:.4f} "
                      f"oIoU {metrics['oIoU']:.4f} Pr@0.5 {metrics['pr@0.5']:.4f}"
                      f"{' (best)' if improved else ''}", file=sys.stderr, flush=True)
        self.save_checkpoint(self.out / "last.pt")
        if self.world > 1:
            dist.barrier()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rs2sam2 train", description="Train a referring-segmentation model.")
    p.add_argument("--config", required=True, help="YAML or JSON config (see training/configs/)")
    p.add_argument("--resume", default=None, help="a last.pt (or its run folder) to continue exactly")
    p.add_argument("--out", default=None, help="output folder (overrides the config's out)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (value parsed as JSON if it can be)")
    p.add_argument("--quiet", action="store_true")
    return p


def _apply_set(cfg: dict, items: list[str]) -> None:
    for item in items:
        key, _, raw = item.partition("=")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        d = cfg
        parts = key.split(".")
        for k in parts[:-1]:
            d = d.setdefault(k, {})
        d[parts[-1]] = val


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raw = load_config(args.config)
    _apply_set(raw, args.set)
    if args.out:
        raw["out"] = args.out
    resume = args.resume
    if resume == "auto":
        resume = str(Path(raw["out"]) / "last.pt") if (Path(raw["out"]) / "last.pt").exists() else None
    trainer = Trainer(raw, resume=resume, quiet=args.quiet)
    res = trainer.run()
    if trainer.rank == 0:
        print(json.dumps({"out": str(trainer.out), "epoch": res["epoch"], "step": res["step"],
                          "best_val": res["best"]}))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
