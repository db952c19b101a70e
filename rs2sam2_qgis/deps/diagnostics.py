"""The copyable diagnostics report: everything a bug report about installing or the GPU needs. Pure Python:
the QGIS version is passed in by the caller (dialog.py reads it from qgis.core)."""
from __future__ import annotations

import configparser
import importlib.metadata as md
import platform
import sys
from pathlib import Path

from . import state
from .constraints import installed_distributions
from .layout import DepsLayout
from .manager import python_executable, redact, restart_reasons, shadowed, verify_set
from .requirements import REQUIREMENTS, canonical
from .torch_variant import GpuInfo, detect_gpu

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def plugin_version(plugin_dir: str | Path = PLUGIN_DIR) -> str:
    """`version=` of the plugin's metadata.txt ('unknown' when absent)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(Path(plugin_dir) / "metadata.txt", encoding="utf-8")
        return parser.get("general", "version", fallback="unknown")
    except (OSError, configparser.Error):
        return "unknown"


def torch_info(layout: DepsLayout, probe: bool = True, python: str | None = None, timeout: float = 120.0) -> dict:
    """torch's build and CUDA state: from the running process when torch is loaded, else (probe=True) from a fresh
    QGIS-Python process with our set appended to sys.path (so the report never imports torch into QGIS)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda"):
        info = {"version": torch.__version__, "cuda_build": torch.version.cuda, "source": "this QGIS process"}
        try:
            if torch.cuda.is_available():
                props = torch.cuda.get_device_properties(0)
                info["cuda"] = {"ok": True, "name": props.name, "memory_mib": props.total_memory // 2**20}
            else:
                why = ("this torch build has no CUDA support" if torch.version.cuda is None else
                       f"torch.cuda.is_available() is False (built for CUDA {torch.version.cuda})")
                info["cuda"] = {"ok": False, "error": why}
        except Exception as exc:  # noqa: BLE001
            info["cuda"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return info
    if not probe:
        return {"version": None, "source": "not loaded (probe skipped)"}
    target = layout.active_dir() or layout.key_dir
    result = verify_set(python or python_executable(), target, ["torch"], True, timeout=timeout)
    if "torch" not in result:
        error = (result.get("errors") or {}).get("torch", "not installed")
        return {"version": None, "error": error.splitlines()[-1] if error else error, "source": "probe"}
    info = dict(result["torch"], source="fresh process")
    info["cuda"] = result.get("cuda") or {}
    return info


def collect(layout: DepsLayout, qgis_version: str = "", plugin_dir: str | Path = PLUGIN_DIR, probe: bool = True,
            gpu: GpuInfo | None = None, python: str | None = None) -> dict:
    active = layout.active_dir()
    ours = {}
    if active is not None:
        for dist in md.distributions(path=[str(active)]):
            ours[canonical(dist.metadata["Name"] or "")] = dist.version
    qgis = installed_distributions(None, exclude=[layout.root])
    packages = {}
    for req in REQUIREMENTS:
        key = canonical(req.dist)
        if key in qgis:
            packages[req.dist] = f"{qgis[key][1]} (QGIS's Python)" + (f"; ours {ours[key]} is shadowed" if key in ours else "")
        elif key in ours:
            packages[req.dist] = f"{ours[key]} (our folder)"
        else:
            packages[req.dist] = "not installed"
    gpu = gpu if gpu is not None else detect_gpu()
    pointer = layout.pointer()
    return {
        "os": platform.platform(),
        "qgis": qgis_version or "(not running inside QGIS)",
        "python": f"{sys.version.split()[0]} ({python or python_executable()})",
        "plugin_version": plugin_version(plugin_dir),
        "deps_root": str(layout.root),
        "deps_folder": str(active) if active else f"(none installed yet) {layout.key_dir}",
        "deps_variant": pointer.get("variant", ""),
        "deps_switched_at": pointer.get("switched_at", ""),
        "packages": packages,
        "torch": torch_info(layout, probe, python),
        "nvidia": {"found": gpu.found, "name": gpu.name, "memory_mib": gpu.memory_mib,
                   "driver": gpu.driver_version, "driver_cuda": ".".join(map(str, gpu.driver_cuda)) if gpu.driver_cuda else "",
                   "why_not": gpu.why_not},
        "shadowed": shadowed(active, None, exclude=[layout.root]),
        "restart_reasons": restart_reasons(active, layout.key_dir, pointer.get("qgis_pins")) if active else [],
        "state": state.load(layout.state_file),
    }


def format_report(d: dict) -> str:
    """Plain text, for the dialog's copyable view and bug reports."""
    t = d.get("torch") or {}
    cuda = t.get("cuda") or {}
    nv = d.get("nvidia") or {}
    st = d.get("state") or {}
    if t.get("version"):
        torch_line = f"{t['version']} (CUDA build: {t.get('cuda_build') or 'none, CPU-only'}; checked in {t.get('source')})"
    else:
        torch_line = f"not available ({t.get('error') or t.get('source') or 'not installed'})"
    if cuda.get("ok"):
        cuda_line = "yes"
        gpu_line = f"{cuda.get('name')}, {cuda.get('memory_mib')} MiB"
    else:
        reasons = [r for r in (nv.get("why_not"), cuda.get("error")) if r]
        cuda_line = "no: " + ("; ".join(reasons) or "torch is not installed")
        gpu_line = (f"{nv.get('name') or 'NVIDIA GPU'}, {nv.get('memory_mib') or '?'} MiB (seen by nvidia-smi)"
                    if nv.get("found") else f"none ({nv.get('why_not') or 'no NVIDIA GPU'})")
    lines = [
        "rs2sam2 diagnostics",
        f"OS: {d.get('os')}",
        f"QGIS: {d.get('qgis')}",
        f"Python: {d.get('python')}",
        f"Plugin version: {d.get('plugin_version')}",
        f"Dependency folder: {d.get('deps_folder')}",
        f"Dependency set: {d.get('deps_variant') or '-'} (switched {d.get('deps_switched_at') or '-'})",
        "Packages:",
    ]
    lines += [f"  {name}: {version}" for name, version in (d.get("packages") or {}).items()]
    if d.get("shadowed"):
        lines.append("In our folder but QGIS's copy is used: " + ", ".join(d["shadowed"]))
    lines += [
        f"torch: {torch_line}",
        f"CUDA available: {cuda_line}",
        f"GPU: {gpu_line}",
        f"NVIDIA driver: {nv.get('driver') or '-'} (supports CUDA {nv.get('driver_cuda') or '-'})",
        f"Last run device: {st.get('last_device') or '-'}"
        + (f" ({st['last_device_detail']})" if st.get("last_device_detail") else "")
        + (f" at {st['last_run_at']}" if st.get("last_run_at") else ""),
        f"Last error: {st.get('last_error') or '-'}" + (f" at {st['last_error_at']}" if st.get("last_error_at") else ""),
    ]
    if st.get("last_error_trace"):
        lines.append("Last error trace:")
        lines += ["  " + line for line in st["last_error_trace"].rstrip().splitlines()]
    if d.get("restart_reasons"):
        lines.append("Restart QGIS needed: " + "; ".join(d["restart_reasons"]))
    return redact("\n".join(lines))


def report(layout: DepsLayout, qgis_version: str = "", **kwargs) -> str:
    return format_report(collect(layout, qgis_version, **kwargs))
