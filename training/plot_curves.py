"""Plot a run's curves (train.csv loss, val.csv mIoU/oIoU/Pr@0.5) into a small PNG (needs matplotlib).

    python -m training.plot_curves runs/demo_nano_stage1 training/demo_curves.png
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path


def plot(run: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = list(csv.DictReader(open(run / "train.csv")))
    va = list(csv.DictReader(open(run / "val.csv")))
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3), dpi=80)
    a.plot([int(r["step"]) for r in tr], [float(r["loss"]) for r in tr], lw=0.8)
    a.set_xlabel("step")
    a.set_ylabel("train loss")
    a.set_yscale("log")
    a.grid(alpha=0.3)
    steps = [int(r["step"]) for r in va]
    for key in ("mIoU", "oIoU", "pr@0.5"):
        b.plot(steps, [float(r[key]) for r in va], marker=".", label=key)
    b.axhline(0.75, color="grey", ls="--", lw=0.8)
    b.set_xlabel("step")
    b.set_ylabel(f"val (first {va[-1]['n']} samples)")
    b.set_ylim(0, 1)
    b.legend(loc="lower right")
    b.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


if __name__ == "__main__":
    print(plot(Path(sys.argv[1]), Path(sys.argv[2])))
