"""pb_tool.cfg deploys a complete plugin: every module, metadata, icon, the engine, the installer and model_core
(copied from the extlibs/ symlink), and a deployed plugin finds model_core through extlibs/ at start-up."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "rs2sam2_qgis"


def _cfg():
    cfg = configparser.ConfigParser()
    cfg.read(PLUGIN / "pb_tool.cfg")
    return cfg


def deploy_like_pb_tool(target: Path) -> Path:
    """What `pb_tool deploy` does with our cfg (copy files by relative path; copytree follows symlinks)."""
    cfg = _cfg()
    plugin_dir = target / cfg.get("plugin", "name")
    plugin_dir.mkdir(parents=True)
    files = cfg.get("files", "python_files").split() + cfg.get("files", "extras").split()
    for name in files:
        shutil.copy(PLUGIN / name, plugin_dir / name)
    for folder in cfg.get("files", "extra_dirs").split():
        shutil.copytree(PLUGIN / folder, plugin_dir / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return plugin_dir


def test_pb_tool_cfg_covers_every_module_of_the_plugin():
    cfg = _cfg()
    listed = set(cfg.get("files", "python_files").split())
    dirs = set(cfg.get("files", "extra_dirs").split())
    for path in PLUGIN.iterdir():
        if path.suffix == ".py":
            assert path.name in listed, f"{path.name} missing from pb_tool.cfg python_files"
        elif path.is_dir() and (path / "__init__.py").exists():
            assert path.name in dirs, f"{path.name}/ missing from pb_tool.cfg extra_dirs"
    assert {"metadata.txt", "icon.png"} <= set(cfg.get("files", "extras").split())
    assert "extlibs" in dirs and (PLUGIN / "extlibs" / "model_core" / "__init__.py").exists()


def test_deployed_plugin_finds_model_core_in_extlibs(tmp_path):
    plugin_dir = deploy_like_pb_tool(tmp_path / "plugins")
    model_core = plugin_dir / "extlibs" / "model_core"
    assert model_core.is_dir() and not model_core.is_symlink() and (model_core / "predictor.py").exists()
    code = ("import importlib.util as u, sys; sys.path[:] = [p for p in sys.path if 'work/main' not in p]; "
            "import rs2sam2_qgis; assert rs2sam2_qgis.__file__.startswith(sys.argv[1]), rs2sam2_qgis.__file__; "
            "assert u.find_spec('model_core') is None; "
            "from rs2sam2_qgis.bootstrap import ensure_import_paths; ensure_import_paths(); "
            "print(u.find_spec('model_core').origin)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path / "plugins")
    # Debian's Python without the venv: like a fresh QGIS, where only the plugins folder is on the path
    out = subprocess.run(["/usr/bin/python3", "-s", "-c", code, str(tmp_path / "plugins")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(model_core / "__init__.py")
