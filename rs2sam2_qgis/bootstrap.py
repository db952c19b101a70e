"""Where the plugin finds its Python packages, and what is missing.

Layout of a deployed plugin (see pb_tool.cfg):
    <plugins>/rs2sam2_qgis/            this package (with pipeline/, the QGIS-free engine)
    <plugins>/rs2sam2_qgis/extlibs/    model_core (pure PyTorch), deployed beside the plugin by pb_tool
    <QGIS profile>/python/rs2sam2_deps/ torch, rasterio & co, installed by the dependency installer (deps/;
                                       Plugins -> rs2sam2 -> Python dependencies…): the recommended way
    <QGIS profile>/rs2sam2/python3.11/ the manual fallback: a folder for `pip --target` by hand (offline wheels,
                                       locked-down machines), the command `dependency_report()` prints; searched
                                       after the installer's live set
In a development checkout `model_core` is already importable (editable install or PYTHONPATH) and nothing is added.
Both folders are *appended* to sys.path in QGIS's process: QGIS's own packages always win there; the engine worker
puts them first (engine_path.py).
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path

from .deps.requirements import REQUIREMENTS  # pure data: no Qt, no heavy import

PLUGIN_DIR = Path(__file__).resolve().parent
EXTLIBS_DIR = PLUGIN_DIR / "extlibs"

# (import name, pip requirement) for what every run needs, and for the BEiT-3 models (paper, tiny) only:
# derived from the installer's one list (deps/requirements.py, checked against pyproject.toml by its tests).
REQUIRED = [(r.module, r.spec) for r in REQUIREMENTS if r.needed_for == "run"]
OPTIONAL = [(r.module, r.spec) for r in REQUIREMENTS if r.needed_for == "models"]


def user_libs_dir() -> Path:
    """The manual-install folder (`pip --target` by hand), keyed by QGIS's Python version."""
    base = os.environ.get("RS2SAM2_LIBS_DIR")
    if base:
        return Path(base)
    try:
        from qgis.core import QgsApplication

        profile = QgsApplication.qgisSettingsDirPath()  # "" when no QgsApplication runs (qgis_process, scripts)
    except Exception:  # noqa: BLE001 - outside QGIS
        profile = ""
    root = Path(profile) if profile else Path.home() / ".local" / "share" / "rs2sam2"
    return root / "rs2sam2" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def ensure_import_paths() -> list[str]:
    """Append extlibs/ (when model_core is not importable) and the user's libs folder to sys.path; activate the
    dependency installer's live package set (rs2sam2_qgis.deps) when it is part of this plugin."""
    try:
        from .deps.qgis_glue import startup_status

        startup_status()
    except Exception:  # noqa: BLE001 - installer absent or broken: the folders below still work
        pass
    added = []
    candidates = []
    if importlib.util.find_spec("model_core") is None and EXTLIBS_DIR.is_dir():
        candidates.append(EXTLIBS_DIR)
    libs = user_libs_dir()
    if libs.is_dir():
        candidates.append(libs)
    for path in candidates:
        text = str(path)
        if text not in sys.path:
            sys.path.append(text)
            added.append(text)
    if added:
        importlib.invalidate_caches()
    return added


