"""The engine worker's import path puts our package folders first (QGIS's older packages, e.g. Debian's sympy 1.11,
must not shadow our set's), while what our set does not hold (numpy, GDAL, PROJ: pruned by the installer) still
comes from QGIS's Python. Checked on a real child process with the worker's environment."""
from __future__ import annotations

import json
import subprocess
import sys

from rs2sam2_qgis import worker_client
from rs2sam2_qgis.engine_path import worker_path


def test_worker_path_moves_our_folders_first_and_keeps_the_rest_in_order():
    paths = ["/plugins", "/usr/lib/python3/dist-packages", "/p/python/rs2sam2_deps/py311-linux/set-2",
             "/usr/lib/python3.11", "/libs/manual", "/plugins"]
    assert worker_path(paths, "/libs/manual") == [
        "/p/python/rs2sam2_deps/py311-linux/set-2", "/libs/manual", "/plugins", "/usr/lib/python3/dist-packages",
        "/usr/lib/python3.11"]


def test_a_real_worker_child_imports_our_newer_package_and_qgis_numpy(tmp_path, monkeypatch):
    system = tmp_path / "dist-packages"  # stands for QGIS's site folder with an old copy
    ours = tmp_path / "profile" / "python" / "rs2sam2_deps" / "py311-linux-x86_64" / "set-1"
    for folder, version in ((system, "1.11"), (ours, "1.13.3")):
        (folder / "shadowpkg").mkdir(parents=True)
        (folder / "shadowpkg" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    # QGIS's process: QGIS's folders first, ours appended (what bootstrap and the installer's activate do)
    monkeypatch.setattr(sys, "path", [str(system)] + sys.path + [str(ours)])
    env = worker_client.child_environment()
    code = ("import json, shadowpkg, numpy; print(json.dumps({'shadowpkg': shadowpkg.__version__, "
            "'numpy': numpy.__file__}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["shadowpkg"] == "1.13.3"  # ours, not the older copy QGIS's path holds
    import numpy

    assert got["numpy"] == numpy.__file__  # the parent's (QGIS's) numpy: our set has none
