"""Training loop on the nano preset (SAM2 side shrunk to 64 px so that CPU steps take a fraction of a second):
one step touches only trainable parameters, 20 steps overfit a fixed batch, a resume reproduces the next step's
loss exactly, and the CLI entry trains, validates and saves a best checkpoint that model_core rebuilds alone."""
from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

import model_core
from training.datasets import build_dataset  # noqa: E402
from training.train import Trainer, build_optimizer, collate, epoch_order, load_config, main, set_trainable  # noqa: E402

SMALL = {"sam": {"image_size": 64}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(tmp_path, **train):
    return load_config({
        "model": {"preset": "nano", "overrides": SMALL},
        "data": {"name": "synthetic", "options": {"scene_size": 128, "length": 64}, "train": {"level": 0},
                 "val": {"level": 0, "length": 8}},
        "train": {"epochs": 1, "steps_per_epoch": 10, "batch_size": 2, "lr": 1e-3, "warmup_steps": 0,
                  "seed": 7, "log_every": 1, "val_limit": 4, "val_batch_size": 4, **train},
        "out": str(tmp_path / "run"),
    })


def _fixed_batch(n=2, size=64):
    ds = build_dataset("synthetic", "train", size, length=n, scene_size=128, level=0)
    return collate([ds[i] for i in range(n)])


def test_one_step_changes_only_trainable_and_overfits():
    torch.manual_seed(0)
    model = model_core.build_model("nano", **SMALL)
    trainable = set_trainable(model)
    names = {n for n, _ in trainable}
    frozen = [n for n, p in model.named_parameters() if n not in names]
    assert frozen, "nano keeps some parameters frozen (inert prompt/IoU heads, CLIP contrastive heads)"
    cfg = load_config({"model": {"preset": "nano"}, "train": {"lr": 1e-3}})
    opt = build_optimizer(model, cfg)
    assert len(opt.param_groups) == 2 and opt.param_groups[0]["lr"] == pytest.approx(2 * opt.param_groups[1]["lr"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = _fixed_batch()
    losses = []
    for step in range(20):
        out = model(batch["image"], batch["text"])
        loss, parts = model.loss(out, batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 0:
            changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
            assert changed <= names, f"frozen parameters changed: {sorted(changed - names)[:5]}"
            assert len(changed) > 0.5 * len(names)
            for n in frozen:
                assert model.get_parameter(n).grad is None
    assert losses[-1] < 0.8 * losses[0], losses


def test_resume_reproduces_next_step_exactly(tmp_path):
    cfg = _cfg(tmp_path, save_every_steps=None)
    cfg["data"]["val_split"] = None
    a = Trainer(cfg, quiet=True)
    a.run(max_steps=2)  # stops inside the epoch and writes last.pt at the exact position
    ck = tmp_path / "after2.pt"
    shutil.copy(a.out / "last.pt", ck)
    loss_a = a.run(max_steps=3)["losses"][-1]
    b = Trainer(cfg, resume=str(ck), quiet=True)
    assert b.step == 2 and b.batch_in_epoch == 2
    loss_b = b.run(max_steps=3)["losses"][-1]
    assert loss_a == loss_b
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), n


def test_cli_trains_validates_and_saves_best(tmp_path):
    cfg = _cfg(tmp_path)
    cfg["train"]["steps_per_epoch"] = 2
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    assert main(["--config", str(path), "--quiet", "--set", "train.schedule=poly", "--set", "train.accum=2"]) == 0
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "train.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2] and float(rows[0]["loss"]) > 0
    val = list(csv.DictReader(open(run / "val.csv")))
    assert len(val) == 1 and 0.0 <= float(val[0]["mIoU"]) <= 1.0 and int(val[0]["n"]) == 4
    model = model_core.load_model(str(run / "best.pt"))  # rebuilds from the file alone
    assert model.input_size == 64
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and state["step"] == 2 and "optimizer" in state and "rng" in state
    assert state["config"]["train"]["accum"] == 2  # 2 optimizer steps of 2 micro-batches each
    # the run's final weights as a model checkpoint (export_demo --last): last.pt's weights, the last validation
    from training.train import final_checkpoint

    final = model_core.load_model(str(final_checkpoint(run, tmp_path / "final.pt")))
    for k, v in final.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    meta = torch.load(tmp_path / "final.pt", map_location="cpu", weights_only=True)["train_meta"]
    assert meta["step"] == 2 and meta["val"]["mIoU"] == pytest.approx(float(val[-1]["mIoU"]), abs=1e-5)
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run / "best.pt", partial / "best.pt")
    with pytest.raises(FileNotFoundError, match="lacks last.pt, val.csv"):
        final_checkpoint(partial, tmp_path / "x.pt")


def test_init_from_a_checkpoint_may_change_only_how_it_trains(tmp_path):
    from training.train import build_model_from_config

    ck = tmp_path / "m.pt"
    model_core.save_model(model_core.build_model("nano", sam={"image_size": 64}), str(ck))
    m = build_model_from_config({"model": {"init": str(ck), "overrides": {"loss": {"pseudo_weight": 0.5}}}})
    assert m.cfg.loss.pseudo_weight == 0.5 and m.criterion.cfg.pseudo_weight == 0.5 and m.input_size == 64
    assert all(p.requires_grad for p in m.image_encoder.neck.parameters())  # nano trains its trunk
    frozen = build_model_from_config({"model": {"init": str(ck), "overrides": {"train": {"freeze_trunk": True}}}})
    assert frozen.cfg.train.freeze_trunk
    assert not any(p.requires_grad for p in frozen.image_encoder.neck.parameters())
    assert not any(p.requires_grad for _, p in frozen.image_encoder.trunk.stock_parameters())
    assert any(p.requires_grad for _, p in frozen.trainable_parameters())  # adapters, fusion, decoder still learn
    with pytest.raises(ValueError, match=r"only set \['loss', 'train'\]"):
        build_model_from_config({"model": {"init": str(ck), "overrides": {"sam": {"image_size": 128}}}})


def test_lr_schedules_and_configs():
    from pathlib import Path

    from training.train import lr_lambda_factory

    cos = lr_lambda_factory(110, 10, "cosine", 0.9, 0.05)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0) and cos(10) == pytest.approx(1.0)
    assert cos(60) == pytest.approx(0.05 + 0.95 * 0.5) and cos(110) == pytest.approx(0.05)
    poly = lr_lambda_factory(100, 0, "poly", 0.9, 0.0)
    assert poly(50) == pytest.approx(0.5 ** 0.9)
    step = lr_lambda_factory(100, 0, "multistep", 0.9, 0.0, milestones=[50], gamma=0.1)
    assert step(49) == 1.0 and step(50) == pytest.approx(0.1)
    for cfg in sorted((Path(__file__).resolve().parents[1] / "training" / "configs").glob("*.yaml")):
        c = load_config(cfg)
        assert c["model"]["preset"] and c["train"]["lr"] > 0, cfg


def test_epoch_order_keeps_groups_together():
    """train.group = N shuffles runs of N consecutive samples as blocks (the sentences of one synthetic scene)."""
    plain = epoch_order(40, 3, 1)
    grouped = epoch_order(40, 3, 1, group=4)
    assert sorted(plain) == sorted(grouped) == list(range(40))
    assert grouped == epoch_order(40, 3, 1, group=4) and grouped != epoch_order(40, 3, 2, group=4)
    blocks = [grouped[i:i + 4] for i in range(0, 40, 4)]
    assert all(b == list(range(b[0], b[0] + 4)) and b[0] % 4 == 0 for b in blocks)
    assert epoch_order(40, 3, 1, group=1) == plain


def test_export_demo_refuses_last_for_a_checkpoint_file_before_touching_anything(tmp_path, capsys):
    """``--last`` picks a run folder's final weights; with a checkpoint file it is a mistake, said before any
    file is written."""
    from training.export_demo import main

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"not read")
    out = tmp_path / "demo.pt"
    with pytest.raises(SystemExit):
        main([str(ckpt), "--last", "--out", str(out), "--record", str(tmp_path / "m.json")])
    assert "--last picks a run folder" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "m.json").exists()