def python_executable() -> str:
    """QGIS's Python interpreter (inside QGIS sys.executable is often the qgis binary itself)."""
    try:  # embedded, sys.executable can be a foreign python3 found on PATH (here a pyenv 3.11.7 shim): deps checks
        from .deps.manager import python_executable as qgis_python

        return qgis_python()
    except Exception:  # noqa: BLE001 - installer absent: the guess below
        pass
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if os.name == "nt":
        for name in ("python3.exe", "python.exe"):
            candidate = Path(sys.exec_prefix) / name
            if candidate.exists():
                return str(candidate)
        return "python3"
    for name in (f"python{version}", "python3"):
        candidate = Path(sys.exec_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return "python3"


def missing_packages(include_optional: bool = True) -> list[tuple[str, str]]:
    """(import name, pip requirement) of every package that cannot be found (without importing it)."""
    wanted = REQUIRED + (OPTIONAL if include_optional else [])
    missing = []
    for module, requirement in wanted:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append((module, requirement))
    if importlib.util.find_spec("model_core") is None:
        missing.append(("model_core", "(deploy the plugin with pb_tool: model_core goes into extlibs/)"))
    return missing


def installer_folder() -> Path | None:
    """The dependency installer's folder for this Python/OS/CPU (None when the installer is not part of the plugin)."""
    try:
        from .deps.qgis_glue import layout

        return layout().key_dir
    except Exception:  # noqa: BLE001
        return None


def pip_command(requirements: list[str]) -> str:
    """The exact command that installs `requirements` for QGIS's Python into the manual-install folder."""
    reqs = [r for r in requirements if not r.startswith("(")]
    if not reqs:
        return ""
    quoted = " ".join(f'"{r}"' for r in reqs)
    return (f'"{python_executable()}" -m pip install --upgrade --target "{user_libs_dir()}" '
            f'"numpy<2" {quoted}')


def dependency_report() -> str:
    """Plain-text report: what is missing and the pip command to fix it, plus versions for a bug report."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    missing = missing_packages()
    required_missing = [m for m in missing if m[0] in {r[0] for r in REQUIRED} | {"model_core"}]
    if missing:
        lines.append("Missing packages:")
        for module, requirement in missing:
            kind = ("required" if (module, requirement) in required_missing
                    else "needed by the BEiT-3 models (paper, tiny)")
            lines.append(f"  - {module} ({kind})")
        command = pip_command([r for _, r in missing])
        if command:
            lines.append("")
            if installer_folder() is not None:
                lines.append("Install them with Plugins -> rs2sam2 -> Python dependencies… (the Install button): it "
                             "picks the right torch for this machine, installs into")
                lines.append(f"  {installer_folder()}")
                lines.append("and switches to the new packages only once they import. QGIS's own numpy/GDAL stay "
                             "untouched.")
                lines.append("")
                lines.append("Without the installer (offline wheels, a locked-down machine), install them by hand "
                             "into the manual folder, then restart QGIS:")
            else:
                lines.append("Install them for QGIS's Python (into a folder of their own, QGIS's numpy/GDAL "
                             "untouched), then restart QGIS:")
            lines.append(f"  {command}")
    else:
        lines.append("All dependencies found.")
    lines.append("")
    lines.append("Diagnostics:")
    lines.append(f"  OS: {platform.platform()}")
    try:
        from qgis.core import Qgis

        lines.append(f"  QGIS: {Qgis.version()}")
    except Exception:  # noqa: BLE001
        lines.append("  QGIS: (not running inside QGIS)")
    lines.append(f"  Python: {sys.version.split()[0]} ({python_executable()})")
    for dist in ("torch", "torchvision", "numpy", "rasterio", "shapely", "pyproj", "pyogrio", "sam2",
                 "open_clip_torch", "torchscale", "timm"):
        try:
            lines.append(f"  {dist}: {version(dist)}")
        except PackageNotFoundError:
            lines.append(f"  {dist}: not installed")
    if "torch" in sys.modules:  # only report CUDA when torch is already loaded (no heavy import here)
        torch = sys.modules["torch"]
        cuda = torch.cuda.is_available()
        lines.append(f"  CUDA: {torch.version.cuda} (available: {cuda})")
        if cuda:
            lines.append(f"  GPU: {torch.cuda.get_device_name(0)}")
    lines.append(f"  installer folder: {installer_folder() or '(installer not part of this plugin)'}")
    lines.append(f"  extra import folders: {EXTLIBS_DIR}, {user_libs_dir()} (manual)")
    return "\n".join(lines)


def device_report() -> dict:
    """Which devices torch can use here, and why CUDA cannot when it cannot (imports torch)."""
    import torch

    info = {"cpu": True, "cuda": bool(torch.cuda.is_available()), "cuda_name": "", "why_not_cuda": ""}
    if info["cuda"]:
        info["cuda_name"] = torch.cuda.get_device_name(0)
    elif torch.version.cuda is None:
        info["why_not_cuda"] = "this torch build has no CUDA support"
    else:
        info["why_not_cuda"] = f"torch built for CUDA {torch.version.cuda}, but no usable GPU/driver was found"
    return info
