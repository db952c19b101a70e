"""The shipped demo checkpoint (model_core/assets/demo.pt): loads with model_core alone, is small enough to bundle,
and reaches its recorded val mIoU (training/demo_metrics.json) within 0.02 on the fixed 50-sample val subset,
through the same `rs2sam2 eval --model demo --dataset synthetic --split val --limit 50 --json` a user runs."""
from __future__ import annotations

import json
from pathlib import Path

import torch

import model_core
from training import evaluate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "training" / "demo_metrics.json"


def test_demo_checkpoint_reaches_recorded_metrics(capsys):
    path = evaluate.demo_checkpoint_path()
    assert path.is_file(), f"{path} missing"
    assert path.stat().st_size <= 25 * 1024 * 1024
    model = model_core.load_model(str(path))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 in the file, fp32 after loading
    meta = evaluate.checkpoint_meta("demo")
    assert meta.get("dataset") == "synthetic" and "val_options" in meta
    record = json.loads(RECORD.read_text())
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert evaluate.main(["--model", "demo", "--dataset", "synthetic", "--split", "val", "--limit", "50",
                              "--json", "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(n)
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(got) == {"pr@0.5", "pr@0.6", "pr@0.7", "pr@0.8", "pr@0.9", "oIoU", "mIoU", "n"}
    assert got["n"] == 50
    assert abs(got["mIoU"] - record["val50"]["mIoU"]) <= 0.02, (got, record["val50"])
