"""bench/gpu_check.sh --dry-run: every step of the GPU check on CPU with tiny sizes, so that the script is known to
run before a GPU is at hand (the CUDA tests it selects are collected and skip cleanly here)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_step(tmp_path):
    p = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHON": sys.executable})
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads((tmp_path / "gpu_check_dryrun_cpu.json").read_text())
    assert report["command"] == f"bash bench/gpu_check.sh --dry-run --out {tmp_path}" and report["dry_run"]
    steps = report["steps"]
    assert set(steps) == {"a", "b", "c", "d_demo", "d_paper"}
    assert all(r["ok"] for r in steps.values()), steps
    assert steps["a"]["returncode"] == 0 and "6 skipped" in steps["a"]["summary"][0]
    bf16 = steps["b"]["agreement"]["precisions"]["bf16"]
    assert 0.99 <= bf16["decisions_equal_to_fp32"] <= 1.0
    assert [r["batch"] for r in steps["c"]["variants"]["eager"]] == [1, 2]
    assert all(r["tile_queries_per_s"] > 0 for r in steps["c"]["variants"]["eager"])
    for key in ("d_demo", "d_paper"):
        assert steps[key]["device"] == "cpu" and steps[key]["megapixels"] == 0.26 and steps[key]["s_per_mpx"] > 0
    assert steps["d_demo"]["polygons"] > 0  # the demo finds the sample's storage tanks
    md = (tmp_path / "gpu_check_dryrun_cpu.md").read_text()
    assert md.startswith("# GPU check (dry run on CPU, tiny sizes)") and report["command"] in md
