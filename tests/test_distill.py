"""Distillation from the fine-tune's starting model (training/distill.py): the pull is the BCE of the student's
mask logits against the teacher's probabilities on the samples that teach nothing new and that the teacher draws
right, contrast pairs are marked so, and a fine-tune that distills trains, logs the term and saves."""
from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F

import model_core
from training.datasets import build_dataset
from training.distill import Teacher
from training.train import Trainer, collate, load_config

SMALL = {"sam": {"image_size": 64}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_pull_is_bce_against_the_teachers_probabilities_where_it_drew_the_target_right():
    torch.manual_seed(0)
    teacher_model = model_core.build_model("nano", **SMALL)
    teacher = Teacher(teacher_model, weight=2.0, min_iou=0.5)
    assert not any(p.requires_grad for p in teacher_model.parameters()) and not teacher_model.training
    pixels, texts = torch.rand(4, 3, 64, 64), ["the buildings", "the red car", "the lake", "the red roof"]
    with torch.no_grad():
        logits = teacher_model(pixels, texts)["logits"]
    drawn = (logits > 0).float()
    # targets: the teacher's own mask (IoU 1) for 0-2, its complement (IoU 0: the teacher got it wrong) for 3
    target = torch.cat([drawn[:3], 1 - drawn[3:]])
    student = torch.randn(4, 1, 64, 64, requires_grad=True)
    keep = torch.tensor([True, False, True, True])  # 1: a contrast pair (or a negative)
    got = teacher.loss(student, pixels, texts, target, keep)
    want = F.binary_cross_entropy_with_logits(student[[0, 2]], torch.sigmoid(logits[[0, 2]]))
    assert got.item() == pytest.approx(want.item(), rel=1e-4)
    got.backward()
    assert student.grad[0].abs().sum() > 0 and student.grad[2].abs().sum() > 0
    assert student.grad[1].abs().sum() == 0 and student.grad[3].abs().sum() == 0  # not kept; drawn wrong
    for keep in (torch.zeros(4, dtype=torch.bool), torch.tensor([False, False, False, True])):
        none = teacher.loss(student, pixels, texts, target, keep)
        assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="weight must be > 0"):
        Teacher(teacher_model, weight=0.0)
    with pytest.raises(ValueError, match="min_iou must be in"):
        Teacher(teacher_model, weight=1.0, min_iou=1.5)
    with pytest.raises(ValueError, match="needs a teacher checkpoint"):
        Teacher.from_config({"weight": 1.0}, torch.device("cpu"))
    assert Teacher.from_config(None, torch.device("cpu")) is None


def test_contrast_pairs_are_marked_and_other_samples_are_not():
    ds = build_dataset("synthetic", "train", 64, scene_size=128, density=1.6, level=2, length=60, negatives=0.3,
                       contrast=0.8)
    sources = [ds.drawn(i)[2] for i in range(60)]
    assert {"negative", "contrast", "scene"} <= set(sources)
    samples = [ds[i] for i in range(12)]
    assert [s["contrast"] for s in samples] == [float(src == "contrast") for src in sources[:12]]
    assert [s["present"] for s in samples] == [float(src != "negative") for src in sources[:12]]
    batch = collate(samples)
    assert batch["contrast"].shape == (12,) and batch["present"].shape == (12,)
    assert "contrast" not in build_dataset("synthetic", "train", 64, scene_size=128, length=4)[0]


def test_a_fine_tune_that_distills_trains_and_logs_the_pull(tmp_path):
    ck = tmp_path / "start.pt"  # negatives train presence: the starting model has a presence head
    model_core.save_model(model_core.build_model("nano", heads={"presence": True}, **SMALL), str(ck))
    cfg = load_config({
        "model": {"init": str(ck)},
        "data": {"name": "synthetic", "options": {"scene_size": 128, "length": 32, "density": 1.6},
                 "train": {"level": 2, "negatives": 0.3, "contrast": 0.5}, "val_split": None},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "seed": 7,
                  "log_every": 1, "distill": {"teacher": str(ck), "weight": 0.5}},
        "out": str(tmp_path / "run"),
    })
    trainer = Trainer(cfg, quiet=True)
    assert trainer.teacher is not None and trainer.teacher.weight == 0.5
    trainer.run()
    rows = list(csv.DictReader(open(tmp_path / "run" / "train.csv")))
    assert len(rows) == 2 and all(float(r["distill"]) >= 0 for r in rows)
    start = model_core.load_model(str(ck)).state_dict()
    assert all(torch.equal(v, start[k]) for k, v in trainer.teacher.model.state_dict().items())  # never trained
