"""CI=true turns what would skip (missing fixture, too little memory) into failures: the golden and official key-map
tests run for real in CI or the run fails. Run in subprocesses with a fixture folder that cannot exist."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = '''
import pytest
from tests.ci import cannot_run

def test_needs_a_fixture():
    cannot_run("fixture absent (looked for /nonexistent/golden)")
'''


def _run(tmp_path, ci: str):
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, CI=ci, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), str(tmp_path / "test_probe.py")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def test_skips_on_a_developer_machine(tmp_path):
    p = _run(tmp_path, "")
    assert p.returncode == 0 and "1 skipped" in p.stdout, p.stdout


def test_fails_under_ci(tmp_path):
    p = _run(tmp_path, "true")
    assert p.returncode == 1 and "1 failed" in p.stdout and "CI=true" in p.stdout, p.stdout


def test_the_golden_and_key_map_tests_use_it():
    golden = (ROOT / "tests" / "test_model_golden.py").read_text()
    keys = (ROOT / "tests" / "test_model_checkpoints.py").read_text()
    assert "cannot_run(reason)" in golden and "skipif" not in golden
    assert "cannot_run(f\"official_state_dict.json not present" in keys
    for path in (ROOT / "tests").glob("test_*.py"):
        assert "importorskip" not in path.read_text() or path.name == Path(__file__).name, path.name
