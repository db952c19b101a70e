"""The plugin's Install with the real requirement set (torch & co from the package index) into a temporary QGIS
profile, against QGIS's own Python (/usr/bin/python3), then the engine through qgis_process.bin on the bundled
sample with the demo model, using only that folder (no venv on any path).

Proves the sympy fix: Debian 12's QGIS has python3-sympy 1.11, which torchvision/open_clip/timm cannot import
from; the engine worker puts our set first (engine_path.py), so it imports our newer sympy, while QGIS's numpy, GDAL,
PROJ and Qt stay QGIS's (pruned from our set; checked in both import orders). Tested on Debian 12 + QGIS 3.22 only:
Windows (OSGeo4W) and macOS QGIS builds were not available here. Slow (pip installs torch: minutes) and needs the
package index, which CI reaches.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rs2sam2_qgis.deps import layout as L
from rs2sam2_qgis.deps import manager as M
from tests.ci import cannot_run

REPO_ROOT = Path(__file__).resolve().parents[1]
SYS_PY = "/usr/bin/python3"
DIST = "/usr/lib/python3/dist-packages"
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"

pytestmark = pytest.mark.slow


def _plain_env(**extra) -> dict:
    """os.environ without anything that would put this venv or a test folder on QGIS's paths."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", L.ENV_ROOT, "RS2SAM2_LIBS_DIR", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _qgis_site() -> list[str]:
    out = subprocess.run([SYS_PY, "-c", "import sys, json; print(json.dumps(sys.path))"], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return [p for p in json.loads(out.stdout) if p]


def _origins(active: Path, first: bool) -> dict:
    """Where QGIS's Python imports sympy, numpy, GDAL, pyproj and Qt from, our set first (the worker) or last (QGIS's
    own process)."""
    where = "sys.path.insert(0, %r)" if first else "sys.path.append(%r)"
    code = ("import sys, json; " + where % str(active) + "\n"
            "out = {}\n"
            "for name in ('sympy', 'numpy', 'osgeo', 'pyproj', 'PyQt5'):\n"
            "    try:\n"
            "        m = __import__(name); out[name] = [getattr(m, '__version__', ''), m.__file__]\n"
            "    except ImportError as e:\n"
            "        out[name] = [None, str(e)]\n"
            "print(json.dumps(out))")
    p = subprocess.run([SYS_PY, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_real_install_then_the_demo_through_qgis_process(tmp_path):
    if not Path(SYS_PY).exists() or not Path(QGIS_PROCESS).exists():
        cannot_run("needs QGIS's Python (/usr/bin/python3) and qgis_process.bin")
    root = tmp_path / "qgis_profile"
    profile = root / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "rs2sam2_qgis").symlink_to(REPO_ROOT / "rs2sam2_qgis", target_is_directory=True)

    lay = L.DepsLayout(profile / "python" / L.ROOT_NAME)  # the plugin's default_root(profile) in qgis_process
    lines: list[str] = []
    opts = M.InstallOptions(python=SYS_PY, torch="pypi", qgis_site_paths=_qgis_site(), env=_plain_env())
    result = M.Installer(lay, opts).run(log=lines.append)
    if not result.ok and any("Could not find a version" in x or "No matching distribution" in x or
                             "NewConnectionError" in x for x in lines):
        cannot_run("the package index cannot be reached: " + result.message)
    assert result.ok, result.message + "\n" + "\n".join(lines[-60:])
    active = lay.active_dir()
    assert result.verify["errors"] == {}, result.verify["errors"]
    assert not result.verify["numpy"]["ours"]

    # the worker's order (ours first) and QGIS's own (ours last): numpy, GDAL, PROJ (pyproj) and Qt are QGIS's in
    # both; sympy is ours for the worker whenever QGIS's is older than the one our set needs
    worker, qgis = _origins(active, first=True), _origins(active, first=False)
    for name in ("numpy", "osgeo", "PyQt5"):
        assert worker[name][1].startswith(DIST) and qgis[name][1].startswith(DIST), (name, worker, qgis)
    if qgis["pyproj"][0] is not None:
        assert worker["pyproj"][1] == qgis["pyproj"][1]
    if qgis["sympy"][0] is not None and tuple(int(x) for x in qgis["sympy"][0].split(".")[:2]) < (1, 13):
        # Debian 12's 1.11: torch's set needs >= 1.13, so the worker must import ours, and torchvision works
        assert worker["sympy"][1].startswith(str(active)), worker
        assert "torchvision" in result.verify["modules"], result.verify["modules"].keys()

    env = _plain_env(QGIS_CUSTOM_CONFIG_PATH=str(root), QT_QPA_PLATFORM="offscreen",
                     XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp/runtime-rs2sam2"))
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", "rs2sam2_qgis"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    out = tmp_path / "sample.gpkg"
    sample = shutil.copy(REPO_ROOT / "data" / "sample" / "sample_scene.tif", tmp_path)  # QGIS writes .aux.xml beside
    run = subprocess.run([QGIS_PROCESS, "run", "rs2sam2:segment_by_text", "--json", f"--INPUT={sample}",
                          "--QUERIES=the roads",
                          "--MODEL=demo", "--DEVICE=2", f"--OUTPUT={out}"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads(run.stdout[run.stdout.index("{"):])
    assert payload["results"]["FEATURE_COUNT"] >= 1 and out.exists()
