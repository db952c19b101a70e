"""Shared pytest set-up: headless Qt, offline model hubs, and one QgsApplication for the whole session
(two QgsApplication objects in one process crash, so every QGIS test goes through `qgis_app`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp/runtime-rs2sam2")
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def pytest_configure(config):
    # registered here, not in pyproject.toml, whose hash stamps the environment (a new marker needs no rebuild)
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one; bash bench/gpu_check.sh runs "
                                       "them with -m cuda)")


@pytest.fixture(scope="session")
def qgis_app():
    """The session's QgsApplication (reused if a plugin such as pytest-qgis already made one)."""
    try:
        import qgis.core as qgis_core
    except ImportError as exc:
        from tests.ci import cannot_run

        cannot_run(f"QGIS's Python bindings are not importable ({exc}); run the tests with QGIS's Python")
    app = qgis_core.QgsApplication.instance()
    if app is None:
        app = qgis_core.QgsApplication([], False)
        app.initQgis()
    processing_dir = "/usr/share/qgis/python/plugins"
    if processing_dir not in sys.path:
        sys.path.append(processing_dir)
    return app


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models on a shared 2-core CPU: one torch thread avoids OpenMP oversubscription (2 min -> 20 s for
    the model tests when other work shares the machine); the previous count is restored after the module."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository (reference files of the authors' model)."""
    return SHARED_DIR
