"""Real installs with QGIS's Python (/usr/bin/python3 here) into a temporary dependency folder, from a local wheel
folder this test downloads (tiny pure-Python packages), the way an offline install works."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rs2sam2_qgis.deps import layout as L
from rs2sam2_qgis.deps import manager as M
from tests.ci import cannot_run

SYS_PY = "/usr/bin/python3"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"

pytestmark = pytest.mark.skipif(not Path(SYS_PY).exists(), reason="needs QGIS's Python at /usr/bin/python3")


def _clean_env(tmp: Path) -> dict:
    """No machine pip config or PIP_* variables: only the folder we pass may be used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, HOME=str(tmp))
    return env


def _qgis_site() -> list[str]:
    out = subprocess.run([SYS_PY, "-c", "import sys, json; print(json.dumps(sys.path))"], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return [p for p in json.loads(out.stdout) if p]


def _numpy_state() -> tuple:
    init = Path(DIST_PACKAGES) / "numpy" / "__init__.py"
    out = subprocess.run([SYS_PY, "-c", "import numpy; print(numpy.__version__, numpy.__file__)"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    return out.stdout.strip(), init.stat().st_mtime_ns if init.exists() else None


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run([SYS_PY, "-m", "pip", "download", "--only-binary", ":all:", "--disable-pip-version-check",
                           "-d", str(folder), "iniconfig", "six==1.16.0"], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or len(list(folder.glob("*.whl"))) < 2:
        cannot_run("could not download wheels for the offline install test (no PyPI?): "
                   + (proc.stderr.strip().splitlines() or ["?"])[-1])
    return folder


def test_offline_install_into_own_folder(wheels, tmp_path):
    numpy_before = _numpy_state()
    lay = L.DepsLayout(tmp_path / "deps")
    # `six` plays a package QGIS ships (protected, Debian has 1.16.0): it is pinned, then pruned from our folder;
    # we ask six>=1.17, so QGIS's version wins with a warning. iniconfig goes through the --no-deps pass (as sam2).
    opts = M.InstallOptions(requirements=["iniconfig", "six>=1.17"], offline_dir=str(wheels), python=SYS_PY,
                            qgis_site_paths=_qgis_site(), protected=("numpy", "GDAL", "six"),
                            no_deps={"iniconfig": ()}, env=_clean_env(tmp_path))
    lines, progress = [], []
    result = M.Installer(lay, opts).run(log=lines.append, progress=progress.append)
    log = "\n".join(lines)
    assert result.ok, result.message + "\n" + log
    active = lay.active_dir()
    assert active == result.active_dir and active.parent == tmp_path / "deps" / L.platform_key()
    assert "six==1.16.0" in log and "--no-index" in log and "--no-deps --no-build-isolation" in log
    assert any("six 1.16.0" in w and "six>=1.17" in w for w in result.warnings), result.warnings
    assert list(active.glob("iniconfig*.dist-info")) and not list(active.glob("six*")), sorted(os.listdir(active))
    assert not list(active.glob("numpy*"))
    assert progress[-1] == 1.0 and result.verify["modules"]["iniconfig"]["file"].startswith(str(active))
    # a fresh QGIS-Python process with our folder on sys.path: ours from our folder, QGIS's own from QGIS's
    code = (f"import sys, json; sys.path.append({str(active)!r}); import iniconfig, six, numpy; "
            "print(json.dumps([iniconfig.__file__, six.__file__, numpy.__file__]))")
    out = subprocess.run([SYS_PY, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    ini, six_file, np_file = json.loads(out.stdout)
    assert ini.startswith(str(active)) and six_file.startswith(DIST_PACKAGES) and np_file.startswith(DIST_PACKAGES)
    assert _numpy_state() == numpy_before
    # Nothing of ours was imported before the install; only a numpy this test process loaded itself (the venv's,
    # when other tests ran first) can differ from QGIS's and so ask for a restart.
    numpy_loaded = sys.modules.get("numpy")
    expect_restart = numpy_loaded is not None and numpy_loaded.__version__ != numpy_before[0].split()[0]
    assert result.restart_needed is expect_restart, result.restart_reasons

    # a failing install (a package the folder lacks) keeps the working set live and leaves nothing behind
    bad = M.InstallOptions(requirements=["iniconfig", "rs2sam2-no-such-package"], offline_dir=str(wheels),
                           python=SYS_PY, qgis_site_paths=_qgis_site(), env=_clean_env(tmp_path))
    failed = M.Installer(lay, bad).run()
    assert not failed.ok and "unchanged" in failed.message and "rs2sam2-no-such-package" in failed.log_tail
    assert lay.active_dir() == active and lay.sets() == [active]
    assert sorted(p.name for p in lay.key_dir.iterdir()) == sorted([active.name, L.POINTER])

    # a second good install switches to a new set and removes the old one
    again = M.Installer(lay, opts).run()
    assert again.ok and lay.active_dir() != active and not active.exists()
    assert _numpy_state() == numpy_before


def test_imports_that_fail_are_not_switched_to(wheels, tmp_path):
    """pip succeeds but the import check fails (module name that the wheel does not provide): no switch."""
    lay = L.DepsLayout(tmp_path / "deps")
    from rs2sam2_qgis.deps.requirements import Requirement

    opts = M.InstallOptions(requirements=[Requirement("iniconfig", "iniconfig", "iniconfig_missing_mod", "run")],
                            offline_dir=str(wheels), python=SYS_PY, qgis_site_paths=[], env=_clean_env(tmp_path))
    result = M.Installer(lay, opts).run()
    assert not result.ok and "iniconfig_missing_mod" in result.message
    assert lay.active_dir() is None and lay.sets() == []
